// sluice::stop_source, stop_token and stop_callback: cancellation without allocation.
//
// The same interface as std::stop_source / std::stop_token / std::stop_callback, but
// the source lives in place (in a coroutine frame, an awaiter, a server's connection
// record) and owns no heap state, so when_all, when_any and with_stop_token can build
// one per use without allocating. The price: a stop_source is neither copyable nor
// movable, and its tokens must not outlive it (as with P2300's inplace_stop_source).
//
// Threads: request_stop() may be called from any thread; the callbacks then run on
// that thread. Destroying a stop_callback while its callback runs on another thread
// waits for the callback to return, so whatever the callback uses stays alive; a
// callback may destroy its own stop_callback.
//
// std::stop_token is accepted wherever a task is given a token from outside (spawn,
// sync_wait, with_stop_token): it is forwarded into an in-place source.
#pragma once

#include <atomic>
#include <thread>
#include <type_traits>
#include <utility>

namespace sluice {

class stop_source;
class stop_token;
template <class F> class stop_callback;

namespace detail {

class op_canceller;

struct stop_callback_base {
  explicit stop_callback_base(void (*fn)(stop_callback_base*) noexcept) noexcept : invoke(fn) {}
  stop_callback_base(const stop_callback_base&) = delete;
  stop_callback_base& operator=(const stop_callback_base&) = delete;

  void (*invoke)(stop_callback_base*) noexcept;
  const stop_source* source = nullptr;
  stop_callback_base* next = nullptr;
  stop_callback_base** prev = nullptr; ///< where this node is linked from; null if unlinked
  bool* removed_during_callback = nullptr;
  std::atomic<bool> done{false}; ///< the callback ran and returned
};

} // namespace detail

/// The stopping side of a cancellation: in place, neither copyable nor movable (see
/// the top of this header).
class stop_source {
public:
  stop_source() noexcept = default;
  stop_source(const stop_source&) = delete;
  stop_source& operator=(const stop_source&) = delete;
  /// Precondition: no stop_callback is registered on it any more.
  ~stop_source() = default;

  /// A token that sees this source's stop.
  stop_token get_token() const noexcept;
  /// True once request_stop() was called.
  bool stop_requested() const noexcept {
    return (state_.load(std::memory_order_acquire) & stopped_bit) != 0;
  }
  /// Always true (as std::stop_source with state).
  static constexpr bool stop_possible() noexcept { return true; }

  /// Runs every registered callback, on this thread. True if this call made the request.
  bool request_stop() noexcept;

private:
  template <class F> friend class stop_callback;
  friend class detail::op_canceller;
  static constexpr unsigned char locked_bit = 1, stopped_bit = 2;

  unsigned char lock() const noexcept;
  void unlock(unsigned char state) const noexcept {
    state_.store(static_cast<unsigned char>(state & ~locked_bit), std::memory_order_release);
  }
  /// Links `cb`; false (and nothing linked) if stop was already requested.
  bool try_add(detail::stop_callback_base* cb) const noexcept;
  void remove(detail::stop_callback_base* cb) const noexcept;

