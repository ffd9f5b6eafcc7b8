// The receive side of a stream that receives into lent buffers: see receiver.hpp.
#include <sluice/detail/receiver.hpp>

#include "../backend/backend.hpp"

#include <cerrno>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>

namespace sluice::detail {

receiver::receiver(io_context& io) noexcept : io_(&io) {
  op_.ctx = &io;
  op_.code = op_code::recv_lent;
  op_.on_complete = &receiver::on_complete;
  op_.owner = this;
  op_.background = true; // a reader waiting on it is the loop's work, not the receive
}

void receiver::open(native_handle h, bool datagrams) {
  handle_ = h;
  op_.handle = h;
  op_.flags = datagrams ? recv_datagram : 0;
  if (datagrams && sender_ == nullptr) sender_ = std::make_unique<address_storage>();
  op_.address = datagrams ? sender_.get() : nullptr;
  closed_ = false;
  parked_ = false;
  watcher_ = nullptr;
  head_ = count_ = 0;
}

void receiver::arm() noexcept {
  if (closed_ || parked_ || op_.state != op_state::idle) return;
  op_.cancel_requested = false;
  op_.timed_out = false;
  op_.more = false;
  op_.res = 0;
  op_.error = {};
  io_->submit(op_);
}

void receiver::push(const item& it) {
  constexpr std::uint32_t cap = sizeof inline_ / sizeof inline_[0];
  if (count_ < cap && overflow_.empty()) {
    inline_[(head_ + count_) % cap] = it;
    ++count_;
  } else {
    overflow_.push_back(it); // completions that were already on their way
  }
}

void receiver::give(operation& into, const item& it) noexcept {
  into.res = it.res;
  into.error = it.error;
  into.lent_id = it.lent_id;
  into.buffer = it.data;
}

void receiver::take(operation& into) noexcept {
  constexpr std::uint32_t cap = sizeof inline_ / sizeof inline_[0];
  give(into, inline_[head_]);
  head_ = (head_ + 1) % cap;
  --count_;
  if (!overflow_.empty()) { // keep the order: the oldest overflow moves in
    inline_[(head_ + count_) % cap] = overflow_.front();
    ++count_;
    overflow_.erase(overflow_.begin());
  }
}

void receiver::put_back(const operation& from) noexcept {
  constexpr std::uint32_t cap = sizeof inline_ / sizeof inline_[0];
  const item it{from.res, from.error, from.lent_id, from.buffer};
  if (count_ == cap) { // full: the last inline one moves to the overflow's front
    overflow_.insert(overflow_.begin(), inline_[(head_ + count_ - 1) % cap]);
    --count_;
  }
  head_ = (head_ + cap - 1) % cap;
  inline_[head_] = it;
  ++count_;
}

void receiver::watch(ready_node& w) noexcept {
  watcher_ = &w;
  if (count_ != 0)
    notify_watcher();
  else
    arm();
}

void receiver::notify_watcher() noexcept {
  if (watcher_ != nullptr) io_->post(*std::exchange(watcher_, nullptr));
}

void receiver::deliver() noexcept {
  if (!waiters_.has_waiting() || count_ == 0) return;
  operation& w = waiters_.remove_first();
  take(w);
  io_->complete_idle(w); // the reader runs now, inside this completion
}

inline bool receiver::hand_over(const operation& from) noexcept {
  if (count_ != 0 || !waiters_.has_waiting()) return false; // older completions go first
  operation& w = waiters_.remove_first();
  give(w, {from.res, from.error, from.lent_id, from.buffer});
  io_->complete_idle(w); // the reader runs now, inside this completion
  return true;
}

void receiver::release_items() noexcept {
  recv_pool& pool = io_->backend().buffers();
  operation scratch;
  while (count_ != 0) {
    take(scratch);
    if (!scratch.error && scratch.res > 0) pool.give_back(scratch.lent_id);
  }
}

void receiver::close() noexcept {
  if (closed_) return;
  closed_ = true;
  watcher_ = nullptr;
  release_items();
  while (waiters_.has_waiting()) {
    operation& w = waiters_.remove_first();
    w.res = 0;
    w.error = make_error_code(errc::operation_aborted);
    io_->defer_completion(w);
  }
  if (parked_) {
    // Still on the starved list: it leaves it when its turn comes (resume_after_starving
    // sees it closed and returns it to the pool then).
    return;
  }
  if (op_.state != op_state::idle) {
    // In the backend, or completed and waiting its turn to be seen: its last
    // completion returns it to the pool.
    if (op_.state == op_state::pending) io_->cancel(op_);
    return;
  }

  io_->release_receiver(this);
}

void receiver::resume_after_starving() noexcept {
  parked_ = false;
  if (closed_) {
    io_->release_receiver(this);
    return;
  }
  if (waiters_.has_waiting() || count_ == 0) arm();
}

void receiver::on_complete(operation& op) {
  auto& r = *static_cast<receiver*>(op.owner);
  // The usual case first: bytes for a reader that waits, nothing queued before them.
  if (!op.error && !r.closed_ && r.hand_over(op)) {
    // A single-shot receive (or a multishot that ended) re-arms while a reader waits.
    if (op.state == op_state::idle && r.waiters_.has_waiting() && r.count_ == 0) r.arm();
    return;
  }
  r.complete_rest(op);
}

// Every other completion (out of line: the usual one above saves fewer registers).
void receiver::complete_rest(operation& op) noexcept {
  if (closed_) { // draining after close(): nothing is delivered
    if (!op.error && op.res > 0) io_->backend().buffers().give_back(op.lent_id);
    if (!op.more) io_->release_receiver(this);
    return;
  }
  // (Comparing an error_code with a condition is two virtual calls: test for an error
  // first, the hot path has none.)
  if (op.error && op.error == std::errc::no_buffer_space) {
    // The pool had no buffer for it (the backend grows the pool up to its cap first).
    // Not the end of the stream: go on at once if a buffer came back meanwhile,
    // otherwise wait for one.
    if (io_->backend().buffers().has_free()) {
      if (waiters_.has_waiting() || count_ == 0) arm();
      return;
    }
    parked_ = true;
    io_->park_starved(*this);
    return;
  }

  if (op.error && !op.more && op.cancel_requested && op.error == errc::operation_aborted) {
    // Stopped at the high-water mark: re-armed when the reader has caught up.
    if (count_ == 0 && waiters_.has_waiting()) arm();
    return;
  }
  // A reader waiting and nothing queued before this (an error, the end of the stream):
  // straight to it.
  if (!hand_over(op)) {
    push({op.res, op.error, op.lent_id, op.buffer});
    // Too much undelivered: stop the kernel filling buffers for a reader that lags.
    if (op.more && count_ + overflow_.size() >= high_water && !op.cancel_requested) io_->cancel(op);
    deliver();
    // A parked connection: its owner takes it from here. Called, not posted, to save a
    // loop turn per wake-up; the watcher only unwatches and posts work (watch()).
    if (ready_node* w = std::exchange(watcher_, nullptr)) w->run(*w);
  }

  // A single-shot receive (or a multishot that ended) re-arms while a reader waits.
  if (op.state == op_state::idle && waiters_.has_waiting() && count_ == 0) arm();
}

} // namespace sluice::detail
