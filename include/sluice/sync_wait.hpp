// sync_wait: run `io` on this thread until `t` has finished, then return its value (or
// rethrow its exception). The usual entry point from main() and from tests.
//
// If the loop is stopped first (io.stop()), sync_wait destroys the unfinished task —
// every operation it had in flight is cancelled and reaped before its frame goes —
// and throws std::logic_error.
#pragma once

#include <sluice/detail/frame_pool.hpp>

#include <optional>
#include <sluice/detail/operation.hpp>
#include <sluice/io_context.hpp>
#include <sluice/task.hpp>
#include <sluice/when_all.hpp>
#include <stdexcept>
#include <stop_token>

namespace sluice {

namespace detail {
struct sync_waiter {
  struct promise_type : pooled_frame {
    bool* done = nullptr;
    io_context* io = nullptr;
    stop_token token;
    resume_node start;
    // A body that finishes on another loop (switch_to) says so on its own loop.
    struct home_node : remote_node {
      bool* done = nullptr;
      static void mark(ready_node& n) noexcept { *static_cast<home_node&>(n).done = true; }
    } home;
    sync_waiter get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct final_awaiter {
      promise_type& p;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<>) const noexcept {
        if (io_context::current() == p.io) {
          *p.done = true;
        } else {
          p.home.done = p.done;
          p.home.run = &home_node::mark;
          p.io->post_remote(p.home);
        }
      }
      void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {*this}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); } // the body catches
    const stop_token& get_stop_token() const noexcept { return token; }
    ~promise_type() { start.unlink(); }
  };
  std::coroutine_handle<promise_type> h;
  sync_waiter(std::coroutine_handle<promise_type> handle) : h(handle) {}
  sync_waiter(sync_waiter&& o) noexcept : h(std::exchange(o.h, {})) {}
  ~sync_waiter() {
    if (h) h.destroy();
  }
};

template <class T>
sync_waiter sync_body(task<T> t, std::optional<typename outcome<T>::stored>& value,
                      std::exception_ptr& error) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      value.emplace();
    } else {
      value.emplace(co_await std::move(t));
    }
  } catch (...) {
    error = std::current_exception();
  }
}
} // namespace detail

template <class T> T sync_wait(io_context& io, task<T> t, stop_token token = {}) {
  std::optional<typename detail::outcome<T>::stored> value;
  std::exception_ptr error;
  bool done = false;
  {
    auto w = detail::sync_body(std::move(t), value, error);
    w.h.promise().done = &done;
    w.h.promise().io = &io;
    w.h.promise().token = token;
    w.h.promise().start.handle = w.h;
    io.post(w.h.promise().start);
    io.run_until(done);
  } // an unfinished task is destroyed here, its operations reaped
  if (error) std::rethrow_exception(error);
  if (!done) throw std::logic_error("sync_wait: io_context stopped before the task finished");
  if constexpr (!std::is_void_v<T>) return std::move(*value);
}

/// The same, stopped by a std::stop_token.
template <class T> T sync_wait(io_context& io, task<T> t, std::stop_token token) {
  return sync_wait(io, with_stop_token(std::move(t), std::move(token)));
}

/// Any other awaitable (when_all(...), an I/O operation).
template <class A>
requires(!detail::is_task<std::remove_cvref_t<A>>::value) auto sync_wait(io_context& io, A&& a,
                                                                         stop_token token = {}) {
  return sync_wait(io, as_task(std::forward<A>(a)), token);
}
template <class A>
requires(!detail::is_task<std::remove_cvref_t<A>>::value) auto sync_wait(io_context& io, A&& a,
                                                                         std::stop_token token) {
  return sync_wait(io, as_task(std::forward<A>(a)), std::move(token));
}

} // namespace sluice
