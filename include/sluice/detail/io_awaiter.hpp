// The thin generic part of every I/O awaiter: start the operation, hook up
// cancellation through the awaiting task's stop token, tear it down on completion.
// What each operation checks before it starts and does with its result lives in the
// derived awaiters and in .cpp files.
#pragma once

#include <optional>
#include <sluice/detail/operation.hpp>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/task.hpp>
#include <stop_token>

namespace sluice::detail {

struct cancel_fn {
  operation* op;
  // May run on any thread (whoever calls request_stop()).
  void operator()() const noexcept { op->ctx->cancel(*op); }
};

class io_awaiter {
public:
  io_awaiter() = default;
  io_awaiter(const io_awaiter&) = delete;
  io_awaiter& operator=(const io_awaiter&) = delete;
  // Awaiters are moved only before they are started (when returned from a function).
  io_awaiter(io_awaiter&& o) noexcept : op_(o.op_) {}

  bool await_ready() const noexcept { return false; }

protected:
  // Starts op_ for the coroutine `h`; false if it completed at once (cancelled
  // before it started), in which case op_.error is set.
  bool start(std::coroutine_handle<> h, const std::stop_token& token) {
    if (token.stop_requested()) {
      op_.error = make_error_code(errc::operation_aborted);
      return false;
    }
    op_.waiter = h;
    op_.ctx->submit(op_);
    // Registered after submit: if the token is stopped in between, the callback runs
    // here, inline, and cancels an operation that is already queued.
    if (token.stop_possible()) callback_.emplace(token, cancel_fn{&op_});
    return true;
  }
  // Must be called first thing in await_resume.
  void finish() noexcept {
    // Destroying the callback waits for a concurrently running one to return, so
    // cancel_posted is stable afterwards.
    callback_.reset();
    if (op_.cancel_posted) op_.ctx->retire_cancel(op_);
  }

  operation op_;
  std::optional<std::stop_callback<cancel_fn>> callback_;
};

// Fails an awaiter before it starts: set the error, do not suspend.
inline bool fail_now(operation& op, errc e) noexcept {
  op.error = make_error_code(e);
  return false;
}

} // namespace sluice::detail
