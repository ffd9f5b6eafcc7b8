// The HTTP driver batches the responses to pipelined requests: the requests one read
// brought are answered in order and their responses leave in one send (bounded), on
// every backend. Real clients (curl, h11) drive it in tests/peers/http_peers.py.
#include "../support.hpp"

#include <sluice/http/server.hpp>

using namespace sluice;
using namespace test;

namespace {

task<http::response> echo_target(const http::request& req, std::string body) {
  http::response r;
  r.headers.add("Content-Type", "text/plain");
  r.body = req.target + (body.empty() ? "" : ":" + body);
  co_return r;
}

std::string gets(int from, int to) {
  std::string all;
  for (int i = from; i < to; ++i)
    all += fmt::format("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", i);
  return all;
}

// The bodies of the responses in `raw`, in order (each has a Content-Length).
std::vector<std::string> bodies(const std::string& raw) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while ((at = raw.find("Content-Length: ", at)) != std::string::npos) {
    const std::size_t n = std::stoul(raw.substr(at + 16));
    const std::size_t start = raw.find("\r\n\r\n", at) + 4;
    out.push_back(raw.substr(start, n));
    at = start + n;
  }
  return out;
}

struct run_result {
  result<http::connection_report> report = error(errc::not_a_socket, "not run");
  std::string received;
};

// Serves `s` while the client writes `requests` in one send, half-closes, and reads
// everything until the server closes.
run_result pipeline(io_context& io, const std::string& requests, http::server_options o = {}) {
  auto [c, s] = sync_wait(io, connected_pair(io));
  run_result out;
  auto server = [&]() -> task<void> {
    out.report = co_await http::serve_connection(s, echo_target, o);
  };
  auto client = [&]() -> task<void> {
    auto sent = co_await c.send_all(bytes(requests));
    REQUIRE(sent);
    auto fin = co_await c.shutdown_send();
    REQUIRE(fin);
    out.received = co_await recv_to_end(c);
  };
  sync_wait(io, when_all(server(), client()));
  return out;
}

} // namespace

TEST_CASE("Pipelined requests from one read are answered in order, in one send") {
  io_context io;
  const auto r = pipeline(io, gets(0, 20));
  REQUIRE(r.report);
  CHECK(r.report->requests == 20);
  CHECK(r.report->sends == 1);
  const auto b = bodies(r.received);
  REQUIRE(b.size() == 20);
  for (int i = 0; i < 20; ++i)
    CHECK(b[static_cast<std::size_t>(i)] == fmt::format("/{}", i));
}

TEST_CASE("A batch of pipelined responses is bounded by max_batch_responses and "
          "max_batch_bytes") {
  io_context io;
  SECTION("by count") {
    http::server_options o;
    o.max_batch_responses = 8;
    const auto r = pipeline(io, gets(0, 20), o);
    REQUIRE(r.report);
    CHECK(r.report->requests == 20);
    CHECK(r.report->sends == 3); // 8 + 8 + 4
    const auto b = bodies(r.received);
    REQUIRE(b.size() == 20);
    for (int i = 0; i < 20; ++i)
      CHECK(b[static_cast<std::size_t>(i)] == fmt::format("/{}", i));
  }
  SECTION("by bytes") {
    http::server_options o;
    o.max_batch_bytes = 1; // every response goes alone
    const auto r = pipeline(io, gets(0, 5), o);
    REQUIRE(r.report);
    CHECK(r.report->sends == 5);
    CHECK(bodies(r.received).size() == 5);
  }
}

TEST_CASE("100 Continue follows the responses to the requests before it") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  result<http::connection_report> report = error(errc::not_a_socket, "not run");
  std::string first, rest;
  auto server = [&]() -> task<void> { report = co_await http::serve_connection(s, echo_target); };
  auto client = [&]() -> task<void> {
    const std::string head = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                             "Content-Length: 5\r\n\r\n";
    auto sent = co_await c.send_all(bytes(head));
    REQUIRE(sent);
    // The GET's response, then the 100 Continue, before any of the body is sent.
    std::string got;
    while (got.find("100 Continue\r\n\r\n") == std::string::npos) {
      std::array<std::byte, 512> buf;
      auto n = co_await with_timeout(c.recv(buf), std::chrono::seconds(10));
      if (!n || *n == 0) break;
      got += text(std::span(buf).first(*n));
    }
    first = got;
    auto body = co_await c.send_all(bytes("hello"));
    REQUIRE(body);
    auto fin = co_await c.shutdown_send();
    REQUIRE(fin);
    rest = co_await recv_to_end(c);
  };
  sync_wait(io, when_all(server(), client()));
  REQUIRE(report);
  CHECK(report->requests == 2);
  const auto ok = first.find("HTTP/1.1 200");
  const auto cont = first.find("HTTP/1.1 100 Continue");
  REQUIRE(ok != std::string::npos);
  REQUIRE(cont != std::string::npos);
  CHECK(ok < cont);
  CHECK(bodies(first) == std::vector<std::string>{"/a"});
  CHECK(bodies(rest) == std::vector<std::string>{"/b:hello"});
}

TEST_CASE("Accepted HTTP connections get TCP_NODELAY unless the options turn it off") {
  io_context io;
  for (const bool on : {true, false}) {
    http::server_options o;
    o.tcp_nodelay = on;
    auto [c, s] = sync_wait(io, connected_pair(io));
    bool seen = !on;
    auto server = [&]() -> task<void> { (void)co_await http::serve_connection(s, echo_target, o); };
    auto client = [&]() -> task<void> {
      // Once the first response is back, the server has set its options.
      auto sent = co_await c.send_all(bytes(gets(0, 1)));
      REQUIRE(sent);
      std::array<std::byte, 512> buf;
      auto n = co_await c.recv(buf);
      REQUIRE(n);
      auto nd = s.nodelay();
      REQUIRE(nd);
      seen = *nd;
      auto fin = co_await c.shutdown_send();
      REQUIRE(fin);
      (void)co_await recv_to_end(c);
    };
    sync_wait(io, when_all(server(), client()));
    CHECK(seen == on);
  }
}
