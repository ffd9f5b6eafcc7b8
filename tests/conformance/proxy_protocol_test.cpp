// sluice::server with the PROXY protocol on every backend: the client a v1 or v2 header
// names becomes the stream's remote_endpoint(), bytes after the header reach the handler
// first and whole (the header split over several sends included), a LOCAL header keeps
// the socket's address, and a malformed, missing or late header closes the connection
// with a log line naming the balancer and the reason, without calling the handler.
#include "../support.hpp"

#include <sluice/proto/proxy_protocol.hpp>
#include <sluice/server.hpp>

using namespace sluice;
using namespace test;
namespace proxy = sluice::proto::proxy;

namespace {

// Answers "<remote_endpoint> <first bytes>" and closes.
server::handler whoami(int& calls) {
  return [&calls](tcp::stream& s, stop_token) -> task<void> {
    ++calls;
    std::array<std::byte, 256> buf;
    auto n = co_await s.recv(buf);
    if (!n) co_return;
    auto peer = s.remote_endpoint();
    const std::string answer =
        fmt::format("{} {}", peer ? peer->to_string() : "?", text(std::span(buf).first(*n)));
    (void)co_await s.send_all(bytes(answer));
  };
}

proxy::header tcp4(std::array<std::uint8_t, 4> ip, std::uint16_t port) {
  proxy::header h;
  h.source.family = h.destination.family = proxy::address::kind::v4;
  std::copy(ip.begin(), ip.end(), h.source.ip.begin());
  h.source.port = port;
  h.destination.ip = {10, 0, 0, 1};
  h.destination.port = 443;
  return h;
}

struct outcome {
  std::string answer; // what the handler sent back, or "eof"/"reset"
  std::vector<std::string> log;
  int calls = 0;
};

// Serves one connection that sends `pieces` (with a few loop turns between them) and
// reads the answer to its end.
outcome one_connection(std::vector<std::string> pieces, proxy_protocol_options o = {}) {
  io_context io;
  server srv(io, loopback_acceptor(io));
  srv.set_proxy_protocol(o);
  outcome out;
  srv.set_log([&](std::string_view m) { out.log.emplace_back(m); });
  auto client = [&]() -> task<void> {
    auto c = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(c);
    for (const auto& p : pieces) {
      auto w = co_await c->send_all(bytes(p));
      if (!w) break;
      co_await yield_turns(io, 3);
    }
    std::array<std::byte, 512> buf;
    for (;;) {
      auto n = co_await with_timeout(c->recv(buf), std::chrono::seconds(30));
      if (!n) {
        out.answer += n.error() == errc::connection_reset ? "reset" : n.error().message();
        break;
      }
      if (*n == 0) {
        if (out.answer.empty()) out.answer = "eof";
        break;
      }
      out.answer += text(std::span(buf).first(*n));
    }
    (void)co_await srv.shutdown(1s);
  };
  sync_wait(io, when_all(srv.serve(whoami(out.calls)), client()));
  return out;
}

std::string as_text(const std::vector<std::byte>& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

} // namespace

TEST_CASE("proxy protocol: a v1 header's client is the remote endpoint; the bytes after it "
          "reach the handler") {
  auto r = one_connection({"PROXY TCP4 192.0.2.7 10.0.0.1 40001 443\r\nhello"});
  CHECK(r.answer == "192.0.2.7:40001 hello");
  CHECK(r.calls == 1);
  CHECK(r.log.empty());
  auto six = one_connection({"PROXY TCP6 2001:db8::7 ::1 5 443\r\n", "after"});
  CHECK(six.answer == "[2001:db8::7]:5 after");
}

TEST_CASE("proxy protocol: a v2 header split over several sends, with TLVs and CRC32C") {
  auto h = tcp4({198, 51, 100, 20}, 61000);
  h.tlvs.push_back({proxy::tlv_type::authority, {std::byte('e'), std::byte('x')}});
  const std::string wire = as_text(proxy::format_v2(h, true));
  auto r = one_connection({wire.substr(0, 5), wire.substr(5, 20), wire.substr(25) + "GET /"});
  CHECK(r.answer == "198.51.100.20:61000 GET /");
  CHECK(r.log.empty());
}

TEST_CASE("proxy protocol: a LOCAL header (a health check) keeps the socket's address") {
  proxy::header local;
  local.local = true;
  auto r = one_connection({as_text(proxy::format_v2(local)) + "ping"});
  CHECK(r.answer.starts_with("127.0.0.1:"));
  CHECK(r.answer.ends_with(" ping"));
  auto v1 = one_connection({"PROXY UNKNOWN\r\nping"});
  CHECK(v1.answer.starts_with("127.0.0.1:"));
}

TEST_CASE("proxy protocol: a malformed, missing, cut or late header closes the connection, "
          "logged, the handler never called") {
  auto bad = one_connection({"GET / HTTP/1.1\r\nHost: x\r\n\r\n"});
  CHECK(bad.calls == 0);
  CHECK((bad.answer == "eof" || bad.answer == "reset"));
  REQUIRE(bad.log.size() == 1);
  CHECK(bad.log[0].starts_with("PROXY protocol from 127.0.0.1:"));
  CHECK(bad.log[0].find(": not a PROXY protocol header") != std::string::npos);
  CHECK(bad.log[0].ends_with("; connection closed"));

  auto port = one_connection({"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"});
  CHECK(port.calls == 0);
  REQUIRE(port.log.size() == 1);
  CHECK(port.log[0].find("source port '99999' is not a number 0..65535") != std::string::npos);

  proxy_protocol_options small;
  small.limits.max_v2_length = 8;
  auto big = one_connection({as_text(proxy::format_v2(tcp4({1, 2, 3, 4}, 5)))}, small);
  REQUIRE(big.log.size() == 1);
  CHECK(big.log[0].find("above the limit of 8") != std::string::npos);

  proxy_protocol_options quick;
  quick.timeout = 50ms;
  auto late = one_connection({"PROXY TCP4 1.2.3.4"}, quick);
  CHECK(late.calls == 0);
  REQUIRE(late.log.size() == 1);
  CHECK(late.log[0].find("no whole PROXY header within 50 ms") != std::string::npos);
}

TEST_CASE("proxy protocol: a connection that ends inside its header is logged as such") {
  io_context io;
  server srv(io, loopback_acceptor(io));
  srv.set_proxy_protocol({});
  std::vector<std::string> log;
  srv.set_log([&](std::string_view m) { log.emplace_back(m); });
  int calls = 0;
  auto client = [&]() -> task<void> {
    auto c = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(c);
    auto w = co_await c->send_all(bytes("PROXY TCP4 1.2.3.4 "));
    REQUIRE(w);
    auto fin = co_await c->shutdown_send();
    REQUIRE(fin);
    (void)co_await recv_to_end(*c);
    for (int i = 0; i < 1000 && log.empty(); ++i)
      (void)co_await sleep_for(1ms);
    (void)co_await srv.shutdown(1s);
  };
  sync_wait(io, when_all(srv.serve(whoami(calls)), client()));
  CHECK(calls == 0);
  REQUIRE(log.size() == 1);
  CHECK(log[0].find("the connection ended after 19 bytes, before a whole PROXY header") !=
        std::string::npos);
}

TEST_CASE("proxy protocol: with a parking handler, the header is read once; a drain during it "
          "closes quietly") {
  io_context io;
  server srv(io, loopback_acceptor(io));
  srv.set_proxy_protocol({});
  std::vector<std::string> log;
  srv.set_log([&](std::string_view m) { log.emplace_back(m); });
  std::vector<std::string> seen;
  server::parking_handler echo_peer = [&](tcp::stream& s, stop_token) -> task<server::after> {
    auto in = co_await s.recv_some();
    if (!in || in->empty()) co_return server::after::close();
    auto peer = s.remote_endpoint();
    seen.push_back(fmt::format("{} {}", peer ? peer->to_string() : "?", text(in->data())));
    (void)co_await s.send_all(in->data());
    co_return server::after::park(60s);
  };
  auto client = [&]() -> task<void> {
    auto c = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(c);
    auto w1 = co_await c->send_all(bytes("PROXY TCP4 203.0.113.9 10.0.0.1 7000 80\r\none"));
    REQUIRE(w1);
    const std::string one = co_await recv_exactly(*c, 3);
    CHECK(one == "one");
    for (int i = 0; i < 1000 && srv.parked() == 0; ++i)
      (void)co_await sleep_for(1ms);
    auto w2 = co_await c->send_all(bytes("two"));
    REQUIRE(w2);
    const std::string two = co_await recv_exactly(*c, 3);
    CHECK(two == "two");
    // A second connection that never sends its header: the drain closes it, unlogged.
    auto quiet = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(quiet);
    co_await yield_turns(io, 5);
    auto report = co_await srv.shutdown(5s);
    CHECK(report.aborted == 0);
  };
  sync_wait(io, when_all(srv.serve(echo_peer), client()));
  CHECK(seen == std::vector<std::string>{"203.0.113.9:7000 one", "203.0.113.9:7000 two"});
  CHECK(log.empty());
}
