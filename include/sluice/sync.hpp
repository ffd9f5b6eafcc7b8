// event and channel: coordination between coroutines of one loop.
//
//   event ready(io);                  // a flag coroutines can wait for
//   co_await ready.wait();            // result<void>; at once if set
//   ready.set();                      // resumes every waiter on the next turn
//
//   channel<std::string> q(io, 64);   // bounded: at most 64 values held
//   co_await q.send("hello");         // result<void>; waits while full
//   auto v = co_await q.recv();       // result<std::string>; waits while empty
//   q.close();                        // senders fail, receivers drain what is left
//
// A per-connection send queue is the usual use: readers push replies into a channel
// and one writer coroutine drains it into the socket, so a slow peer fills the
// channel and then holds the producers back (backpressure) instead of growing memory.
//
// Both belong to one io_context and are used from its loop thread. Every wait is an
// operation of that loop: the waiting task's stop token cancels it (operation_aborted)
// from any thread, with_timeout() bounds it, and the coroutine may be destroyed while
// it waits. Destroying an event or a channel resumes its waiters with
// operation_aborted; nothing refers to it afterwards.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <sluice/detail/io_awaiter.hpp>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/scope.hpp>
#include <sluice/task.hpp>
#include <stdexcept>
#include <string>
#include <utility>

namespace sluice {

/// A flag that coroutines wait for: wait() completes once it is set. It stays set until
/// reset() (a manual-reset event).
class event {
public:
  /// An event of the loop `io`, not set.
  explicit event(io_context& io) noexcept : waiters_(io) {}
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// Sets the flag and resumes every waiter (on the next loop turn).
  void set() noexcept {
    if (set_) return;
    set_ = true;
    waiters_.notify();
  }
  /// Clears the flag: later waits wait again. Waiters already released still resume.
  void reset() noexcept { set_ = false; }
  /// Whether the flag is set.
  bool is_set() const noexcept { return set_; }
  /// Completes (with success) at once if set, otherwise when set() is next called;
  /// operation_aborted if the waiting task is stopped or the event destroyed.
  [[nodiscard]] detail::wait_list::awaiter wait() noexcept { return waiters_.wait(set_); }

private:
  detail::wait_list waiters_;
  bool set_ = false;
};

/// A bounded first-in first-out queue between coroutines of one loop. See the top of
/// this header.
///
/// Values are handed over, not announced: a value sent while a receiver waits goes
/// straight into that receiver, and room made while a sender waits takes that sender's
/// value at once. So a woken coroutine never touches the channel again, and waiters are
/// served in the order they came (first come, first served).
template <class T> class channel {
  class awaiter_base : public detail::io_awaiter {
  protected:
    explicit awaiter_base(channel& c) noexcept : c_(&c) { op_.ctx = c.io_; }
    awaiter_base(awaiter_base&& o) noexcept : detail::io_awaiter(std::move(o)), c_(o.c_) {}
    channel* c_;
    std::optional<sluice::error> settled_; // decided without waiting
  };

public:
  /// A channel of the loop `io` holding at most `capacity` values (at least 1; 0 throws
  /// std::invalid_argument).
  channel(io_context& io, std::size_t capacity) : io_(&io), capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("sluice::channel: capacity must be at least 1");
  }
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  /// Waiting senders and receivers resume with operation_aborted (a sender's value is
  /// dropped); values still held are destroyed.
  ~channel() {
    release_all(senders_, make_error_code(errc::operation_aborted));
    release_all(receivers_, make_error_code(errc::operation_aborted));
  }

  /// Awaitable of send(): result<void>.
  class [[nodiscard]] send_awaiter : public awaiter_base {
  public:
    /// Sends `v` on `c` when awaited.
    send_awaiter(channel& c, T&& v) : awaiter_base(c), value_(std::move(v)) {}
    /// Moved before it is awaited.
    send_awaiter(send_awaiter&&) = default;
    bool await_ready() {
      if (this->c_->closed_) {
        this->settled_.emplace(errc::channel_closed, "channel send: the channel is closed");
        return true;
      }
      return this->c_->offer(value_);
    }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) {
      this->op_.buffer = &value_;
      return this->start_wait(h, detail::stop_of(h), this->c_->senders_);
    }
    result<void> await_resume() {
      this->finish();
      if (this->settled_) return std::move(*this->settled_);
      if (this->op_.error == errc::channel_closed)
        return error(errc::channel_closed, "channel send: the channel was closed while waiting");
      if (this->op_.error) return error(this->op_.error, "channel send: waiting for room");
      return {};
    }

