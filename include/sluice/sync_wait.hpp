// sync_wait: run `io` on this thread until `t` has finished, then return its value (or
// rethrow its exception). The usual entry point from main() and from tests.
#pragma once

#include <optional>
#include <sluice/io_context.hpp>
#include <sluice/task.hpp>
#include <sluice/when_all.hpp>
#include <stdexcept>

namespace sluice {

namespace detail {
struct sync_waiter {
  struct promise_type {
    bool* done = nullptr;
    std::stop_token token;
    sync_waiter get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept { *done = true; }
    void unhandled_exception() noexcept { std::terminate(); } // the body catches
    const std::stop_token& stop_token() const noexcept { return token; }
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

template <class T> T sync_wait(io_context& io, task<T> t, std::stop_token token = {}) {
  std::optional<typename detail::outcome<T>::stored> value;
  std::exception_ptr error;
  bool done = false;
  auto w = detail::sync_body(std::move(t), value, error);
  w.h.promise().done = &done;
  w.h.promise().token = std::move(token);
  io.post(w.h);
  io.run_until(done);
  if (error) std::rethrow_exception(error);
  if (!done) throw std::logic_error("sync_wait: io_context stopped before the task finished");
  if constexpr (!std::is_void_v<T>) return std::move(*value);
}

} // namespace sluice
