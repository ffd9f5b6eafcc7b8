// Steady-state I/O allocates nothing: an operation's state lives in its awaiter, in
// the awaiting coroutine's frame. Counts every operator new in this binary.
#include "../support.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <sluice/detail/frame_pool.hpp>
#include <thread>

namespace {
std::atomic<long> allocations{0};
}

// The replacement pair is malloc/free by design; g++ sees new and free meet after
// inlining and warns (mingw-w64 at -O3).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) {

  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace sluice;
using namespace test;

TEST_CASE("Round trips of send_all, send, recv and timers under a live stop token allocate "
          "nothing") {
  {
    // The counter sees allocations at all.
    const long before = allocations.load();
    auto probe = std::make_unique<int>(1);
    REQUIRE(allocations.load() == before + 1);
  }
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  std::stop_source src; // a live token: awaiters register stop callbacks
  long during = -1;
  auto body = [&]() -> task<bool> {
    std::array<std::byte, 256> out{}, in{};
    for (int warm = 0; warm < 2; ++warm) {
      const long before = allocations.load();
      for (int i = 0; i < 1000; ++i) {
        auto w = co_await c.send_all(out);
        if (!w) co_return false;
        std::size_t got = 0;
        while (got < in.size()) {
          auto r = co_await s.recv(std::span(in).subspan(got));
          if (!r || *r == 0) co_return false;
          got += *r;
        }
        auto back = co_await s.send(std::span(in).first(1));
        auto echo = co_await c.recv(std::span(in).first(1));
        if (!back || !echo) co_return false;
        if (i % 100 == 0) (void)co_await sleep_for(std::chrono::microseconds(1));
      }
      during = allocations.load() - before;
    }
    co_return true;
  };
  const bool ok = sync_wait(io, with_stop_token(body(), src.get_token()));
  REQUIRE(ok);
  CHECK(during == 0);
}

namespace {
task<int> child_sleeping(io_context& io, int v) {
  (void)co_await sleep_for(io, std::chrono::microseconds(1));
  co_return v;
}
} // namespace

TEST_CASE("when_all and when_any of a fixed number of children allocate nothing of their own") {
  // The children's frames are their caller's allocations; grouping them, cancelling the
  // losers (when_any) and collecting the values add none.
  io_context io;
  std::stop_source src;
  long group_allocations = -1;
  long sum = 0;
  auto body = [&]() -> task<bool> {
    for (int warm = 0; warm < 2; ++warm) {
      long during = 0;
      for (int i = 0; i < 200; ++i) {
        auto a = child_sleeping(io, 1);
        auto b = child_sleeping(io, 2);
        long before = allocations.load();
        auto [x, y] = co_await when_all(std::move(a), std::move(b));
        during += allocations.load() - before;
        auto c = child_sleeping(io, 3);
        auto d = child_sleeping(io, 4);
        before = allocations.load();
        auto w = co_await when_any(std::move(c), std::move(d));
        during += allocations.load() - before;
        sum += x + y + (w.index() == 0 ? std::get<0>(w) : std::get<1>(w));
      }
      group_allocations = during;
    }
    co_return true;
  };
  REQUIRE(sync_wait(io, with_stop_token(body(), src.get_token())));
  CHECK(sum > 0);
  CHECK(group_allocations == 0);
}

