// TCP behaviour every backend must show identically. Run once per backend by ctest
// (SLUICE_BACKEND=...); the backend under test is printed in each test's name.
#include "../support.hpp"

#include <algorithm>

using namespace sluice;
using namespace test;

TEST_CASE("Echo is correct under many concurrent connections") {
  io_context io;
  constexpr int conns = 100, rounds = 20;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  auto serve_one = [](tcp::stream s) -> task<void> {
    std::array<std::byte, 1024> buf;
    for (;;) {
      auto n = co_await s.recv(buf);
      if (!n || *n == 0) break;
      if (!co_await s.send_all(std::span(buf).first(*n))) break;
    }
  };
  auto server = [&]() -> task<void> {
    for (int i = 0; i < conns; ++i) {
      auto s = co_await acc->accept();
      REQUIRE(s);
      spawn(io, serve_one(std::move(*s)));
    }
  };
  auto client = [&](int id) -> task<int> {
    auto s = co_await tcp::connect(io, acc->local_endpoint());
    REQUIRE(s);
    int ok = 0;
    for (int r = 0; r < rounds; ++r) {
      const std::string msg = fmt::format("conn {} round {} {}", id, r, std::string(id + r, 'x'));
      auto sent_1 = co_await s->send_all(bytes(msg));
      REQUIRE(sent_1);
      if (co_await recv_exactly(*s, msg.size()) == msg) ++ok;
    }
    co_return ok;
  };
  std::vector<task<int>> clients;
  for (int i = 0; i < conns; ++i)
    clients.push_back(client(i));
  auto [ignored, oks] = sync_wait(io, when_all(server(), when_all(std::move(clients))));
  (void)ignored;
  for (int ok : oks)
    CHECK(ok == rounds);
}

TEST_CASE("Streams report their endpoints and accept options") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto cl = c.local_endpoint();
  auto sr = s.remote_endpoint();
  REQUIRE(cl);
  REQUIRE(sr);
  CHECK(*cl == *sr);
  CHECK(c.remote_endpoint()->port() == s.local_endpoint()->port());
  CHECK(c.set_nodelay(true));
  CHECK(fmt::format("{}", *sr).rfind("127.0.0.1:", 0) == 0);
}

TEST_CASE("A recv of 0 bytes means the peer closed its sending side") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto body = [&]() -> task<void> {
    auto sent_2 = co_await c.send_all(bytes("last words"));
    REQUIRE(sent_2);
    auto shut_3 = co_await c.shutdown_send();
    REQUIRE(shut_3);
    auto received_4 = co_await recv_to_end(s);
    CHECK(received_4 == "last words");
  };
  sync_wait(io, body());
}

TEST_CASE("Connecting to a closed port fails with connection_refused naming the endpoint") {
  io_context io;
  // Bind then close to find a port that nothing listens on.
  endpoint ep;
  {
    auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
    REQUIRE(acc);
    ep = acc->local_endpoint();
  }
  auto r = sync_wait(io, tcp::connect(io, ep));
  REQUIRE(!r);
  CHECK(r.error() == errc::connection_refused);
  CHECK(r.error().message().find(ep.to_string()) != std::string::npos);
}

TEST_CASE("Binding an address in use fails with address_in_use") {
  io_context io;
  auto a = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(a);
  auto b = tcp::acceptor::bind(io, a->local_endpoint());
  REQUIRE(!b);
  CHECK(b.error() == errc::address_in_use);
  CHECK(b.error().message().find(a->local_endpoint().to_string()) != std::string::npos);
}

TEST_CASE("IPv6 loopback works end to end") {
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v6(0));
  if (!acc) {
    WARN("no IPv6 loopback here: " << acc.error().message());
    return;
  }
  auto body = [&]() -> task<std::string> {
    auto [c, s] =
        co_await when_all(tcp::connect(io, acc->local_endpoint()), as_task(acc->accept()));
    REQUIRE(c);
    REQUIRE(s);
    auto sent_5 = co_await c->send_all(bytes("v6"));
    REQUIRE(sent_5);
    co_return co_await recv_exactly(*s, 2);
  };
  CHECK(sync_wait(io, body()) == "v6");
  CHECK(fmt::format("{}", acc->local_endpoint()).rfind("[::1]:", 0) == 0);
}

TEST_CASE("A peer reset while we send yields connection_reset or broken_pipe, no SIGPIPE") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto body = [&]() -> task<result<std::size_t>> {
    std::vector<std::byte> chunk(64 * 1024, std::byte{'z'});
    // The peer aborts (RST) without reading anything.
    (void)c.set_linger(true, 0);
    c.close();
    for (int i = 0; i < 1000; ++i) {
      auto r = co_await s.send(chunk);
      if (!r) co_return r;
    }
    co_return std::size_t{0};
  };
  auto r = sync_wait(io, body());
  REQUIRE(!r);
  CHECK((r.error() == errc::connection_reset || r.error() == errc::broken_pipe));
  CHECK(r.error().message().find("send (peer 127.0.0.1:") != std::string::npos);
}

TEST_CASE("A pending recv cancelled through its stop token completes with operation_aborted") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  std::stop_source src;
  std::array<std::byte, 16> buf;
  auto receiver = [&]() -> task<result<std::size_t>> { co_return co_await s.recv(buf); };
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(5ms);
    src.request_stop();
  };
  auto [r, ignored] =
      sync_wait(io, when_all(with_stop_token(receiver(), src.get_token()), stopper()));
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
  // The stream is still usable afterwards.
  auto again = [&]() -> task<std::string> {
    auto sent_6 = co_await c.send_all(bytes("after"));
    REQUIRE(sent_6);
    co_return co_await recv_exactly(s, 5);
  };
  CHECK(sync_wait(io, again()) == "after");
}

