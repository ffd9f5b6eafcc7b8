// Structured concurrency and cancellation: stop tokens, with_stop_token, shield,
// when_all, when_any, yield and the loop's cooperative budget.
#include "../support.hpp"

#include <atomic>
#include <stdexcept>
#include <thread>

using namespace sluice;
using namespace test;

namespace {

task<int> value(int v) { co_return v; }

task<result<void>> sleeper(io_context& io, std::chrono::nanoseconds d, bool& cancelled) {
  auto r = co_await sleep_for(io, d);
  cancelled = !r && r.error() == errc::operation_aborted;
  co_return r;
}

task<int> fails_after(io_context& io, std::chrono::milliseconds d) {
  (void)co_await sleep_for(io, d);
  throw std::runtime_error("child failed");
}

task<result<int>> errs_after(io_context& io, std::chrono::milliseconds d) {
  (void)co_await sleep_for(io, d);
  co_return error(errc::connection_reset, "child's error");
}

} // namespace

TEST_CASE("stop_callback runs when the source is stopped, once, and not after it is destroyed") {
  stop_source src;
  int calls = 0;
  {
    stop_callback cb(src.get_token(), [&] { ++calls; });
    {
      stop_callback gone(src.get_token(), [&] { calls += 100; });
    }
    CHECK(src.request_stop());
    CHECK_FALSE(src.request_stop());
  }
  CHECK(calls == 1);
  // Registered after the stop: runs at once, inline.
  stop_callback late(src.get_token(), [&] { ++calls; });
  CHECK(calls == 2);
  // An empty token never stops.
  stop_token never;
  CHECK_FALSE(never.stop_possible());
  stop_callback none(never, [&] { calls += 1000; });
  CHECK(calls == 2);
}

TEST_CASE("Destroying a stop_callback waits for it to finish running on another thread",
          "[threads]") {
  stop_source src;
  std::atomic<bool> entered{false}, finished{false};
  auto cb = std::make_unique<stop_callback<std::function<void()>>>(src.get_token(), [&] {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    finished = true;
  });
  std::thread t([&] { src.request_stop(); });
  while (!entered)
    std::this_thread::yield();
  cb.reset(); // must not return while the callback runs
  CHECK(finished);
  t.join();
}

TEST_CASE("A callback may destroy its own stop_callback") {
  stop_source src;
  std::optional<stop_callback<std::function<void()>>> cb;
  bool ran = false;
  cb.emplace(src.get_token(), [&] {
    ran = true;
    cb.reset();
  });
  src.request_stop();
  CHECK(ran);
  CHECK_FALSE(cb.has_value());
}

TEST_CASE("with_stop_token combines its token with the inherited one instead of replacing it") {
  // Regression: with_stop_token used to replace the awaiter's token, so stopping the
  // outer token no longer cancelled the inner operation.
  io_context io;
  stop_source outer, own;
  bool cancelled = false;
  auto body = [&]() -> task<result<void>> {
    co_return co_await with_stop_token(sleeper(io, std::chrono::hours(1), cancelled),
                                       own.get_token());
  };
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(io, std::chrono::milliseconds(2));
    outer.request_stop();
  };
  auto [r, ignored] =
      sync_wait(io, when_all(with_stop_token(body(), outer.get_token()), stopper()));
  (void)ignored;
  CHECK(cancelled);
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
  // And its own token cancels it too.
  bool cancelled_by_own = false;
  stop_source own2;
  auto stopper2 = [&]() -> task<void> {
    (void)co_await sleep_for(io, std::chrono::milliseconds(2));
    own2.request_stop();
  };
  sync_wait(io, when_all(with_stop_token(sleeper(io, std::chrono::hours(1), cancelled_by_own),
                                         own2.get_token()),
                         stopper2()));
  CHECK(cancelled_by_own);
}

TEST_CASE("with_stop_token accepts a std::stop_token, stopped from another thread", "[threads]") {
  io_context io;
  std::stop_source src;
  bool cancelled = false;
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    src.request_stop();
  });
  auto r = sync_wait(
      io, with_stop_token(sleeper(io, std::chrono::hours(1), cancelled), src.get_token()));
  t.join();
  CHECK(cancelled);
  CHECK(!r);
}

