// The HTTP driver, on every backend: the responses to pipelined requests leave in one
// send per read (bounded), in order; a handler that throws or returns a response that
// cannot be written is answered 500 and the connection goes on; every response has a
// Date. Real clients (curl, h11) drive it in tests/peers/http_peers.py.
#include "../support.hpp"

#include <sluice/http/server.hpp>

using namespace sluice;
using namespace test;

namespace {

task<http::response> echo_target(const http::request& req, std::string body) {
  http::response r;
  r.headers.add("Content-Type", "text/plain");
  if (req.target == "/boom") throw std::runtime_error("the handler broke");
  if (req.target == "/bad-header") r.headers.add("X-Split", "a\r\nInjected: 1");
  if (req.target == "/bad-status") r.status = 42;
  r.body = req.target + (body.empty() ? "" : ":" + body);
  co_return r;
}

std::string gets(int from, int to) {
  std::string all;
  for (int i = from; i < to; ++i)
    all += fmt::format("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", i);
  return all;
}

// The status codes of the responses in `raw`, in order.
std::vector<int> statuses(const std::string& raw) {
  std::vector<int> out;
  for (std::size_t at = 0; (at = raw.find("HTTP/1.1 ", at)) != std::string::npos; at += 9)
    out.push_back(std::stoi(raw.substr(at + 9, 3)));
  return out;
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

TEST_CASE("A handler that throws is answered 500 and logged; the connection goes on") {
  io_context io;
  std::vector<std::string> logged;
  http::server_options o;
  o.log = [&](std::string_view m) { logged.emplace_back(m); };
  const auto r = pipeline(io, gets(0, 1) + "GET /boom HTTP/1.1\r\nHost: x\r\n\r\n" + gets(2, 3), o);
  REQUIRE(r.report);
  CHECK(r.report->requests == 3);
  CHECK(r.report->internal_errors == 1);
  CHECK(statuses(r.received) == std::vector<int>{200, 500, 200});
  CHECK(bodies(r.received) == std::vector<std::string>{"/0", "internal server error\n", "/2"});
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find("GET /boom") != std::string::npos);
  CHECK(logged[0].find("the handler broke") != std::string::npos);
}

TEST_CASE("A response that cannot be written (a CR/LF in a field, a status outside 100-999) is "
          "answered 500, never sent malformed") {
  io_context io;
  std::vector<std::string> logged;
  http::server_options o;
  o.log = [&](std::string_view m) { logged.emplace_back(m); };
  const auto r = pipeline(io,
                          "GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /bad-status HTTP/1.1\r\nHost: x\r\n\r\n" +
                              gets(0, 1),
                          o);
  REQUIRE(r.report);
  CHECK(r.report->internal_errors == 2);
  CHECK(statuses(r.received) == std::vector<int>{500, 500, 200});
  CHECK(r.received.find("Injected") == std::string::npos);
  CHECK(r.received.find("X-Split") == std::string::npos);
  REQUIRE(logged.size() == 2);
  CHECK(logged[0].find("/bad-header") != std::string::npos);
  CHECK(logged[1].find("status code out of range") != std::string::npos);
}

TEST_CASE("Every response carries a Date header in IMF-fixdate form") {
  io_context io;
  const auto r = pipeline(io, gets(0, 2));
  REQUIRE(r.report);
  std::vector<std::string> dates;
  for (std::size_t at = 0; (at = r.received.find("\r\nDate: ", at)) != std::string::npos; ++at)
    dates.push_back(r.received.substr(at + 8, r.received.find("\r\n", at + 2) - at - 8));
  REQUIRE(dates.size() == 2);
  for (const auto& d : dates) { // e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
    CAPTURE(d);
    CHECK(d.size() == 29);
    CHECK(d.substr(3, 2) == ", ");
    CHECK(d.substr(25) == " GMT");
  }
  http::server_options off;
  off.date_header = false;
  const auto without = pipeline(io, gets(0, 1), off);
  CHECK(without.received.find("Date:") == std::string::npos);
}

namespace {
// Serves one connection while `trickle` sends `data` one byte per `every`, stopping as
// soon as the server answers (or after all of it); returns what the client received.
struct trickle_result {
  result<http::connection_report> report = error(errc::not_a_socket, "not run");
  std::string received;
};
trickle_result trickle(io_context& io, const http::server_options& o, std::string prefix,
                       std::string data, std::chrono::milliseconds every) {
  auto [c, s] = sync_wait(io, connected_pair(io));
  trickle_result out;
  bool answered = false;
  auto server = [&]() -> task<void> {
    out.report = co_await http::serve_connection(s, echo_target, o);
  };
  auto sender = [&]() -> task<void> {
    auto first = co_await c.send_all(bytes(prefix));
    if (!first) co_return;
    for (char ch : data) {
      if (answered) break;
      auto one = co_await c.send_all(bytes(std::string(1, ch)));
      if (!one) break;
      (void)co_await sleep_for(io, every);
    }
  };
  auto reader = [&]() -> task<void> {
    out.received = co_await recv_to_end(c);
    answered = true;
    c.close(); // the server's lingering close sees it at once
  };
  sync_wait(io, when_all(server(), sender(), reader()));
  return out;
}
} // namespace

TEST_CASE("A request head trickled byte by byte is answered 408 at its total deadline") {
  io_context io;
  http::server_options o;
  o.header_timeout = std::chrono::milliseconds(200); // each byte comes well within it
  const auto r =
      trickle(io, o, "GET / HTTP/1.1\r\n", std::string(400, 'x').insert(0, "X-Slow: ") + "\r\n\r\n",
              std::chrono::milliseconds(20));
  REQUIRE(r.report);
  CHECK(r.report->rejected_status == 408);
  CHECK(r.report->requests == 0);
  CHECK(statuses(r.received) == std::vector<int>{408});
  CHECK(r.received.find("Connection: close") != std::string::npos);
}

TEST_CASE("A request body trickled below min_body_rate is answered 408") {
  io_context io;
  http::server_options o;
  o.body_timeout = std::chrono::milliseconds(300); // each byte comes well within it
  o.min_body_rate = 100;                           // bytes/s; it gets about 50
  const auto r = trickle(io, o, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n",
                         std::string(400, 'b'), std::chrono::milliseconds(20));
  REQUIRE(r.report);
  CHECK(r.report->rejected_status == 408);
  CHECK(r.report->requests == 0);
  CHECK(statuses(r.received) == std::vector<int>{408});
}

TEST_CASE("A request body that keeps up with min_body_rate is read whole") {
  io_context io;
  http::server_options o;
  o.body_timeout = std::chrono::milliseconds(2'000);
  o.min_body_rate = 10; // bytes/s; it gets about 50
  // Connection: close, so that the reader's end of stream comes with the answer (not
  // after the keep-alive idle timeout).
  const auto r = trickle(
      io, o, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 20\r\n\r\n",
      std::string(20, 'b'), std::chrono::milliseconds(20));
  REQUIRE(r.report);
  CHECK(r.report->rejected_status == 0);
  CHECK(statuses(r.received) == std::vector<int>{200});
  CHECK(bodies(r.received) == std::vector<std::string>{"/echo:" + std::string(20, 'b')});
}

TEST_CASE("A client that stops reading a response is reset after send_timeout") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  http::server_options o;
  o.send_timeout = std::chrono::milliseconds(200);
  auto big = [](const http::request&, std::string) -> task<http::response> {
    http::response r;
    r.body.assign(8 << 20, 'z'); // far more than the socket buffers hold
    co_return r;
  };
  result<http::connection_report> report = error(errc::not_a_socket, "not run");
  result<std::size_t> client_saw = std::size_t{0};
  auto server = [&]() -> task<void> { report = co_await http::serve_connection(s, big, o); };
  auto client = [&]() -> task<void> {
    auto sent = co_await c.send_all(bytes(gets(0, 1)));
    REQUIRE(sent);
    while (!report.has_value() && report.error() == errc::not_a_socket &&
           report.error().context() == "not run")
      (void)co_await sleep_for(io, std::chrono::milliseconds(20)); // never reads meanwhile
    std::array<std::byte, 4096> buf;
    for (int i = 0; i < 10'000; ++i) { // bounded: drains what was sent, then the reset
      client_saw = co_await with_timeout(c.recv(buf), std::chrono::seconds(10));
      if (!client_saw || *client_saw == 0) break;
    }
  };
  sync_wait(io, when_all(server(), client()));
  REQUIRE(!report);
  CHECK(report.error() == errc::timed_out);
  CHECK(report.error().message().find("send") != std::string::npos);
  // The client sees the reset once it has read what had already reached it. (Under
  // Wine the abortive close can arrive as an end of stream instead.)
  CAPTURE(client_saw ? fmt::format("{} bytes", *client_saw) : client_saw.error().message());
#ifdef _WIN32
  CHECK((!client_saw ? client_saw.error() == errc::connection_reset : *client_saw == 0));
#else
  REQUIRE(!client_saw);
  CHECK(client_saw.error() == errc::connection_reset);
#endif
}

namespace {
// Whole responses (heads and Content-Length bodies) at the start of `raw`.
std::size_t complete_responses(const std::string& raw) {
  std::size_t count = 0, at = 0;
  for (;;) {
    const std::size_t head_end = raw.find("\r\n\r\n", at);
    const std::size_t length = raw.find("Content-Length: ", at);
    if (head_end == std::string::npos || length == std::string::npos || length > head_end)
      return count;
    const std::size_t end = head_end + 4 + std::stoul(raw.substr(length + 16));
    if (end > raw.size()) return count;
    ++count;
    at = end;
  }
}

// Reads until `raw` holds `n` whole responses (or the stream ends), bounded.
task<std::string> read_responses(tcp::stream& c, std::size_t n) {
  std::string raw;
  std::array<std::byte, 4096> buf;
  while (complete_responses(raw) < n) {
    auto r = co_await with_timeout(c.recv(buf), std::chrono::seconds(10));
    if (!r || *r == 0) break;
    raw += text(std::span(buf).first(*r));
  }
  co_return raw;
}

// What the next read sees: "eof", "more bytes", or the error (bounded).
task<std::string> next_read(tcp::stream& c) {
  std::array<std::byte, 64> buf;
  auto n = co_await with_timeout(c.recv(buf), std::chrono::seconds(10));
  co_return !n ? n.error().message() : *n == 0 ? "eof" : "more bytes";
}

task<bool> parked_soon(sluice::server& srv, std::size_t n) {
  for (int i = 0; i < 10'000 && srv.parked() != n; ++i)
    (void)co_await sleep_for(std::chrono::milliseconds(1));
  co_return srv.parked() == n;
}
} // namespace

TEST_CASE("parking_handler parks a keep-alive connection between requests, pipelined or "
          "not, and a drain closes it") {
  io_context io;
  sluice::server srv(io, loopback_acceptor(io));
  std::string first, pipelined, end = "open";
  bool parked_after_first = false, parked_after_pipelined = false;
  auto client = [&]() -> task<void> {
    auto c = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(c);
    auto w = co_await c->send_all(bytes(gets(0, 1)));
    REQUIRE(w);
    first = co_await read_responses(*c, 1);
    parked_after_first = co_await parked_soon(srv, 1);
    w = co_await c->send_all(bytes(gets(1, 4))); // three requests in one send
    REQUIRE(w);
    pipelined = co_await read_responses(*c, 3);
    parked_after_pipelined = co_await parked_soon(srv, 1);
    (void)co_await srv.shutdown(std::chrono::seconds(5));
    end = co_await next_read(*c);
  };
  http::server_options o;
  o.park_after = std::chrono::milliseconds(0); // parks as soon as it is idle
  sync_wait(io, when_all(srv.serve(http::parking_handler(echo_target, o)), client()));
  CHECK(bodies(first) == std::vector<std::string>{"/0"});
  CHECK(bodies(pipelined) == std::vector<std::string>{"/1", "/2", "/3"});
  CHECK(parked_after_first);
  CHECK(parked_after_pipelined);
  CHECK(end == "eof");
  CHECK(srv.connections() == 0);
}

TEST_CASE("parking_handler closes a parked connection at its idle_timeout") {
  io_context io;
  sluice::server srv(io, loopback_acceptor(io));
  http::server_options o;
  o.idle_timeout = std::chrono::milliseconds(30);
  std::string first, end = "open";
  std::size_t open_after = 99;
  auto client = [&]() -> task<void> {
    auto c = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(c);
    auto w = co_await c->send_all(bytes(gets(0, 1)));
    REQUIRE(w);
    first = co_await read_responses(*c, 1);
    end = co_await next_read(*c);
    for (int i = 0; i < 10'000 && srv.connections() != 0; ++i)
      (void)co_await sleep_for(std::chrono::milliseconds(1));
    open_after = srv.connections();
    (void)co_await srv.shutdown(std::chrono::seconds(5));
  };
  sync_wait(io, when_all(srv.serve(http::parking_handler(echo_target, o)), client()));
  CHECK(bodies(first) == std::vector<std::string>{"/0"});
  CHECK(end == "eof");
  CHECK(open_after == 0);
}

TEST_CASE("parking_handler keeps an idle connection's frame for park_after before it parks") {
  io_context io;
  sluice::server srv(io, loopback_acceptor(io));
  http::server_options o;
  o.park_after = std::chrono::seconds(60); // longer than this test
  o.idle_timeout = std::chrono::seconds(120);
  std::string first, second;
  std::size_t parked_between = 99, open_between = 0;
  auto client = [&]() -> task<void> {
    auto c = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(c);
    auto w = co_await c->send_all(bytes(gets(0, 1)));
    REQUIRE(w);
    first = co_await read_responses(*c, 1);
    for (int i = 0; i < 20; ++i) // some loop turns: it stays in its frame
      (void)co_await sleep_for(std::chrono::milliseconds(1));
    parked_between = srv.parked();
    open_between = srv.connections();
    w = co_await c->send_all(bytes(gets(1, 2)));
    REQUIRE(w);
    second = co_await read_responses(*c, 1);
    (void)co_await srv.shutdown(std::chrono::seconds(5)); // the waiting frame is stopped
  };
  sync_wait(io, when_all(srv.serve(http::parking_handler(echo_target, o)), client()));
  CHECK(bodies(first) == std::vector<std::string>{"/0"});
  CHECK(bodies(second) == std::vector<std::string>{"/1"});
  CHECK(parked_between == 0);
  CHECK(open_between == 1);
  CHECK(srv.connections() == 0);
}
