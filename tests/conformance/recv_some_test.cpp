// recv_some: receives into buffers the backend lends from its io_context's pool
// (io_uring: a multishot recv on a provided-buffer ring; Asio: read on readiness;
// IOCP: a zero-byte WSARecv, then the read).
#include "../support.hpp"

#include <algorithm>
#include <vector>

using namespace sluice;
using namespace test;

namespace {

// Everything recv_some yields until the end of the stream (or `limit` bytes).
task<std::string> drain_some(tcp::stream& s, std::size_t limit = std::string::npos) {
  std::string out;
  while (out.size() < limit) {
    auto b = co_await s.recv_some();
    if (!b || b->empty()) break;
    out += text(b->data());
  }
  co_return out;
}

std::string pattern_text(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

} // namespace

TEST_CASE("recv_some yields the bytes in lent buffers, then an empty one at the end") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto writer = [&]() -> task<void> {
    for (int i = 0; i < 3; ++i) {
      auto w = co_await c.send_all(bytes(fmt::format("part{};", i)));
      REQUIRE(w);
      co_await yield(io);
    }
    auto f = co_await c.shutdown_send();
    REQUIRE(f);
  };
  auto [ignored, got] = sync_wait(io, when_all(writer(), drain_some(s)));
  (void)ignored;
  CHECK(got == "part0;part1;part2;");
}

TEST_CASE("recv and recv_some mixed on one stream: bytes come out in order") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  const std::string all = pattern_text(200'000, 3);
  auto writer = [&]() -> task<void> {
    auto w = co_await c.send_all(bytes(all));
    REQUIRE(w);
    (void)co_await c.shutdown_send();
  };
  auto reader = [&]() -> task<std::string> {
    std::string out;
    std::array<std::byte, 1000> small;
    for (int round = 0;; ++round) {
      if (round % 2 == 0) {
        auto b = co_await s.recv_some();
        REQUIRE(b);
        if (b->empty()) break;
        out += text(b->data());
      } else { // a smaller buffer than the lent ones: the rest stays first in line
        auto n = co_await s.recv(small);
        REQUIRE(n);
        if (*n == 0) break;
        out += text(std::span(small).first(*n));
      }
    }
    co_return out;
  };
  auto [ignored, got] = sync_wait(io, when_all(writer(), reader()));
  (void)ignored;
  CHECK(got.size() == all.size());
  CHECK(got == all);
}

TEST_CASE("A cancelled or timed-out recv_some loses nothing; the next one gets the bytes") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto r = sync_wait(io, with_timeout(s.recv_some(), 20ms));
  REQUIRE(!r);
  CHECK(r.error() == errc::timed_out);
  CHECK(r.error().message().find("recv_some") != std::string::npos);
  stop_source stop;
  auto waiter = [&]() -> task<result<lent_buffer>> {
    co_return co_await with_stop_token(as_task(s.recv_some()), stop.get_token());
  };
  auto stopper = [&]() -> task<void> {
    co_await yield(io);
    stop.request_stop();
  };
  auto [aborted, ignored] = sync_wait(io, when_all(waiter(), stopper()));
  (void)ignored;
  REQUIRE(!aborted);
  CHECK(aborted.error() == errc::operation_aborted);
  REQUIRE(sync_wait(io, as_task(c.send_all(bytes("kept")))));
  CHECK(sync_wait(io, drain_some(s, 4)) == "kept");
}

TEST_CASE("recv_some after recv_disconnect is shut_down; close ends a waiting one") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  REQUIRE(sync_wait(io, as_task(c.send_all(bytes("discarded")))));
  auto first = sync_wait(io, as_task(s.recv_some())); // the receiver is running now
  REQUIRE(first);
  REQUIRE(sync_wait(io, as_task(s.recv_disconnect())));
  auto after = sync_wait(io, as_task(s.recv_some()));
  REQUIRE(!after);
  CHECK(after.error() == errc::shut_down);

  auto [c2, s2] = sync_wait(io, connected_pair(io));
  result<lent_buffer> waited = lent_buffer();
  auto waiter = [&]() -> task<void> { waited = co_await s2.recv_some(); };
  auto closer = [&]() -> task<void> {
    co_await yield(io);
    s2.close();
  };
  sync_wait(io, when_all(waiter(), closer()));
  REQUIRE(!waited);
}