TEST_CASE("shield runs a task and an awaiter out of reach of the awaiting task's token") {
  io_context io;
  stop_source src;
  src.request_stop();
  bool cancelled = true;
  auto r =
      sync_wait(io, shield(sleeper(io, std::chrono::milliseconds(1), cancelled)), src.get_token());
  CHECK(r);
  CHECK_FALSE(cancelled);
  auto body = [&]() -> task<result<void>> {
    co_return co_await shield(sleep_for(io, std::chrono::milliseconds(1)));
  };
  auto r2 = sync_wait(io, body(), src.get_token());
  CHECK(r2);
}

TEST_CASE("when_all fails fast: a child's exception cancels its siblings, then is rethrown") {
  // Regression: a failing child waited for its siblings (forever, next to an idle one).
  io_context io;
  bool cancelled = false;
  CHECK_THROWS_WITH(sync_wait(io, when_all(sleeper(io, std::chrono::hours(1), cancelled),
                                           fails_after(io, std::chrono::milliseconds(1)))),
                    "child failed");
  CHECK(cancelled);
}

TEST_CASE("when_all fails fast on an error result and still yields every child's value") {
  io_context io;
  bool cancelled = false;
  auto [slow, bad, v] =
      sync_wait(io, when_all(sleeper(io, std::chrono::hours(1), cancelled),
                             errs_after(io, std::chrono::milliseconds(1)), value(7)));
  CHECK(cancelled);
  REQUIRE(!slow);
  CHECK(slow.error() == errc::operation_aborted);
  REQUIRE(!bad);
  CHECK(bad.error() == errc::connection_reset);
  CHECK(v == 7);
}

TEST_CASE("when_all next to an idle recv ends when another child fails") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto idle = [&]() -> task<result<std::size_t>> {
    std::array<std::byte, 16> buf;
    co_return co_await s.recv(buf);
  };
  auto [r, ignored] = sync_wait(io, when_all(idle(), errs_after(io, std::chrono::milliseconds(1))));
  (void)ignored;
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

TEST_CASE("when_all is cancelled with the awaiting task's token") {
  io_context io;
  stop_source src;
  bool a = false, b = false;
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(io, std::chrono::milliseconds(2));
    src.request_stop();
  };
  auto group = [&]() -> task<void> {
    (void)co_await with_stop_token(
        [&]() -> task<void> {
          (void)co_await when_all(sleeper(io, std::chrono::hours(1), a),
                                  sleeper(io, std::chrono::hours(1), b));
        }(),
        src.get_token());
  };
  sync_wait(io, when_all(group(), stopper()));
  CHECK(a);
  CHECK(b);
}

TEST_CASE("when_any yields the first child to finish and cancels the others") {
  io_context io;
  bool a = false, c = false;
  auto r = sync_wait(io, when_any(
                             sleeper(io, std::chrono::hours(1), a),
                             [&]() -> task<int> {
                               (void)co_await sleep_for(io, std::chrono::milliseconds(1));
                               co_return 42;
                             }(),
                             sleeper(io, std::chrono::hours(1), c)));
  REQUIRE(r.index() == 1);
  CHECK(std::get<1>(r) == 42);
  CHECK(a);
  CHECK(c);
}

TEST_CASE("when_any: a child that finishes at once wins; later children are never started") {
  io_context io;
  bool started = false;
  auto later = [&]() -> task<int> {
    started = true;
    co_return 2;
  };
  auto r = sync_wait(io, when_any(value(1), later()));
  REQUIRE(r.index() == 0);
  CHECK(std::get<0>(r) == 1);
  CHECK_FALSE(started);
}

TEST_CASE("when_any rethrows the winner's exception; the vector form names the winner") {
  io_context io;
  bool cancelled = false;
  CHECK_THROWS_WITH(sync_wait(io, when_any(fails_after(io, std::chrono::milliseconds(1)),
                                           sleeper(io, std::chrono::hours(1), cancelled))),
                    "child failed");
  CHECK(cancelled);
  std::vector<task<int>> v;
  v.push_back(fails_after(io, std::chrono::hours(1)));
  v.push_back(value(5));
  auto w = sync_wait(io, when_any(std::move(v)));
  CHECK(w.index == 1);
  CHECK(w.value == 5);
}