  mutable std::atomic<unsigned char> state_{0};
  mutable detail::stop_callback_base* head_ = nullptr;
  mutable std::thread::id stopping_thread_;
};

/// The observing side of a cancellation: cheap to copy, must not outlive its source.
class stop_token {
public:
  stop_token() noexcept = default; ///< can never be stopped
  /// True once the source's stop was requested.
  bool stop_requested() const noexcept { return src_ != nullptr && src_->stop_requested(); }
  /// True if it has a source (a default token has none).
  bool stop_possible() const noexcept { return src_ != nullptr; }
  /// Same source.
  friend bool operator==(const stop_token&, const stop_token&) noexcept = default;

private:
  friend class stop_source;
  template <class F> friend class stop_callback;
  friend class detail::op_canceller;
  explicit stop_token(const stop_source* s) noexcept : src_(s) {}
  const stop_source* src_ = nullptr;
};

inline stop_token stop_source::get_token() const noexcept { return stop_token(this); }

/// Calls `f` when the token's source is stopped (at once, here, if it already is).
template <class F> class stop_callback : private detail::stop_callback_base {
public:
  /// Registers `f` on `t`'s source (or calls it now if the source is already stopped).
  template <class C>
  requires std::is_constructible_v<F, C>
  explicit stop_callback(const stop_token& t, C&& f) noexcept(std::is_nothrow_constructible_v<F, C>)
      : detail::stop_callback_base(&run), f_(std::forward<C>(f)) {
    if (t.src_ == nullptr) return;
    if (t.src_->try_add(this)) {
      source = t.src_;
    } else {
      f_();
      done.store(true, std::memory_order_release);
    }
  }
  ~stop_callback() {
    if (source != nullptr) source->remove(this);
  }
  stop_callback(const stop_callback&) = delete;
  stop_callback& operator=(const stop_callback&) = delete;

private:
  static void run(detail::stop_callback_base* b) noexcept { static_cast<stop_callback*>(b)->f_(); }
  F f_;
};

template <class F> stop_callback(stop_token, F) -> stop_callback<F>;

namespace detail {
/// A callback that requests stop on another source (forwarding one token into another).
struct forward_stop {
  stop_source* target;
  void operator()() const noexcept { target->request_stop(); }
};
} // namespace detail

// --- implementation (small, and on the path of every cancellable operation)

inline unsigned char stop_source::lock() const noexcept {
  unsigned char s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & locked_bit) == 0 &&
        state_.compare_exchange_weak(s, static_cast<unsigned char>(s | locked_bit),
                                     std::memory_order_acquire, std::memory_order_relaxed))
      return static_cast<unsigned char>(s | locked_bit);
    if ((s & locked_bit) != 0) {
      std::this_thread::yield();
      s = state_.load(std::memory_order_relaxed);
    }
  }
}

inline bool stop_source::try_add(detail::stop_callback_base* cb) const noexcept {
  const unsigned char s = lock();
  if ((s & stopped_bit) != 0) {
    unlock(s);
    return false;
  }
  cb->next = head_;
  cb->prev = &head_;
  if (head_ != nullptr) head_->prev = &cb->next;
  head_ = cb;
  unlock(s);
  return true;
}

inline void stop_source::remove(detail::stop_callback_base* cb) const noexcept {
  const unsigned char s = lock();
  if (cb->prev != nullptr) { // still registered: just unlink
    *cb->prev = cb->next;
    if (cb->next != nullptr) cb->next->prev = cb->prev;
    cb->prev = nullptr;
    unlock(s);
    return;
  }
  const bool on_stopping_thread = stopping_thread_ == std::this_thread::get_id();
  unlock(s);
  if (cb->done.load(std::memory_order_acquire)) return;
  if (on_stopping_thread) {
    // The callback is running on this thread and destroys its own registration.
    if (cb->removed_during_callback != nullptr) *cb->removed_during_callback = true;
    return;
  }
  // Running on the thread that requested stop: wait until it has returned.
  while (!cb->done.load(std::memory_order_acquire))
    std::this_thread::yield();
}

inline bool stop_source::request_stop() noexcept {
  unsigned char s = lock();
  if ((s & stopped_bit) != 0) {
    unlock(s);
    return false;
  }
  s = static_cast<unsigned char>(s | stopped_bit);
  state_.store(s, std::memory_order_release); ///< still locked
  stopping_thread_ = std::this_thread::get_id();
  while (head_ != nullptr) {
    detail::stop_callback_base* cb = head_;
    head_ = cb->next;
    if (head_ != nullptr) head_->prev = &head_;
    cb->prev = nullptr;
    bool removed = false;
    cb->removed_during_callback = &removed;
    unlock(s);
    cb->invoke(cb);
    if (!removed) {
      cb->removed_during_callback = nullptr;
      cb->done.store(true, std::memory_order_release);
    }
    s = lock();
  }
  unlock(s);
  return true;
}

} // namespace sluice