TEST_CASE("A pending accept cancelled through its stop token completes with operation_aborted") {
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  std::stop_source src;
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(5ms);
    src.request_stop();
  };
  auto [r, ignored] =
      sync_wait(io, when_all(with_stop_token(as_task(acc->accept()), src.get_token()), stopper()));
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

namespace {
// A listener whose accept queue is full: further connects stay pending (the kernel
// drops their SYNs) until cancelled.
struct full_listener {
  tcp::acceptor acc;
  std::vector<tcp::stream> fillers;
};
task<full_listener> make_full_listener(io_context& io) {
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0), 0);
  REQUIRE(acc);
  full_listener f{std::move(*acc), {}};
  for (int i = 0; i < 8; ++i) {
    auto c = co_await with_timeout(tcp::connect(io, f.acc.local_endpoint()),
                                   std::chrono::milliseconds(100));
    if (!c) break; // the queue is full
    f.fillers.push_back(std::move(*c));
  }
  co_return f;
}
} // namespace

TEST_CASE("A pending connect with a deadline fails with timed_out") {
  io_context io;
  auto f = sync_wait(io, make_full_listener(io));
  auto r = sync_wait(io, with_timeout(tcp::connect(io, f.acc.local_endpoint()), 50ms));
  REQUIRE(!r);
  CHECK(r.error() == errc::timed_out);
}

TEST_CASE("A pending connect cancelled through its stop token completes with operation_aborted") {
  io_context io;
  auto f = sync_wait(io, make_full_listener(io));
  std::stop_source src;
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(20ms);
    src.request_stop();
  };
  auto [r, ignored] = sync_wait(
      io, when_all(with_stop_token(tcp::connect(io, f.acc.local_endpoint()), src.get_token()),
                   stopper()));
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

TEST_CASE("close() completes a pending recv with operation_aborted") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  std::array<std::byte, 16> buf;
  auto receiver = [&]() -> task<result<std::size_t>> { co_return co_await s.recv(buf); };
  auto closer = [&]() -> task<void> {
    (void)co_await sleep_for(5ms);
    s.close();
  };
  auto [r, ignored] = sync_wait(io, when_all(receiver(), closer()));
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
  CHECK_FALSE(s.is_open());
}

TEST_CASE("A deadline on an operation: it fires while waiting, a result that comes first wins, "
          "a cancel stays a cancel") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  std::array<std::byte, 16> buf;
  // Fires: nothing arrives.
  auto r = sync_wait(io, with_timeout(s.recv(buf), 20ms));
  REQUIRE(!r);
  CHECK(r.error() == errc::timed_out);
  CHECK(r.error().message().find("deadline of 20 ms") != std::string::npos);
  // The data was already there: the result wins, and no stray timeout follows later.
  REQUIRE(sync_wait(io, as_task(c.send_all(bytes("ok")))));
  auto ok = sync_wait(io, with_timeout(s.recv(buf), 5s));
  REQUIRE(ok);
  CHECK(*ok == 2);
  auto quiet = sync_wait(io, as_task(sleep_for(io, 30ms))); // a linked timeout would fire here
  CHECK(quiet);
  // A cancel before the deadline: operation_aborted, not timed_out.
  stop_source stop;
  auto stopper = [&]() -> task<void> {
    co_await yield(io);
    stop.request_stop();
  };
  auto waiter = [&]() -> task<result<std::size_t>> {
    co_return co_await with_stop_token(as_task(with_timeout(s.recv(buf), 5s)), stop.get_token());
  };
  auto [cancelled, ignored] = sync_wait(io, when_all(waiter(), stopper()));
  (void)ignored;
  REQUIRE(!cancelled);
  CHECK(cancelled.error() == errc::operation_aborted);
  // A deadline already past: timed_out at once.
  auto past = sync_wait(io, with_timeout(s.recv(buf), -1ms));
  REQUIRE(!past);
  CHECK(past.error() == errc::timed_out);
  // The stream is still usable.
  REQUIRE(sync_wait(io, as_task(c.send_all(bytes("more")))));
  CHECK(sync_wait(io, recv_exactly(s, 4)) == "more");
}

TEST_CASE("Deadlines on many operations at once fire in order and only where due") {
  io_context io;
  constexpr int n = 50;
  std::vector<pair> pairs;
  for (int i = 0; i < n; ++i)
    pairs.push_back(sync_wait(io, connected_pair(io)));
  std::vector<int> order;
  auto waiter = [&](int i) -> task<void> {
    std::array<std::byte, 8> buf;
    // Odd ones have their data before they wait (no race with a slow machine); even
    // ones time out.
    auto r = co_await with_timeout(pairs[i].server.recv(buf), std::chrono::milliseconds(5 + i));
    if (!r && r.error() == errc::timed_out) order.push_back(i);
    if (i % 2 == 1) CHECK(r);
  };
  for (int i = 1; i < n; i += 2)
    REQUIRE(sync_wait(io, as_task(pairs[i].client.send_all(bytes("x")))));
  std::vector<task<void>> all;
  for (int i = 0; i < n; ++i)
    all.push_back(waiter(i));
  sync_wait(io, when_all(std::move(all)));

  REQUIRE(order.size() == n / 2);
  CHECK(std::is_sorted(order.begin(), order.end()));
}