TEST_CASE("A lent buffer goes back when destroyed: a long stream through a small pool") {
  io_context::options o;
  o.recv_buffer_size = 1024;
  o.recv_buffers = 4;
  o.max_recv_buffers = 4;
  io_context io(o);
  auto [c, s] = sync_wait(io, connected_pair(io));
  const std::string all = pattern_text(4 << 20, 11);
  auto writer = [&]() -> task<void> {
    auto w = co_await c.send_all(bytes(all));
    REQUIRE(w);
    (void)co_await c.shutdown_send();
  };
  auto [ignored, got] = sync_wait(io, when_all(writer(), drain_some(s)));
  (void)ignored;
  CHECK(got == all);
  // Every buffer came back (on io_uring, straight into the kernel's ring), none twice.
  CHECK(io.stats().buffers_in_use == 0);
  CHECK(io.stats().buffers == 4);
}

TEST_CASE("A pool exhausted under load (ENOBUFS) is not end of stream: every byte arrives, in "
          "order, on every connection") {
  // Regression guard: peers have mistaken ENOBUFS for EOF and dropped healthy connections.
  io_context::options o;
  o.recv_buffer_size = 512;
  o.recv_buffers = 2;
  o.max_recv_buffers = 4; // far fewer buffers than connections
  io_context io(o);
  constexpr int conns = 16;
  constexpr std::size_t per_conn = 256 * 1024;
  std::vector<pair> pairs;
  for (int i = 0; i < conns; ++i)
    pairs.push_back(sync_wait(io, connected_pair(io)));
  std::vector<std::string> expected(conns), got(conns);
  std::vector<task<void>> work;
  for (int i = 0; i < conns; ++i) {
    expected[i] = pattern_text(per_conn, static_cast<unsigned>(i));
    work.push_back([](pair& p, const std::string& data) -> task<void> {
      auto w = co_await p.client.send_all(bytes(data));
      REQUIRE(w);
      (void)co_await p.client.shutdown_send();
    }(pairs[i], expected[i]));
    work.push_back([](pair& p, std::string& out, io_context& ctx) -> task<void> {
      for (;;) {
        auto b = co_await p.server.recv_some();
        REQUIRE(b);
        if (b->empty()) break;
        out += text(b->data());
        // Hold the buffer a little while others want one: the pool runs dry.
        co_await yield(ctx);
      }
    }(pairs[i], got[i], io));
  }
  sync_wait(io, when_all(std::move(work)));
  for (int i = 0; i < conns; ++i) {
    CAPTURE(i);
    CHECK(got[i].size() == expected[i].size());
    CHECK(got[i] == expected[i]);
  }
  // The pool grew to its cap, and every buffer came back to it, while receivers were
  // starved of one as well as when none was.
  CHECK(io.stats().buffers == 4);
  CHECK(io.stats().buffers_in_use == 0);
}

TEST_CASE("Idle connections waiting in recv_some hold no buffer of the pool") {
  io_context::options o;
  o.recv_buffers = 8;
  o.max_recv_buffers = 8; // fewer than the idle connections
  io_context io(o);
  constexpr int conns = 64;
  std::vector<pair> pairs;
  for (int i = 0; i < conns; ++i)
    pairs.push_back(sync_wait(io, connected_pair(io)));
  std::vector<std::string> got(conns);
  std::vector<task<void>> work;
  for (int i = 0; i < conns; ++i)
    work.push_back([](tcp::stream& s, std::string& out) -> task<void> {
      auto b = co_await s.recv_some();
      if (b) out = text(b->data());
    }(pairs[i].server, got[i]));
  auto sender = [&]() -> task<void> { // named: it must outlive its coroutine
    co_await yield(io);               // everyone waits now; then each one gets a message in turn
    for (int i = 0; i < conns; ++i) {
      auto w = co_await pairs[i].client.send_all(bytes(fmt::format("m{}", i)));
      REQUIRE(w);
    }
  };
  work.push_back(sender());

  sync_wait(io, when_all(std::move(work)));
  for (int i = 0; i < conns; ++i)
    CHECK(got[i] == fmt::format("m{}", i));
}
