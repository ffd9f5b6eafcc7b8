// The recv_disconnect contract of docs/architecture.md, row by row, for TCP.
#include "../support.hpp"

#include <optional>
#include <thread>

using namespace sluice;
using namespace test;

TEST_CASE("recv_disconnect on a connected stream succeeds with no data and leaves the buffer "
          "untouched") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  std::array<std::byte, 8> buf;
  buf.fill(std::byte{0x5a});
  auto r = sync_wait(io, as_task(s.recv_disconnect(buf)));
  REQUIRE(r);
  CHECK(*r == 0);
  for (auto b : buf)
    CHECK(b == std::byte{0x5a});
  CHECK(s.lifecycle().receive_side() == proto::side_state::shut);
}

TEST_CASE("recv_disconnect on an unconnected stream is not_connected") {
  io_context io;
  auto s = tcp::stream::open(io);
  REQUIRE(s);
  auto r = sync_wait(io, as_task(s->recv_disconnect()));
  REQUIRE(!r);
  CHECK(r.error() == errc::not_connected);
}

TEST_CASE("recv_disconnect on a closed stream is not_a_socket") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  s.close();
  auto r = sync_wait(io, as_task(s.recv_disconnect()));
  REQUIRE(!r);
  CHECK(r.error() == errc::not_a_socket);
}

TEST_CASE("recv_disconnect on a moved-from stream is not_a_socket") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  tcp::stream other = std::move(s);
  auto r = sync_wait(io, as_task(s.recv_disconnect())); // NOLINT(bugprone-use-after-move)
  REQUIRE(!r);
  CHECK(r.error() == errc::not_a_socket);
  CHECK(other.is_open());
}

TEST_CASE("recv_disconnect on a default-constructed stream is not_a_socket") {
  io_context io;
  tcp::stream s;
  auto r = sync_wait(io, as_task(s.recv_disconnect()));
  REQUIRE(!r);
  CHECK(r.error() == errc::not_a_socket);
}

TEST_CASE("recv_disconnect when the stream's io_context is gone is not_initialised") {
  std::optional<io_context> owner(std::in_place);
  auto [c, s] = sync_wait(*owner, connected_pair(*owner));
  owner.reset();
  io_context other; // only drives the awaiting coroutine
  auto r = sync_wait(other, as_task(s.recv_disconnect()));
  REQUIRE(!r);
  CHECK(r.error() == errc::not_initialised);
}

TEST_CASE("A second recv_disconnect while one is in flight is in_progress") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto [a, b] = sync_wait(io, when_all(boxed(s.recv_disconnect()), boxed(s.recv_disconnect())));
  REQUIRE(a.value);
  REQUIRE(!b.value);
  CHECK(b.value.error() == errc::in_progress);
}

TEST_CASE("A second recv_disconnect after success succeeds with no data") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  REQUIRE(sync_wait(io, as_task(s.recv_disconnect())));
  auto again = sync_wait(io, as_task(s.recv_disconnect()));
  REQUIRE(again);
  CHECK(*again == 0);
}

TEST_CASE("A recv pending at recv_disconnect completes with shut_down and no data") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  std::array<std::byte, 64> buf;
  auto receiver = [&]() -> task<result<std::size_t>> { co_return co_await s.recv(buf); };
  auto disconnecter = [&]() -> task<result<std::size_t>> {
    (void)co_await sleep_for(5ms); // the recv is in flight by now
    auto r = co_await s.recv_disconnect();
    // Linux would now deliver this to a pending recv; the contract says it must not.
    (void)co_await c.send_all(bytes("late data"));
    co_return r;
  };
  auto [r, d] = sync_wait(io, when_all(receiver(), disconnecter()));
  REQUIRE(d);
  REQUIRE(!r);
  CHECK(r.error() == errc::shut_down);
}

TEST_CASE("Data queued before recv_disconnect is never delivered") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto body = [&]() -> task<result<std::size_t>> {
    auto sent_1 = co_await c.send_all(bytes("queued"));
    REQUIRE(sent_1);
    (void)co_await sleep_for(10ms); // let it reach s's receive queue
    auto disconnected_2 = co_await s.recv_disconnect();
    REQUIRE(disconnected_2);
    std::array<std::byte, 64> buf;
    co_return co_await s.recv(buf);
  };
  auto r = sync_wait(io, body());
  REQUIRE(!r);
  CHECK(r.error() == errc::shut_down);
}

