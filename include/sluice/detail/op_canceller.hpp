// One stop registration per task instead of one per operation.
//
// A task is suspended on at most one operation at a time, so the task (its promise)
// registers a single callback on its stop token, at its first cancellable operation,
// and each operation only says "I am the one to cancel now" (arm) and "I am done"
// (disarm): a lock word and a pointer, not a link into the stop source's list and out
// again on every receive and send. docs/runtime.md ("One registration per task, not
// per operation") has the rules.
//
// Threads: the stop may be requested on any thread. A small lock orders it against
// arm/disarm: a stop that runs while an operation is armed cancels it under the lock,
// so disarm (and with it the operation's end) waits for that cancel to return, and a
// stop that came before an arm is seen by it (the caller then cancels at once).
// The registration ends when the task finishes (its final suspend), while its token's
// source is still alive, or when the frame is destroyed.
#pragma once

#include <atomic>
#include <sluice/export.hpp>
#include <sluice/stop_token.hpp>
#include <thread>
#include <utility>

namespace sluice::detail {

struct operation;

// Cancels `op` (io_context::cancel, from any thread): io_context.cpp.
SLUICE_API void cancel_operation(operation& op) noexcept;

// It is itself the node linked into the token's source (a stop_callback without the
// wrapper), so that it costs a task frame 56 bytes.
class op_canceller : private stop_callback_base {
public:
  op_canceller() noexcept : stop_callback_base(&run) {}
  op_canceller(const op_canceller&) = delete;
  op_canceller& operator=(const op_canceller&) = delete;
  ~op_canceller() { release(); }

  // `op` (started, on its loop thread) is what a stop of `t` cancels from now on. `t`
  // is the task's token, the same at every call (a task's token is fixed once it
  // runs). False if the stop was requested already: the caller cancels `op` itself.
  bool arm(const stop_token& t, operation& op) noexcept {
    if (!registered_) register_on(t);
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
  // The task ended (or its token is about to change): no more callbacks. Waits for one
  // running on another thread.
  void release() noexcept {
    if (source != nullptr) std::exchange(source, nullptr)->remove(this);
    registered_ = false;
    fired_ = false;
  }

private:
  void register_on(const stop_token& t) noexcept {
    registered_ = true;
    next = nullptr;
    prev = nullptr;
    removed_during_callback = nullptr;
    done.store(false, std::memory_order_relaxed);
    if (t.src_->try_add(this)) {
      source = t.src_;
    } else { // stopped already: as a stop_callback would, run now
      fire();
      done.store(true, std::memory_order_release);
    }
  }
  static void run(stop_callback_base* b) noexcept { static_cast<op_canceller*>(b)->fire(); }
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

  // (In the base's tail padding.)
  std::atomic<bool> locked_{false};
  bool fired_ = false;           ///< the token's stop was requested (under the lock)
  bool registered_ = false;      ///< linked into the token's source (or found it stopped)
  operation* current_ = nullptr; ///< the armed operation (under the lock)
};

// What an awaiter needs to make its operation cancellable: the awaiting task's stop
// token and canceller (stop_of() in task.hpp makes it; a coroutine that is not a task
// has neither).
struct stop_ref {
  stop_token token;
  op_canceller* canceller = nullptr;
};

} // namespace sluice::detail
