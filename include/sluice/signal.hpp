// signal_set: process signals (SIGINT, SIGTERM...) as awaitables.
//
//   sluice::signal_set sigs(io, {SIGINT, SIGTERM});
//   auto sig = co_await sigs.wait(); // result<int>: the signal number
//
// While a signal_set lives, its signals are caught (their default action, such as
// terminating the process, does not happen) and queued for it; the destructor
// restores the previous dispositions once no set wants a signal any more. Each set
// receives exactly the signals it asked for, and several sets may ask for the same
// signal: each of them sees it. On Windows the signals are console control events
// (Ctrl-C: SIGINT, Ctrl-Break: SIGBREAK, close/logoff/shutdown: SIGTERM) and the C
// runtime's raise().
#pragma once

#include <sluice/export.hpp>

#include <initializer_list>
#include <sluice/detail/io_awaiter.hpp>
#include <vector>

namespace sluice {

class signal_set;

namespace detail {
class [[nodiscard]] SLUICE_API signal_awaiter : public io_awaiter {
public:
  explicit signal_awaiter(signal_set& s);
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    op_.buffer = &signo_; ///< here, not in the constructor: the awaiter may have moved
    return start(h, stop_of(h));
  }
  result<int> await_resume();

private:
  unsigned char signo_ = 0;
};
} // namespace detail

/// The signals a program waits for (SIGINT and SIGTERM, say), awaitable on a loop:
/// see the top of this header.
class SLUICE_API signal_set {
public:
  /// Throws std::system_error if a signal cannot be caught (SIGKILL, say) or the
  /// process has run out of descriptors.
  signal_set(io_context& io, std::initializer_list<int> signals);
  ~signal_set();
  signal_set(const signal_set&) = delete;
  signal_set& operator=(const signal_set&) = delete;

  /// The next caught signal (signals caught while nobody waited are not lost).
  detail::signal_awaiter wait() { return detail::signal_awaiter(*this); }

private:
  friend class detail::signal_awaiter;
  io_context* io_;
  std::vector<int> signals_;
  /// POSIX: the read end of this set's pipe; Windows: the set's id.
  detail::native_handle source_ = detail::invalid_handle;
  int write_end_ = -1;
};

} // namespace sluice
