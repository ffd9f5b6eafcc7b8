// signal_set: process signals (SIGINT, SIGTERM...) as awaitables.
//
//   sluice::signal_set sigs(io, {SIGINT, SIGTERM});
//   auto sig = co_await sigs.wait(); // result<int>: the signal number
//
// While a signal_set lives, its signals are caught (their default action, such as
// terminating the process, does not happen) and queued; the destructor restores the
// previous dispositions. One signal_set per signal at a time.
#pragma once

#include <initializer_list>
#include <sluice/detail/io_awaiter.hpp>
#include <vector>

namespace sluice {

class signal_set;

namespace detail {
class signal_awaiter : public io_awaiter {
public:
  explicit signal_awaiter(signal_set& s);
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    op_.buffer = &signo_; // here, not in the constructor: the awaiter may have moved
    return start(h, stop_token_of(h));
  }
  result<int> await_resume();

private:
  unsigned char signo_ = 0;
};
} // namespace detail

class signal_set {
public:
  signal_set(io_context& io, std::initializer_list<int> signals);
  ~signal_set();
  signal_set(const signal_set&) = delete;
  signal_set& operator=(const signal_set&) = delete;

  // The next caught signal (signals caught while nobody waited are not lost).
  detail::signal_awaiter wait() { return detail::signal_awaiter(*this); }

private:
  friend class detail::signal_awaiter;
  io_context* io_;
  std::vector<int> signals_;
};

} // namespace sluice