  private:
    T value_;
  };

  /// Awaitable of recv(): result<T>.
  class [[nodiscard]] recv_awaiter : public awaiter_base {
  public:
    /// Receives from `c` when awaited.
    explicit recv_awaiter(channel& c) noexcept : awaiter_base(c) {}
    /// Moved before it is awaited.
    recv_awaiter(recv_awaiter&&) = default;
    bool await_ready() {
      if (this->c_->take(slot_)) return true;
      if (this->c_->closed_) {
        this->settled_.emplace(errc::channel_closed,
                               "channel recv: the channel is closed and empty");
        return true;
      }
      return false;
    }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) {
      this->op_.buffer = &slot_;
      return this->start_wait(h, detail::stop_of(h), this->c_->receivers_);
    }
    result<T> await_resume() {
      this->finish();
      if (slot_) return std::move(*slot_);
      if (this->settled_) return std::move(*this->settled_);
      if (this->op_.error == errc::channel_closed)
        return error(errc::channel_closed, "channel recv: the channel was closed while waiting");
      return error(this->op_.error, "channel recv: waiting for a value");
    }

  private:
    std::optional<T> slot_;
  };

  /// Queues `value`, waiting while the channel is full. Fails with channel_closed once
  /// the channel is closed, or operation_aborted if the sending task is stopped; the
  /// value is dropped then (try_send() keeps it).
  send_awaiter send(T value) { return send_awaiter(*this, std::move(value)); }

  /// Queues `value` if there is room and the channel is open: true. Otherwise false and
  /// `value` is left as it was.
  bool try_send(T&& value) { return !closed_ && offer(value); }
  /// The same, for a copy of `value`.
  bool try_send(const T& value) {
    if (closed_ || full()) return false;
    T copy(value);
    return offer(copy);
  }

  /// The oldest value, waiting while the channel is empty. A closed channel still hands
  /// out what it holds; once empty it fails with channel_closed. operation_aborted if
  /// the receiving task is stopped (no value is taken then).
  recv_awaiter recv() noexcept { return recv_awaiter(*this); }

  /// The oldest value if there is one.
  std::optional<T> try_recv() {
    std::optional<T> v;
    take(v);
    return v;
  }

  /// No more sends: waiting senders fail with channel_closed, receivers get what is
  /// left, then channel_closed. Idempotent.
  void close() noexcept {
    if (closed_) return;
    closed_ = true;
    release_all(senders_, make_error_code(errc::channel_closed));
    release_all(receivers_, make_error_code(errc::channel_closed)); // the queue is empty
  }

  bool closed() const noexcept { return closed_; }                  ///< close() was called
  std::size_t size() const noexcept { return items_.size(); }       ///< values held now
  std::size_t capacity() const noexcept { return capacity_; }       ///< the most it holds
  bool empty() const noexcept { return items_.empty(); }            ///< holds nothing
  bool full() const noexcept { return items_.size() >= capacity_; } ///< send() would wait

private:
  // Places `v` (moved from only on success): into a waiting receiver, else the queue
  // if it has room. Loop thread.
  bool offer(T& v) {
    if (detail::operation* op = receivers_.first_waiting()) {
      static_cast<std::optional<T>*>(op->buffer)->emplace(std::move(v));
      complete(receivers_, *op, {});
      return true;
    }
    if (full()) return false;
    items_.push_back(std::move(v));
    return true;
  }
  // The oldest value into `out`; a waiting sender's value takes the freed place.
  bool take(std::optional<T>& out) {
    if (items_.empty()) return false;
    out.emplace(std::move(items_.front()));
    items_.pop_front();
    if (detail::operation* op = senders_.first_waiting()) {
      items_.push_back(std::move(*static_cast<T*>(op->buffer)));
      complete(senders_, *op, {});
    }
    return true;
  }
  static void complete(detail::op_queue& q, detail::operation& op, std::error_code ec) noexcept {
    q.remove(op);
    op.error = ec;
    op.ctx->defer_completion(op);
  }
  static void release_all(detail::op_queue& q, std::error_code ec) noexcept {
    while (detail::operation* op = q.first_waiting())
      complete(q, *op, ec);
  }

  io_context* io_;
  std::deque<T> items_;
  std::size_t capacity_;
  bool closed_ = false;
  detail::op_queue senders_;   // full: senders waiting, each op's buffer is its value
  detail::op_queue receivers_; // empty: receivers waiting, each op's buffer is its slot
};

} // namespace sluice
