// spawn: start a task that nobody awaits. It runs on `io` until it finishes; the
// io_context counts it as work, so run() does not return while it is alive. An
// exception escaping it is reported on standard error with its message (never lost
// silently) and does not stop the loop.
#pragma once

#include <sluice/io_context.hpp>
#include <sluice/task.hpp>
#include <stop_token>

namespace sluice {

// Called with an exception that escaped a spawned task. The default handler prints
// "sluice: a spawned task ended with an exception: <what()>" on standard error.
// Returns the previous handler. Set it before the loop runs (not synchronised).
using spawn_error_handler = void (*)(std::exception_ptr);
spawn_error_handler set_spawn_error_handler(spawn_error_handler h) noexcept;

namespace detail {
void report_spawn_failure(std::exception_ptr e) noexcept;

struct detached {
  struct promise_type {
    io_context* io = nullptr;
    std::stop_token token;
    spawn_link link;
    detached get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept { io->on_spawn_done(link); }
    void unhandled_exception() noexcept {
      io->on_spawn_done(link);
      report_spawn_failure(std::current_exception());
    }
    const std::stop_token& stop_token() const noexcept { return token; }
  };
  std::coroutine_handle<promise_type> h;
};

inline detached run_detached(task<void> t) { co_await std::move(t); }
} // namespace detail

// Starts `t` on the next turn of `io`'s loop. Loop thread (or before run()).
inline void spawn(io_context& io, task<void> t, std::stop_token token = {}) {
  auto d = detail::run_detached(std::move(t));
  d.h.promise().io = &io;
  d.h.promise().token = std::move(token);
  d.h.promise().link.frame = d.h;
  io.on_spawn(d.h.promise().link);
  io.post(d.h);
}

} // namespace sluice
