// Timers and deadlines.
//
//   co_await sleep_for(50ms);                      // result<void>; operation_aborted
//                                                  // if the task's stop token fires
//   auto r = co_await with_timeout(s.recv(buf), 200ms);  // errc::timed_out on expiry
//
// A deadline cancels the operation (through a stop token) when it expires and reports
// errc::timed_out; an operation that completes first cancels the timer.
#pragma once

#include <sluice/export.hpp>

#include <chrono>
#include <concepts>
#include <optional>
#include <sluice/detail/io_awaiter.hpp>
#include <sluice/when_all.hpp>

namespace sluice {

/// Waits `d` on a loop (sleep_for() makes one); cancelled by the awaiting task's stop
/// token with operation_aborted.
class [[nodiscard]] SLUICE_API sleep_awaiter : public detail::io_awaiter {
public:
  /// Waits `d` on `io` (a negative `d` is 0).
  sleep_awaiter(io_context& io, std::chrono::nanoseconds d) {
    op_.ctx = &io;
    op_.code = detail::op_code::timeout;
    op_.duration_ns = d.count() < 0 ? 0 : d.count();
  }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return start(h, detail::stop_of(h));
  }
  result<void> await_resume() {
    finish();
    if (op_.error) return error(op_.error, describe_outcome("sleep"));
    return {};
  }
};

/// Precondition: on a thread running an io_context (or pass it explicitly).
SLUICE_API sleep_awaiter sleep_for(std::chrono::nanoseconds d);
inline sleep_awaiter sleep_for(io_context& io, std::chrono::nanoseconds d) {
  return sleep_awaiter(io, d);
}

namespace detail {

struct deadline_state {
  stop_source body_stop;
  stop_source timer_stop;
  bool expired = false;
};

template <class T> task<T> deadline_body(task<T> t, deadline_state& s) {
  T r = co_await with_stop_token(std::move(t), s.body_stop.get_token());
  s.timer_stop.request_stop();
  co_return r;
}

SLUICE_API task<void> deadline_timer(std::chrono::nanoseconds d, deadline_state& s);
SLUICE_API std::string deadline_message(std::chrono::nanoseconds d);

} // namespace detail

/// Runs `t` with a deadline. T must be a result<...>: when the deadline expires first,
/// the operation is cancelled and the result is errc::timed_out. The caller's own stop
/// token still cancels it too (then the result is operation_aborted). A result that
/// arrived before the cancel took effect is returned as it is: nothing received is lost.
template <class T>
requires detail::is_result<T>::value task<T> with_timeout(task<T> t, std::chrono::nanoseconds d) {
  detail::deadline_state s;
  /// when_all: the awaiting task's token reaches both children; a failed body cancels
  /// the timer at once.
  auto [r, ignored] =
      co_await when_all(detail::deadline_body(std::move(t), s), detail::deadline_timer(d, s));
  (void)ignored;
  if (!r && s.expired && r.error() == errc::operation_aborted)
    co_return T(errc::timed_out, detail::deadline_message(d));
  co_return std::move(r);
}

namespace detail {
template <class A>
concept backend_awaiter = std::derived_from<std::remove_cvref_t<A>, io_awaiter>;
} // namespace detail

// An I/O operation (recv, recv_some, send, send_all, accept, connect, recv_disconnect,
// a wait...) with a deadline: the same awaiter, bounded. No coroutine frame, no
// allocation — io_uring links a timeout to the operation (IORING_OP_LINK_TIMEOUT), Asio
// and IOCP keep a per-context deadline heap, and the loop keeps one for operations
// still waiting their turn. errc::timed_out when it expires first; a result that
// arrived before the cancel took effect is delivered.

template <detail::backend_awaiter A>
std::remove_cvref_t<A> with_timeout(A&& a, std::chrono::nanoseconds d) {
  a.set_deadline(std::chrono::steady_clock::now() + d, d);
  return std::move(a);
}

/// Same, for any other awaitable yielding a result<...> (a wait, a when_all): a task
/// with a timer, as for tasks.
template <class A>
requires(!detail::backend_awaiter<A> &&
         requires(A a) { a.await_resume(); }) auto with_timeout(A a, std::chrono::nanoseconds d) {
  return with_timeout(as_task(std::move(a)), d);
}

} // namespace sluice
