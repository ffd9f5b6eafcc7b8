// One stop registration per task instead of one per operation.
//
// A task is suspended on at most one operation at a time, so the task (its promise)
// registers a single callback on its stop token, at its first cancellable operation,
// and each operation only says "I am the one to cancel now" (arm) and "I am done"
// (disarm): a lock word and a pointer, not a link into the stop source's list and out
// again on every receive and send. docs/runtime.md, "Cancellation", has the rules.
//
// Threads: the stop may be requested on any thread. A small lock orders it against
// arm/disarm: a stop that runs while an operation is armed cancels it under the lock,
// so disarm (and with it the operation's end) waits for that cancel to return, and a
// stop that came before an arm is seen by it (the caller then cancels at once).
// The registration ends when the task finishes (its final suspend), while its token's
// source is still alive, or when the frame is destroyed.
#pragma once

#include <atomic>
#include <optional>
#include <sluice/export.hpp>
#include <sluice/stop_token.hpp>
#include <thread>

namespace sluice::detail {

struct operation;

// Cancels `op` (io_context::cancel, from any thread): io_context.cpp.
SLUICE_API void cancel_operation(operation& op) noexcept;

class op_canceller {
public:
  op_canceller() = default;
  op_canceller(const op_canceller&) = delete;
  op_canceller& operator=(const op_canceller&) = delete;

  // `op` (started, on its loop thread) is what a stop of `t` cancels from now on. `t`
  // is the task's token, the same at every call (a task's token is fixed once it
  // runs). False if the stop was requested already: the caller cancels `op` itself.
  bool arm(const stop_token& t, operation& op) noexcept {
    if (!registration_) registration_.emplace(t, fire_fn{this});
    lock();
    current_ = &op;
    const bool fired = fired_;
    unlock();
    return !fired;
  }
  // The armed operation is done with (finished, or withdrawn). Returns after a cancel
  // of it running on another thread has returned.
  void disarm() noexcept {
    lock();
    current_ = nullptr;
    unlock();
  }
  // The task ended (or its token is about to change): no more callbacks.
  void release() noexcept {
    registration_.reset();
    fired_ = false;
  }

private:
  struct fire_fn {
    op_canceller* self;
    void operator()() const noexcept { self->fire(); }
  };
  void fire() noexcept {
    lock();
    fired_ = true;
    if (current_ != nullptr) cancel_operation(*current_);
    unlock();
  }
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire))
      std::this_thread::yield();
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

  std::atomic<bool> locked_{false};
  bool fired_ = false;           ///< the token's stop was requested (under the lock)
  operation* current_ = nullptr; ///< the armed operation (under the lock)
  std::optional<stop_callback<fire_fn>> registration_;
};

// What an awaiter needs to make its operation cancellable: the awaiting coroutine's
// stop token and, for a task, its canceller (otherwise the operation registers a
// callback of its own).
struct stop_ref {
  stop_ref(const stop_token& t, op_canceller* c = nullptr) noexcept : token(t), canceller(c) {}
  stop_token token;
  op_canceller* canceller;
};

} // namespace sluice::detail
