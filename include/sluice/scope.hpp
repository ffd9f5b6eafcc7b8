// async_scope: structured concurrency for tasks started on the fly (one per accepted
// connection, say). Children are spawned into the scope; join() completes when the
// last one has finished. Nothing spawned into a scope outlives a completed join().
//
//   async_scope scope(io);
//   scope.spawn(handle(std::move(conn)));
//   ...
//   co_await scope.join();                 // result<void>
//
// join() may be awaited by several coroutines. It honours the awaiting task's stop token (then it
// fails with operation_aborted; the children keep running), so it composes with with_timeout().
// Stop requests for it must come from the loop thread (with_timeout's timer does).
#pragma once

#include <optional>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/spawn.hpp>
#include <sluice/task.hpp>
#include <stop_token>

namespace sluice {

namespace detail {

// Coroutines waiting for a condition that another coroutine on the same loop signals
// (notify() resumes them all); each wait is cancellable through the waiter's stop
// token, from the loop thread.
class wait_list {
public:
  explicit wait_list(io_context& io) : io_(&io) {}
  wait_list(const wait_list&) = delete;
  wait_list& operator=(const wait_list&) = delete;

  struct awaiter {
    awaiter(wait_list& o, bool r) noexcept : owner(o), ready(r) {}
    // Moved only before it is awaited (into as_task, say).
    awaiter(awaiter&& o) noexcept : owner(o.owner), ready(o.ready) {}

    wait_list& owner;
    bool ready;
    std::coroutine_handle<> h{};
    bool aborted = false;
    awaiter* next = nullptr;
    struct on_stop {
      awaiter* self;
      void operator()() const noexcept {
        if (!self->owner.remove(self)) return; // already notified
        self->aborted = true;
        self->owner.io_->post(self->h);
      }
    };
    std::optional<std::stop_callback<on_stop>> callback;

    bool await_ready() const noexcept { return ready; }
    template <class P> bool await_suspend(std::coroutine_handle<P> caller) {
      const std::stop_token token = stop_token_of(caller);
      if (token.stop_requested()) {
        aborted = true;
        return false;
      }
      h = caller;
      next = owner.head_;
      owner.head_ = this;
      if (token.stop_possible()) callback.emplace(token, on_stop{this});
      return true; // if the callback already ran, it posted h
    }
    result<void> await_resume() noexcept {
      callback.reset();
      if (aborted) return error(errc::operation_aborted, "wait");
      return {};
    }
  };

  // Suspends unless `condition_met`.
  awaiter wait(bool condition_met) noexcept { return awaiter{*this, condition_met}; }

  // Resumes every waiter on the next loop turn.
  void notify() noexcept {
    for (awaiter* w = std::exchange(head_, nullptr); w != nullptr;) {
      awaiter* next = w->next;
      io_->post(w->h);
      w = next;
    }
  }

private:
  bool remove(awaiter* a) noexcept {
    for (awaiter** p = &head_; *p != nullptr; p = &(*p)->next)
      if (*p == a) {
        *p = a->next;
        return true;
      }
    return false;
  }

  io_context* io_;
  awaiter* head_ = nullptr;
};

} // namespace detail

class async_scope {
public:
  explicit async_scope(io_context& io) : io_(io), waiter_(io) {}
  async_scope(const async_scope&) = delete;
  async_scope& operator=(const async_scope&) = delete;

  // Starts `t` on the loop. An escaping exception is reported like spawn()'s.
  void spawn(task<void> t, std::stop_token token = {}) {
    ++active_;
    sluice::spawn(io_, run(std::move(t), *this), std::move(token));
  }

  std::size_t active() const noexcept { return active_; }

  // Completes when no child is left.
  detail::wait_list::awaiter join() noexcept { return waiter_.wait(active_ == 0); }

private:
  static task<void> run(task<void> t, async_scope& scope) {
    try {
      co_await std::move(t);
    } catch (...) {
      detail::report_spawn_failure(std::current_exception());
    }
    if (--scope.active_ == 0) scope.waiter_.notify();
  }

  io_context& io_;
  detail::wait_list waiter_;
  std::size_t active_ = 0;
};

} // namespace sluice
