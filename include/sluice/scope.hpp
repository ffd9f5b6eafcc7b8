// async_scope: structured concurrency for tasks started on the fly (one per accepted
// connection, say). Children are spawned into the scope; join() completes when the
// last one has finished. Nothing spawned into a scope outlives it:
//
//   async_scope scope(io);
//   scope.spawn(handle(std::move(conn)), token);
//   ...
//   co_await scope.join();                 // result<void>
//
// If the scope is destroyed while children still run (its owner left by an exception,
// say), the destructor destroys them on the spot: each one's operations are cancelled
// and reaped and its locals destroyed, as if it had been cancelled at its current
// suspension point; a coroutine still waiting in join() then resumes with
// operation_aborted. No child ever touches the scope after it is gone.
//
// join() may be awaited by several coroutines. It honours the awaiting task's stop
// token (then it fails with operation_aborted; the children keep running), so it
// composes with with_timeout().
#pragma once

#include <sluice/detail/io_awaiter.hpp>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/spawn.hpp>
#include <sluice/task.hpp>
#include <stop_token>

namespace sluice {

namespace detail {

/// Coroutines waiting for a condition that another coroutine on the same loop signals
/// (notify() resumes them all, on the next turn). Each wait is an operation of the
/// loop: cancellable through the waiter's stop token from any thread, and safe to
/// destroy at any point.
class wait_list {
public:
  explicit wait_list(io_context& io) noexcept : io_(&io) {}
  wait_list(const wait_list&) = delete;
  wait_list& operator=(const wait_list&) = delete;
  /// Waiters still here are resumed with operation_aborted.
  ~wait_list() { release_all(make_error_code(errc::operation_aborted)); }

  class [[nodiscard]] awaiter : public io_awaiter {
  public:
    awaiter(wait_list& owner, bool ready) noexcept : owner_(&owner), ready_(ready) {
      op_.ctx = owner.io_;
    }
    bool await_ready() const noexcept { return ready_; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) {
      return start_wait(h, stop_of(h), owner_->waiting_);
    }
    result<void> await_resume() noexcept {
      finish();
      if (op_.error) return error(op_.error, "wait");
      return {};
    }

  private:
    wait_list* owner_;
    bool ready_;
  };

  /// Suspends unless `condition_met`.
  awaiter wait(bool condition_met) noexcept { return awaiter(*this, condition_met); }

  /// Resumes every waiter on the next loop turn.
  void notify() noexcept { release_all({}); }
  bool empty() const noexcept { return waiting_.first_waiting() == nullptr; }

private:
  void release_all(std::error_code ec) noexcept {
    while (operation* op = waiting_.first_waiting()) {
      waiting_.remove(*op);
      op->error = ec;
      op->ctx->defer_completion(*op);
    }
  }

  io_context* io_;
  op_queue waiting_;
};

} // namespace detail

/// Structured concurrency for tasks started on the fly: see the top of this header.
class async_scope : private detail::root_group {
public:
  /// A scope whose children run on `io`.
  explicit async_scope(io_context& io) : io_(io), waiters_(io) { child_ended = &ended; }
  async_scope(const async_scope&) = delete;
  async_scope& operator=(const async_scope&) = delete;
  ~async_scope() {
    destroying_ = true;
    // Each destruction unlinks the child (its promise's destructor calls ended()).
    while (children != nullptr)
      children->frame.destroy();
  }

  /// Starts `t` on the loop under `token`. An escaping exception is reported like
  /// spawn()'s.
  void spawn(task<void> t, stop_token token = {}) {
    ++active_;
    detail::spawn_root(io_, std::move(t), token, this);
  }
  /// The same, stopped by a std::stop_token.
  void spawn(task<void> t, std::stop_token token) {
    spawn(with_stop_token(std::move(t), std::move(token)));
  }

  /// Children still running.
  std::size_t active() const noexcept { return active_; }

  /// Completes when no child is left.
  detail::wait_list::awaiter join() noexcept { return waiters_.wait(active_ == 0); }

private:
  static void ended(detail::root_group& g) noexcept {
    auto& s = static_cast<async_scope&>(g);
    if (--s.active_ == 0 && !s.destroying_) s.waiters_.notify();
  }

  io_context& io_;
  detail::wait_list waiters_;
  std::size_t active_ = 0;
  bool destroying_ = false;
};

} // namespace sluice
