// co_await yield(): let every other ready coroutine of the loop run first; this one
// resumes on the next loop turn. For long computations between awaits (sluice's
// own operations already yield when a turn's budget is spent).
#pragma once

#include <sluice/export.hpp>

#include <coroutine>
#include <sluice/detail/operation.hpp>
#include <sluice/io_context.hpp>

namespace sluice {

/// Lets the other ready coroutines of the loop run before this one goes on (yield()).
class [[nodiscard]] SLUICE_API yield_awaiter : private detail::resume_node {
public:
  /// Yields on `io`.
  explicit yield_awaiter(io_context& io) noexcept : io_(&io) {}
  /// A copy that has not been posted (awaiters are copied before they are awaited).
  yield_awaiter(const yield_awaiter& o) noexcept : detail::resume_node(), io_(o.io_) {}
  yield_awaiter& operator=(const yield_awaiter&) = delete;
  ~yield_awaiter() { unlink(); } // destroyed before its turn: withdrawn

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    handle = h;
    io_->post(*this);
  }
  void await_resume() const noexcept {}

private:
  io_context* io_;
};

/// Precondition: on a thread running an io_context (or pass it explicitly).
SLUICE_API yield_awaiter yield();
inline yield_awaiter yield(io_context& io) noexcept { return yield_awaiter(io); }

} // namespace sluice
