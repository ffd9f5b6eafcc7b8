// The thin generic part of every I/O awaiter: start the operation, hook up
// cancellation through the awaiting task's stop token, tear it down on completion —
// and on destruction: an awaiter destroyed while its operation is queued, pending or
// completed-but-not-resumed (its frame destroyed by a stopped loop, an unwinding
// scope, ~io_context) returns the operation to idle before the frame's memory goes.
// What each operation checks before it starts and does with its result lives in the
// derived awaiters and in .cpp files.
#pragma once

#include <chrono>
#include <sluice/detail/operation.hpp>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/stop_token.hpp>
#include <sluice/task.hpp>
#include <string>
#include <utility>

namespace sluice::detail {

class io_awaiter {
public:
  io_awaiter() = default;
  io_awaiter(const io_awaiter&) = delete;
  io_awaiter& operator=(const io_awaiter&) = delete;
  // Awaiters are moved only before they are started (when returned from a function).
  io_awaiter(io_awaiter&& o) noexcept : op_(o.op_) {}
  ~io_awaiter() {
    if (live_ && withdraw()) op_.ctx->backend_discard(op_); // an accepted handle nobody took
  }

  bool await_ready() const noexcept { return false; }

  // Past `t` the operation is cancelled and fails with errc::timed_out; a result that
  // arrived first is delivered. Part of the operation: no frame, no allocation.

  void set_deadline(std::chrono::steady_clock::time_point t,
                    std::chrono::nanoseconds bound = {}) noexcept {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    op_.deadline = ns > 0 ? ns : 1;
    op_.deadline_ms = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(bound).count());
  }

protected:
  // Starts op_ for the coroutine `h`; false if it completed at once (cancelled before
  // it started), in which case op_.error is set. With a sender queue, op_ waits its
  // turn there first.
  bool start(std::coroutine_handle<> h, const stop_ref& stop, op_queue* queue = nullptr) {
    if (stop.token.stop_requested()) {
      op_.error = make_error_code(errc::operation_aborted);
      return false;
    }
    live_ = true;
    op_.waiter = h;
    op_.cancel_requested = false;
    op_.timed_out = false;
    if (queue == nullptr || queue->enter(op_))
      op_.ctx->submit(op_);
    else if (op_.deadline != 0)
      op_.ctx->watch_deadline(op_); // waiting its turn counts against the deadline
    // Watched after submit: a stop requested in between cancels an operation that is
    // already queued.
    watch_stop(stop);
    return true;
  }
  // Waits in `q` (a wait_list) until notified or cancelled.
  bool start_wait(std::coroutine_handle<> h, const stop_ref& stop, op_queue& q) {
    return start_waiting(h, stop, [&q](operation& op) { q.wait(op); });
  }
  // Waits wherever `enqueue` puts op_ (an op_queue of some owner: a wait list, a
  // stream's receiver) until it is completed or cancelled.
  template <class Enqueue>
  bool start_waiting(std::coroutine_handle<> h, const stop_ref& stop, Enqueue&& enqueue) {
    if (stop.token.stop_requested()) {
      op_.error = make_error_code(errc::operation_aborted);
      return false;
    }
    live_ = true;
    op_.waiter = h;
    op_.cancel_requested = false;
    clear_error(op_);
    op_.timed_out = false;
    enqueue(op_);
    // Still waiting: the deadline counts. (`enqueue` may settle op_ at once — an
    // accept on a stopped acceptor — and a settled operation must not stay watched.)
    if (op_.deadline != 0 && op_.state == op_state::queued) op_.ctx->watch_deadline(op_);
    watch_stop(stop);
    return true;
  }

  // Makes op_ (started) cancellable by the awaiting task's stop, through the task's
  // canceller. A stop already requested cancels it now (inline, here).
  void watch_stop(const stop_ref& stop) {
    if (!stop.token.stop_possible()) return;
    canceller_ = stop.canceller;
    if (!canceller_->arm(stop.token, op_)) op_.ctx->cancel(op_);
  }
  // Stops watching: a cancel running on another thread has returned when this does.
  void unwatch_stop() noexcept {
    if (canceller_ != nullptr) std::exchange(canceller_, nullptr)->disarm();
  }

  // Must be called first thing in await_resume. If the operation held its stream's
  // sender queue, the next sender starts. (Inlined: it is on every operation's path.)
  [[gnu::always_inline]] void finish() noexcept {
    live_ = false;
    // Unwatching waits for a concurrently running cancel to return, so cancel_posted
    // is stable afterwards.
    unwatch_stop();
    if (op_.timed_out && op_.error == errc::operation_aborted)
      op_.error = make_error_code(errc::timed_out);
    if (op_.cancel_posted) op_.ctx->retire_cancel(op_);
    if (op_.queue != nullptr) {
      if (operation* next = op_.queue->leave(op_)) next->ctx->submit(*next);
    }
  }
  // For an awaiter settled before it starts (failed, or done without the OS):
  // completes without suspending, unless this turn's budget is spent — then it
  // suspends and resumes next turn, so that a coroutine looping on operations that
  // never wait cannot starve the others.
  bool settle_now(std::coroutine_handle<> h) noexcept {
    if (op_.ctx == nullptr || op_.ctx->consume_budget()) return false;
    live_ = true;
    op_.waiter = h;
    op_.ctx->defer_completion(op_);
    return true;
  }

  // Returns op_ to idle from whatever state it is in (for a destructor). True if it
  // had been started; then op_.res / op_.error hold what the OS produced that nobody
  // has seen — a received byte count, an accepted handle — or operation_aborted.
  // A derived awaiter takes over what it can (its socket keeps the bytes or the
  // handle) and sets op_.error so that the base does not release it again.
  bool withdraw() noexcept {
    if (!live_) return false; // never started, or finished
    live_ = false;
    if (op_.state == op_state::idle && canceller_ == nullptr && op_.queue == nullptr) return false;
    // Unwatching waits for a cancel running on another thread, so nothing can start a
    // cancel of op_ after this line.
    unwatch_stop();
    if (op_.cancel_posted) op_.ctx->retire_cancel(op_);
    const bool started = op_.state != op_state::idle;
    op_.ctx->abandon(op_);
    return started;
  }

  // `what` ("recv (peer 1.2.3.4:5)"), with the deadline when that is what ended it.
  std::string describe_outcome(std::string what) const {
    if (op_.error == errc::timed_out)
      what += " after a deadline of " + std::to_string(op_.deadline_ms) + " ms";
    return what;
  }

  operation op_;
  op_canceller* canceller_ = nullptr; // the awaiting task's, while op_ is armed in it
  // Started and not finished: there may be something to withdraw (the destructor's
  // test on the path of every operation).
  bool live_ = false;
};

} // namespace sluice::detail

namespace sluice::detail {
// Fails an awaiter before it starts: set the error; the caller then settles it.
inline bool fail_now(operation& op, errc e) noexcept {
  op.error = make_error_code(e);
  return false;
}
} // namespace sluice::detail
