// Timers: sleep_for, the timer task of with_timeout over a task, and the loop's heap of
// deadlines for operations that wait in a queue (a sender queue, a receiver, an
// acceptor). Deadlines of operations in a backend are the backend's (a linked timeout,
// or its own heap): docs/runtime.md, "Deadlines inside the operation".
#include <sluice/timer.hpp>

#include <fmt/format.h>
#include <sluice/detail/deadline_heap.hpp>
#include <sluice/io_context.hpp>
#include <stdexcept>

namespace sluice {

namespace detail {

task<void> deadline_timer(std::chrono::nanoseconds d, deadline_state& s) {
  auto r = co_await with_stop_token(as_task(sleep_for(d)), s.timer_stop.get_token());
  if (r) {
    s.expired = true;
    s.body_stop.request_stop();
  }
}

std::string deadline_message(std::chrono::nanoseconds d) {
  return fmt::format("deadline of {} ms expired",
                     std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

} // namespace detail

sleep_awaiter sleep_for(std::chrono::nanoseconds d) {
  io_context* io = io_context::current();
  if (io == nullptr) throw std::logic_error("sleep_for(duration) outside a running io_context");
  return sleep_awaiter(*io, d);
}

void detail::unwatch_deadline_slot(operation& op) noexcept {
  if (op.ctx != nullptr) op.ctx->unwatch_deadline(op);
}

void io_context::expire_waiting_deadlines() noexcept {
  if (waiting_deadlines_.empty()) return;
  const std::int64_t now = detail::steady_now_ns();
  while (detail::operation* op = waiting_deadlines_.pop_expired(now)) {
    op->timed_out = true;
    cancel(*op); // queued: leaves its queue, completes with operation_aborted → timed_out
  }
}

} // namespace sluice
