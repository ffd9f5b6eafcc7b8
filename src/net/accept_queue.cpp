// The accepting side of an acceptor: see accept_queue.hpp.
#include <sluice/detail/accept_queue.hpp>

#include "../backend/backend.hpp"
#include "../backend/socket_ops.hpp"

#include <algorithm>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>

namespace sluice::detail {

accept_queue::accept_queue(io_context& io) noexcept : io_(&io) {
  op_.ctx = &io;
  op_.code = op_code::accept;
  op_.on_complete = &accept_queue::on_complete;
  op_.owner = this;
  op_.background = true; // an accept() waiting on it is the loop's work, not the accept
}

accept_queue::~accept_queue() { close_items(); }

void accept_queue::open(native_handle h, std::uint32_t limit) noexcept {
  handle_ = h;
  op_.handle = h;
  limit_ = std::max<std::uint32_t>(limit, 1);
  closed_ = false;
  stopped_ = false;
  head_ = count_ = 0;
}

void accept_queue::arm() noexcept {
  if (closed_ || stopped_ || op_.state != op_state::idle) return;
  start(0);
}

void accept_queue::start(int flags) noexcept {
  op_.cancel_requested = false;
  op_.timed_out = false;
  op_.more = false;
  op_.multishot = false; // the backend says whether it made it one
  op_.flags = flags;
  op_.res = 0;
  op_.error = {};
  op_.address = &peer_;
  io_->submit(op_);
}

void accept_queue::sweep() noexcept {
  ++swept_;
  start(accept_no_wait);
}

void accept_queue::push(const item& it) {
  if (count_ == ring_.size()) { // grows only up to the bound (plus what was in flight)
    std::vector<item> bigger(std::max<std::size_t>(8, ring_.size() * 2));
    for (std::uint32_t i = 0; i < count_; ++i)
      bigger[i] = ring_[(head_ + i) % ring_.size()];
    ring_.swap(bigger);
    head_ = 0;
  }
  ring_[(head_ + count_) % ring_.size()] = it;
  ++count_;
}

accept_queue::item accept_queue::pop() noexcept {
  item it = ring_[head_];
  head_ = static_cast<std::uint32_t>((head_ + 1) % ring_.size());
  --count_;
  return it;
}

void accept_queue::give(operation& into, const item& it) noexcept {
  into.res = static_cast<std::int64_t>(it.handle);
  into.error = it.error;
  if (!it.error && into.address != nullptr) sys::to_storage(it.peer, *into.address);
}

void accept_queue::take(operation& into) noexcept { give(into, pop()); }

void accept_queue::put_back(native_handle h, const address_storage& peer) {
  push({h, {}, sys::from_storage(peer)}); // makes room, then moves it to the front
  const std::size_t n = ring_.size();
  const item back = ring_[(head_ + count_ - 1) % n];
  for (std::uint32_t i = count_ - 1; i != 0; --i)
    ring_[(head_ + i) % n] = ring_[(head_ + i - 1) % n];
  ring_[head_] = back;
}

void accept_queue::wait(operation& waiter) noexcept {
  waiters_.wait(waiter);
  if (stopped_ && op_.state == op_state::idle)
    abort_waiters(); // stopped, nothing left, nothing more coming
  else
    arm();
}

void accept_queue::deliver() {
  // The usual case, an accept() waiting: it runs now, inside this completion (and may
  // close the acceptor).
  while (!closed_ && count_ != 0) {
    operation* w = waiters_.first_waiting();
    if (w == nullptr) break;
    waiters_.remove(*w);
    give(*w, pop());
    io_->complete(*w);
  }
}

void accept_queue::abort_waiters() noexcept {
  while (operation* w = waiters_.first_waiting()) {
    waiters_.remove(*w);
    w->res = 0;
    w->error = make_error_code(errc::operation_aborted);
    io_->defer_completion(*w);
  }
}

void accept_queue::stop() noexcept {
  if (closed_ || stopped_) return;
  stopped_ = true;
  if (op_.state == op_state::idle) {
    if (count_ == 0) abort_waiters();
    return;
  }
  // In the backend (or completed, its completion not yet run): its last completion
  // ends the waits once the queue is empty.
  if (op_.state == op_state::pending && !op_.cancel_requested) io_->cancel(op_);
}

void accept_queue::close_items() noexcept {
  while (count_ != 0) {
    const item it = pop();
    if (!it.error) sys::close(it.handle);
  }
}

void accept_queue::close() noexcept {
  if (closed_) return;
  closed_ = true;
  close_items();
  abort_waiters();
  if (op_.state != op_state::idle) {
    // In the backend, or completed and not yet seen: its last completion returns the
    // queue to the pool (and closes what it carries).
    if (op_.state == op_state::pending) io_->cancel(op_);
    return;
  }
  io_->release_accept_queue(this);
}

void accept_queue::on_complete(operation& op) {
  auto& q = *static_cast<accept_queue*>(op.owner);
  const bool more = op.more;
  const bool accepted = !op.error && op.res >= 0;
  if (q.closed_) { // after close(): nothing is delivered
    if (accepted) sys::close(static_cast<native_handle>(op.res));
    if (!more) q.io_->release_accept_queue(&q);
    return;
  }
  // A step of a sweep after stop(): a connection left in the backlog, or none.
  if ((op.flags & accept_no_wait) != 0) {
    if (!accepted) { // nothing more waits (EAGAIN), or it could not be taken
      if (q.count_ == 0) q.abort_waiters();
      return;
    }
    q.push({static_cast<native_handle>(op.res), {}, sys::from_storage(q.peer_)});
    // The next step first, so that an accept() run by deliver() that comes back waits
    // for it. At most `limit` a sweep: what arrives meanwhile wakes the other holders.
    const bool more_to_sweep = q.swept_ < q.limit_;
    if (more_to_sweep) q.sweep();
    q.deliver();
    if (!more_to_sweep && !q.closed_ && q.count_ == 0) q.abort_waiters();
    return;
  }
  if (op.error && !more && op.cancel_requested && op.error == errc::operation_aborted) {
    // Stopped at the bound: re-armed by an accept() that finds the queue empty. After
    // stop(): the end of accepting, once the queue is empty — and, where an accept being
    // cancelled may have taken wake-ups for connections it never accepted (io_uring),
    // once the connections waiting in the backlog are taken too (docs/runtime.md,
    // "Accepting").
    if (q.stopped_ && q.io_->backend().accept_sweep()) {
      q.swept_ = 0;
      q.sweep();
      return;
    }
    if (q.stopped_ && q.count_ == 0) q.abort_waiters();
    if (q.count_ == 0 && q.waiters_.has_waiting()) q.arm();
    return;
  }
  item it{accepted ? static_cast<native_handle>(op.res) : invalid_handle, op.error, {}};
  if (accepted) {
    // A multishot accept has no address buffer of its own per connection: ask.
    // (A peer that reset meanwhile has none: its first operation reports the reset.)
    if (!op.multishot)
      it.peer = sys::from_storage(q.peer_);
    else if (auto peer = sys::remote_endpoint(it.handle))
      it.peer = *peer;
  }
  q.push(it);
  q.deliver();
  // Enough ahead of accept(): the kernel's backlog holds the next ones.
  // (After stop(), a completion that came before the cancel could be asked.)
  if (more && (q.count_ >= q.limit_ || q.stopped_) && !op.cancel_requested && !q.closed_)
    q.io_->cancel(op);

  // A single-shot accept (or a multishot that ended) goes on while accept()s wait.
  if (!q.closed_ && op.state == op_state::idle && q.count_ == 0 && q.waiters_.has_waiting()) {
    if (q.stopped_)
      q.abort_waiters();
    else
      q.arm();
  }
}

} // namespace sluice::detail