TEST_CASE("yield lets the other ready coroutines run first") {
  io_context io;
  std::string order;
  auto a = [&]() -> task<void> {
    for (int i = 0; i < 3; ++i) {
      order += 'a';
      co_await yield(io);
    }
  };
  auto b = [&]() -> task<void> {
    for (int i = 0; i < 3; ++i) {
      order += 'b';
      co_await yield(io);
    }
  };
  sync_wait(io, when_all(a(), b()));
  CHECK(order == "ababab");
}

TEST_CASE("A coroutine looping on operations that complete without waiting cannot starve others") {
  // Each turn has a budget of operations that never wait; past it, such an operation
  // suspends until the next turn and the other coroutines run.
  io_context io;
  auto closed = tcp::stream::open(io); // closed below: every recv fails at once
  REQUIRE(closed);
  closed->close();
  int others_ran = 0;
  int spins_when_other_ran = -1;
  int spins = 0;
  auto spinner = [&]() -> task<void> {
    std::array<std::byte, 8> buf;
    for (spins = 0; spins < 10'000; ++spins) {
      auto r = co_await closed->recv(buf);
      REQUIRE(!r);
    }
  };
  auto other = [&]() -> task<void> {
    co_await yield(io);
    ++others_ran;
    spins_when_other_ran = spins;
  };
  spawn(io, other());
  spawn(io, spinner());
  io.run();
  CHECK(others_ran == 1);
  CHECK(spins_when_other_ran < 10'000);
}

TEST_CASE("result<T> reads through const, and co_return of an error works in task<result<T>>") {
  const result<int> r = 5;
  CHECK(*r == 5);
  const result<std::string> s = std::string("abc");
  CHECK(s->size() == 3);
  io_context io;
  auto forward = [](result<int> in) -> task<result<std::string>> {
    if (!in) co_return in.error();
    co_return std::to_string(*in);
  };
  auto e = sync_wait(io, forward(result<int>(errc::timed_out, "probe")));
  REQUIRE(!e);
  CHECK(e.error() == errc::timed_out);
  CHECK(e.error().context() == "probe");
  CHECK(*sync_wait(io, forward(3)) == "3");
}

// A task registers one stop callback for all its operations (op_canceller.hpp); each
// operation arms it while it runs. These pin down what that must keep: a stop from
// another thread, landing anywhere between and inside operations, ends the operation
// in flight or the next one, never one that already finished, and nothing is
// cancelled late.
TEST_CASE("A task's operations one after another, stopped from another thread at any point",
          "[threads]") {
  io_context io;
  for (int round = 0; round < 40; ++round) {
    stop_source src;
    int done = 0;
    int late = 0;                       // operations started after the stop that did not fail
    auto worker = [&]() -> task<bool> { // true: it ended with operation_aborted
      for (;;) {
        const bool stopped_before = src.stop_requested();
        auto r = co_await sleep_for(io, std::chrono::microseconds(20 + round));
        if (!r) co_return r.error() == errc::operation_aborted;
        if (stopped_before) ++late;
        ++done;
      }
    };
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(100 * (round % 8)));
      src.request_stop();
    });
    const bool aborted = sync_wait(io, worker(), src.get_token());
    stopper.join();
    CHECK(aborted);
    CHECK(late == 0);
  }
}

TEST_CASE("A task's stop registration ends with the task, before a combined source goes") {
  // with_stop_token(child, own) under a stoppable outer token combines the two in a
  // source that lives in with_stop_token's frame and dies before the child's frame:
  // the child's registration must be gone by then (ASan would see the write into the
  // dead source otherwise).
  io_context io;
  stop_source outer;
  stop_source own;
  int slept = 0;
  auto child = [&]() -> task<int> {
    for (int i = 0; i < 3; ++i) {
      auto r = co_await sleep_for(io, std::chrono::milliseconds(1));
      if (r) ++slept;
    }
    co_return 7;
  };
  const int v = sync_wait(io, with_stop_token(child(), own.get_token()), outer.get_token());
  CHECK(v == 7);
  CHECK(slept == 3);
  // And the same child, stopped through the combined source by the outer token.
  bool cancelled = false;
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(io, std::chrono::milliseconds(2));
    outer.request_stop();
  };
  stop_source own2;
  auto [r, ignored] = sync_wait(
      io,
      when_all(with_stop_token(sleeper(io, std::chrono::hours(1), cancelled), own2.get_token()),
               stopper()),
      outer.get_token());
  (void)ignored;
  CHECK(cancelled);
  CHECK(!r);
}
