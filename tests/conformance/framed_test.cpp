// framed_stream over real sockets: recv_disconnect yields the peer's disconnect data.
#include "../support.hpp"

using namespace sluice;
using namespace test;

namespace {
struct framed_pair {
  framed_stream a;
  framed_stream b;
};
task<framed_pair> make_framed_pair(io_context& io, proto::framing::limits l = {}) {
  auto p = co_await connected_pair(io);
  co_return framed_pair{framed_stream(std::move(p.client), l),
                        framed_stream(std::move(p.server), l)};
}
} // namespace

TEST_CASE("framed_stream keeps message boundaries and ends at the peer's CLOSE") {
  io_context io;
  auto [a, b] = sync_wait(io, make_framed_pair(io));
  auto body = [&]() -> task<std::vector<std::string>> {
    for (auto m : {"one", "", "three"}) {
      auto sent = co_await a.send(bytes(m));
      REQUIRE(sent);
    }
    auto closed = co_await a.send_disconnect(bytes("bye"));
    REQUIRE(closed);
    std::vector<std::string> got;
    for (;;) {
      auto m = co_await b.recv();
      REQUIRE(m);
      if (!*m) break;
      got.push_back(text(**m));
    }
    co_return got;
  };
  CHECK(sync_wait(io, body()) == std::vector<std::string>{"one", "", "three"});
  CHECK(b.peer_closed());
}

TEST_CASE("framed recv_disconnect yields the peer's disconnect data") {
  io_context io;
  auto [a, b] = sync_wait(io, make_framed_pair(io));
  auto body = [&]() -> task<std::string> {
    auto closed = co_await a.send_disconnect(bytes("shutting down for maintenance"));
    REQUIRE(closed);
    auto end = co_await b.recv();
    REQUIRE(end);
    REQUIRE_FALSE(end->has_value());
    std::array<std::byte, 64> buf{};
    auto n = co_await b.recv_disconnect(buf);
    REQUIRE(n);
    co_return text(std::span(buf).first(*n));
  };
  CHECK(sync_wait(io, body()) == "shutting down for maintenance");
}

TEST_CASE("A buffer too small is buffer_too_small, and a retry with a larger one gets the data") {
  io_context io;
  auto [a, b] = sync_wait(io, make_framed_pair(io));
  auto body = [&]() -> task<void> {
    auto closed = co_await a.send_disconnect(bytes("0123456789"));
    REQUIRE(closed);
    auto end = co_await b.recv();
    REQUIRE(end);
    std::array<std::byte, 4> small{};
    auto r1 = co_await b.recv_disconnect(small);
    REQUIRE(!r1);
    CHECK(r1.error() == errc::buffer_too_small);
    CHECK(b.next_layer().lifecycle().receive_side() == proto::side_state::open);
    std::array<std::byte, 10> exact{};
    auto r2 = co_await b.recv_disconnect(exact);
    REQUIRE(r2);
    CHECK(text(std::span(exact).first(*r2)) == "0123456789");
    // A second call succeeds with no data.
    auto r3 = co_await b.recv_disconnect(exact);
    REQUIRE(r3);
    CHECK(*r3 == 0);
  };
  sync_wait(io, body());
}

TEST_CASE("After framed recv_disconnect, buffered messages are not delivered") {
  io_context io;
  auto [a, b] = sync_wait(io, make_framed_pair(io));
  auto body = [&]() -> task<void> {
    auto s1 = co_await a.send(bytes("first"));
    auto s2 = co_await a.send(bytes("second"));
    REQUIRE((s1 && s2));
    auto m = co_await b.recv(); // reads both into the buffer, returns the first
    REQUIRE(m);
    std::array<std::byte, 8> buf{};
    auto d = co_await b.recv_disconnect(buf);
    REQUIRE(d);
    CHECK(*d == 0); // the peer's CLOSE had not arrived
    auto after = co_await b.recv();
    REQUIRE(!after);
    CHECK(after.error() == errc::shut_down);
  };
  sync_wait(io, body());
}

TEST_CASE("A peer that breaks the framing yields protocol_error naming the violation") {
  io_context io;
  auto p = sync_wait(io, connected_pair(io));
  framed_stream b(std::move(p.server));
  auto body = [&]() -> task<void> {
    const unsigned char junk[] = {0x09, 0, 0, 0, 1, 'x'};
    auto sent = co_await p.client.send_all(std::as_bytes(std::span(junk)));
    REQUIRE(sent);
    auto r = co_await b.recv();
    REQUIRE(!r);
    CHECK(r.error() == errc::protocol_error);
    CHECK(r.error().message().find("unknown_frame_type") != std::string::npos);
  };
  sync_wait(io, body());
}

TEST_CASE("A transport that ends without CLOSE is connection_aborted") {
  io_context io;
  auto p = sync_wait(io, connected_pair(io));
  framed_stream b(std::move(p.server));
  auto body = [&]() -> task<void> {
    auto shut = co_await p.client.shutdown_send();
    REQUIRE(shut);
    auto r = co_await b.recv();
    REQUIRE(!r);
    CHECK(r.error() == errc::connection_aborted);
  };
  sync_wait(io, body());
}

TEST_CASE("Messages above the limit are refused locally and by the receiver") {
  io_context io;
  proto::framing::limits l;
  l.max_message = 8;
  auto [a, b] = sync_wait(io, make_framed_pair(io, l));
  auto r = sync_wait(io, a.send(bytes("123456789")));
  REQUIRE(!r);
  CHECK(r.error() == errc::message_too_large);
}

TEST_CASE(
    "Transports say whether they carry disconnect data; TCP does not, framing and WebSocket do") {
  STATIC_REQUIRE(framed_stream::carries_disconnect_data());
  STATIC_REQUIRE_FALSE(tcp::stream::carries_disconnect_data());
  auto list = transports();
  REQUIRE(list.size() >= 2);
  bool tcp_seen = false, framed_seen = false, websocket_seen = false;
  for (const auto& t : list) {
    if (t.name == "tcp") tcp_seen = !t.carries_disconnect_data;
    if (t.name == "framed") framed_seen = t.carries_disconnect_data;
    if (t.name == "websocket") websocket_seen = t.carries_disconnect_data;
  }
  CHECK(tcp_seen);
  CHECK(framed_seen);
  CHECK(websocket_seen);
}
