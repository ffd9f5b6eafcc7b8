#include <sluice/sluice.hpp>

#include <catch2/catch.hpp>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;

TEST_CASE("sleep_for completes successfully when it expires") {
  io_context io;
  auto r = sync_wait(io, as_task(sleep_for(io, 1ms)));
  CHECK(r);
}

TEST_CASE("Timers complete in deadline order") {
  io_context io;
  std::vector<int> order;
  auto sleeper = [&](int id, std::chrono::milliseconds d) -> task<void> {
    (void)co_await sleep_for(d);
    order.push_back(id);
  };
  sync_wait(io, when_all(sleeper(3, 300ms), sleeper(1, 1ms), sleeper(2, 100ms)));
  CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("Stopping the task's stop token cancels a sleep with operation_aborted") {
  io_context io;
  std::stop_source src;
  auto sleeper = []() -> task<result<void>> { co_return co_await sleep_for(1h); };
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(5ms);
    src.request_stop();
  };
  auto [r, ignored] =
      sync_wait(io, when_all(with_stop_token(sleeper(), src.get_token()), stopper()));
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

TEST_CASE("An already stopped token fails the operation at once") {
  io_context io;
  std::stop_source src;
  src.request_stop();
  auto r = sync_wait(io, as_task(sleep_for(io, 1h)), src.get_token());
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

TEST_CASE("A stop requested from another thread cancels a pending operation", "[threads]") {
  io_context io;
  std::stop_source src;
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    src.request_stop();
  });
  auto r = sync_wait(io, as_task(sleep_for(io, 1h)), src.get_token());
  t.join();
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

TEST_CASE("with_timeout yields timed_out when the deadline expires first") {
  io_context io;
  auto r = sync_wait(io, with_timeout(sleep_for(io, 1h), 10ms));
  REQUIRE(!r);
  CHECK(r.error() == errc::timed_out);
  CHECK(r.error().message().find("deadline of 10 ms") != std::string::npos);
  // The same bound on a task (a timer task) says so as well.
  auto t = sync_wait(io, with_timeout(as_task(sleep_for(io, 1h)), 10ms));
  REQUIRE(!t);
  CHECK(t.error() == errc::timed_out);
  CHECK(t.error().message().find("deadline of 10 ms") != std::string::npos);
}

TEST_CASE("with_timeout passes the result through when the operation finishes first") {
  io_context io;
  auto r = sync_wait(io, with_timeout(sleep_for(io, 1ms), 10s));
  CHECK(r);
}

TEST_CASE("with_timeout still honours the caller's stop token") {
  io_context io;
  std::stop_source src;
  src.request_stop();
  auto r = sync_wait(io, with_timeout(sleep_for(io, 1h), 10s), src.get_token());
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

TEST_CASE("with_timeout keeps the stop token bound to the operation it bounds") {
  // Regression: the deadline used to replace the operation's own token, so stopping
  // that token no longer cancelled the operation (an HTTP drain then hung until the
  // idle timeout).
  io_context io;
  std::stop_source own;
  auto stopper = [&]() -> task<void> {
    (void)co_await sleep_for(5ms);
    own.request_stop();
  };
  auto [r, ignored] = sync_wait(
      io, when_all(with_timeout(with_stop_token(as_task(sleep_for(io, 1h)), own.get_token()), 1h),
                   stopper()));
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

TEST_CASE("A cancel that finds its operation between two submissions is not forgotten") {
  // The mechanism behind send_all's deadline: a cancel request recorded while the
  // operation was idle (between a partial completion and its resubmission) makes the
  // resubmission complete with operation_aborted instead of starting again.
  io_context io;
  struct probe : detail::io_awaiter {
    explicit probe(io_context& ctx) {
      op_.ctx = &ctx;
      op_.code = detail::op_code::timeout;
      op_.duration_ns = std::chrono::nanoseconds(std::chrono::hours(1)).count();
    }
    bool await_suspend(std::coroutine_handle<> h) {
      op_.waiter = h;
      op_.ctx->cancel(op_); // idle: only recorded
      op_.ctx->submit(op_); // the "resubmission"
      return true;
    }
    result<void> await_resume() {
      finish();
      if (op_.error) return op_.error;
      return {};
    }
  };
  auto body = [&]() -> task<result<void>> { co_return co_await probe(io); };
  auto r = sync_wait(io, body());
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}
