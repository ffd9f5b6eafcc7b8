// One stop registration per task instead of one per operation.
//
// A task is suspended on at most one operation at a time, so the task (its promise)
// registers a single callback on its stop token, at its first cancellable operation,
// and each operation only says "I am the one to cancel now" (arm) and "I am done"
// (disarm): a lock word and a pointer, not a link into the stop source's list and out
// again on every receive and send. docs/runtime.md ("One registration per task, not
// per operation") has the rules.
//
// Threads: the stop may be requested on any thread. Whoever takes the armed operation
// out of `current_` (an exchange) cancels it, or knows it need not: the stop's callback
// takes it to cancel it, disarm takes it back to end it, so exactly one of them gets
// it. A disarm that finds it taken waits for the cancel to return (`cancelling_`). A
// stop that came before an arm is seen by it (`fired_`; the arm's store and the stop's
// store are sequentially consistent, so one of the two sees the other), and the
// caller then cancels at once. No lock: one locked instruction per arm and per disarm.
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
    current_.store(&op, std::memory_order_seq_cst);
    if (!fired_.load(std::memory_order_seq_cst)) return true;
    // Stopped: whoever takes op cancels it. The callback got it (it cancels, and
    // disarm waits for that), or it is ours to cancel.
    return current_.exchange(nullptr, std::memory_order_acq_rel) != &op;
  }
  // The armed operation is done with (finished, or withdrawn). Returns after a cancel
  // of it running on another thread has returned.
  void disarm() noexcept {
    if (current_.exchange(nullptr, std::memory_order_acq_rel) != nullptr) return; // still ours
    // The stop's callback took it: wait until its cancel has returned.
    while (cancelling_.load(std::memory_order_acquire))
      std::this_thread::yield();
  }
  // The task ended (or its token is about to change): no more callbacks. Waits for one
  // running on another thread.
  void release() noexcept {
    if (source != nullptr) std::exchange(source, nullptr)->remove(this);
    registered_ = false;
    fired_.store(false, std::memory_order_relaxed);
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
  // Runs once per registration, on the thread that requested the stop.
  void fire() noexcept {
    cancelling_.store(true, std::memory_order_seq_cst); // before the operation is taken
    fired_.store(true, std::memory_order_seq_cst);
    if (operation* op = current_.exchange(nullptr, std::memory_order_seq_cst))
      cancel_operation(*op);
    cancelling_.store(false, std::memory_order_release);
  }

  // (In the base's tail padding.)
  std::atomic<bool> fired_{false};      ///< the token's stop was requested
  std::atomic<bool> cancelling_{false}; ///< the callback is cancelling what it took
  bool registered_ = false;             ///< linked into the token's source (or found it stopped)
  std::atomic<operation*> current_{nullptr}; ///< the armed operation, until someone takes it
};

// What an awaiter needs to make its operation cancellable: the awaiting task's stop
// token and canceller (stop_of() in task.hpp makes it; a coroutine that is not a task
// has neither).
struct stop_ref {
  stop_token token;
  op_canceller* canceller = nullptr;
};

} // namespace sluice::detail