TEST_CASE("Deadline-bounded recv, send, send_all and accept allocate nothing") {
  // with_timeout on an I/O operation is part of the operation (io_uring: a linked
  // timeout; Asio, IOCP: the context's deadline heap): no frame, no timer task.
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  auto [c, s] = sync_wait(io, connected_pair(io));
  constexpr auto bound = std::chrono::seconds(30);
  long io_allocations = -1, accept_allocations = -1;
  auto exchange = [&]() -> task<bool> {
    std::array<std::byte, 128> out{}, in{};
    for (int warm = 0; warm < 2; ++warm) {
      const long before = allocations.load();
      for (int i = 0; i < 500; ++i) {
        auto w = co_await with_timeout(c.send_all(out), bound);
        if (!w) co_return false;
        std::size_t got = 0;
        while (got < in.size()) {
          auto r = co_await with_timeout(s.recv(std::span(in).subspan(got)), bound);
          if (!r || *r == 0) co_return false;
          got += *r;
        }
        auto one = co_await with_timeout(s.send(std::span(in).first(1)), bound);
        auto back = co_await with_timeout(c.recv(std::span(in).first(1)), bound);
        if (!one || !back) co_return false;
      }
      io_allocations = allocations.load() - before;
    }
    co_return true;
  };
  REQUIRE(sync_wait(io, exchange()));
  CHECK(io_allocations == 0);

  // Accepts with a deadline, fed by a connector that uses awaiters only.
  constexpr int rounds = 200;
  auto connector = [&]() -> task<bool> {
    for (int i = 0; i < 2 * rounds; ++i) {
      auto cl = tcp::stream::open(io);
      if (!cl) co_return false;
      auto r = co_await cl->connect(acc->local_endpoint());
      if (!r) co_return false;
    }
    co_return true;
  };
  auto accepter = [&]() -> task<bool> {
    for (int warm = 0; warm < 2; ++warm) {
      const long before = allocations.load();
      for (int i = 0; i < rounds; ++i) {
        auto a = co_await with_timeout(acc->accept(), bound);
        if (!a) co_return false;
      }
      accept_allocations = allocations.load() - before;
    }
    co_return true;
  };
  auto [connected, accepted] = sync_wait(io, when_all(connector(), accepter()));
  REQUIRE(connected);
  REQUIRE(accepted);
  CHECK(accept_allocations == 0);
}

TEST_CASE("recv_some round trips, with a deadline, allocate nothing") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  long during = -1;
  auto body = [&]() -> task<bool> {
    std::array<std::byte, 64> out{};
    for (int warm = 0; warm < 2; ++warm) {
      const long before = allocations.load();
      for (int i = 0; i < 1000; ++i) {
        auto w = co_await c.send_all(out);
        if (!w) co_return false;
        std::size_t got = 0;
        while (got < out.size()) {
          auto b = co_await with_timeout(s.recv_some(), std::chrono::seconds(30));
          if (!b || b->empty()) co_return false;
          got += b->size(); // the buffer goes back here
        }
      }
      during = allocations.load() - before;
    }
    co_return true;
  };
  REQUIRE(sync_wait(io, body()));
  CHECK(during == 0);
}

namespace {
task<int> small_task(int v) { co_return v + 1; }
task<int> big_task(int v) {
  std::array<char, 6000> large{}; // past the largest pooled size class
  large[static_cast<std::size_t>(v) % large.size()] = 1;
  co_return large[0] + v;
}
} // namespace

TEST_CASE("Coroutine frames are recycled per thread, bounded per size class; a frame freed on "
          "another thread joins that thread's lists") {
  if (!detail::frame_pool_enabled()) {
    WARN("frames are not recycled in this build (AddressSanitizer): skipped");
    return;
  }
  io_context io;
  // Warm the size classes these tasks use, then run them many times.
  (void)sync_wait(io, small_task(1));
  const long before = allocations.load();
  int sum = 0;
  for (int i = 0; i < 1000; ++i)
    sum += sync_wait(io, small_task(i));
  CHECK(sum == 500'500);
  CHECK(allocations.load() - before <= 2); // the first round filled the classes

  // Frames above the largest class are not pooled.
  const long big_before = allocations.load();
  for (int i = 0; i < 10; ++i)
    (void)sync_wait(io, big_task(i));
  CHECK(allocations.load() - big_before >= 10);

  // A bounded number of frames per class: create many, destroy them all.
  const std::size_t pooled_before = detail::frames_pooled();
  {
    std::vector<task<int>> many;
    for (int i = 0; i < 2000; ++i)
      many.push_back(small_task(i)); // created, never started: destroying frees the frame
  }
  CHECK(detail::frames_pooled() <= pooled_before + detail::frame_pool_cap);

  // Created here, destroyed on another thread: that thread keeps (and, when it exits,
  // frees) the frames.
  std::vector<task<int>> moved;
  for (int i = 0; i < 10; ++i)
    moved.push_back(small_task(i));
  std::size_t pooled_there = 0;
  std::thread([&] {
    moved.clear();
    pooled_there = detail::frames_pooled();
  }).join();
  CHECK(pooled_there == 10);
}