TEST_CASE("Data arriving after recv_disconnect is never delivered") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto body = [&]() -> task<std::vector<result<std::size_t>>> {
    auto disconnected_3 = co_await s.recv_disconnect();
    REQUIRE(disconnected_3);
    auto sent_4 = co_await c.send_all(bytes("after"));
    REQUIRE(sent_4);
    (void)co_await sleep_for(10ms);
    std::vector<result<std::size_t>> out;
    std::array<std::byte, 64> buf;
    for (int i = 0; i < 3; ++i)
      out.push_back(co_await s.recv(buf));
    co_return out;
  };
  for (auto& r : sync_wait(io, body())) {
    REQUIRE(!r);
    CHECK(r.error() == errc::shut_down);
  }
}

TEST_CASE("After recv_disconnect the send side still works") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto body = [&]() -> task<std::string> {
    auto disconnected_5 = co_await s.recv_disconnect();
    REQUIRE(disconnected_5);
    auto sent_6 = co_await s.send_all(bytes("still sending"));
    REQUIRE(sent_6);
    auto shut_7 = co_await s.shutdown_send();
    REQUIRE(shut_7);
    co_return co_await recv_to_end(c);
  };
  CHECK(sync_wait(io, body()) == "still sending");
}

TEST_CASE("recv_disconnect does not close the socket: it stays open until close()") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  REQUIRE(sync_wait(io, as_task(s.recv_disconnect())));
  CHECK(s.is_open());
  CHECK(s.local_endpoint());
  CHECK(s.remote_endpoint());
  s.close();
  CHECK_FALSE(s.is_open());
}

TEST_CASE("recv_disconnect completes without the peer doing anything, with or without "
          "SO_LINGER") {
  io_context io;
  for (bool linger : {false, true}) {
    auto [c, s] = sync_wait(io, connected_pair(io));
    REQUIRE(s.set_linger(linger, 30));
    // The peer neither reads, sends nor closes. A deadline far below the linger time
    // proves the call did not wait for the network.
    auto r = sync_wait(io, with_timeout(s.recv_disconnect(), 5s));
    REQUIRE(r);
  }
}

TEST_CASE("TCP carries no disconnect data: send_disconnect with data is no_protocol_option") {
  io_context io;
  STATIC_REQUIRE_FALSE(tcp::stream::carries_disconnect_data());
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto r = sync_wait(io, as_task(s.send_disconnect(bytes("reason"))));
  REQUIRE(!r);
  CHECK(r.error() == errc::no_protocol_option);
  // Nothing was shut: the stream still sends.
  auto body = [&]() -> task<std::string> {
    auto sent_8 = co_await s.send_all(bytes("x"));
    REQUIRE(sent_8);
    co_return co_await recv_exactly(c, 1);
  };
  CHECK(sync_wait(io, body()) == "x");
}

TEST_CASE("After send_disconnect the peer sees end of stream and further sends are shut_down") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto body = [&]() -> task<void> {
    auto shut_9 = co_await s.send_disconnect();
    REQUIRE(shut_9);
    std::array<std::byte, 8> buf;
    auto eof = co_await c.recv(buf);
    REQUIRE(eof);
    CHECK(*eof == 0);
    auto again = co_await s.send(bytes("no"));
    REQUIRE(!again);
    CHECK(again.error() == errc::shut_down);
  };
  sync_wait(io, body());
}

TEST_CASE("recv_disconnect after both sides closed their sending side still succeeds") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto body = [&]() -> task<result<std::size_t>> {
    auto a = co_await c.shutdown_send();
    auto b = co_await s.shutdown_send();
    REQUIRE((a && b));
    std::array<std::byte, 4> buf;
    auto eof = co_await s.recv(buf);
    REQUIRE(eof);
    CHECK(*eof == 0);
    c.close(); // the connection is fully over now
    (void)co_await sleep_for(10ms);
    co_return co_await s.recv_disconnect();
  };
  auto r = sync_wait(io, body());
  REQUIRE(r);
  CHECK(*r == 0);
}
