// io_context: one event loop, one backend, one thread.
//
// The backend is chosen at construction: io_uring when the kernel lets the ring be
// set up, otherwise standalone Asio (when built in); SLUICE_BACKEND=uring|asio|iocp
// forces one, and a forced backend that cannot start throws std::system_error
// (errc::backend_unavailable / unsupported_backend) — never a silent fallback.
//
// Threading: run() drives the loop on the calling thread (the loop thread); every
// socket, timer and task of this context must be used from that thread while it
// runs. Before the first run() the context may be set up from any one thread
// (spawn, bind, connect are queued until the loop starts). stop(), post_remote() and
// the stop requests of tokens are the only things safe from other threads. Debug
// builds (and SLUICE_CHECKS=1) abort with a message naming the call when a
// loop-thread-only call comes from another thread while the loop runs.
//
// Destroy an io_context on the thread that ran it (or any thread once nothing is in
// flight): its destructor cancels what is in flight and reaps it before any frame
// is freed (docs/runtime.md).
#pragma once

#include <sluice/export.hpp>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <sluice/detail/deadline_heap.hpp>
#include <sluice/detail/operation.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace sluice {

namespace detail {
class backend;
class buffer_pool;
class receiver;
class accept_queue;
struct remote_queue;

/// Links a spawned task's root frame into its io_context, which destroys the frames
/// still alive when it is destroyed itself.
struct spawn_link {
  spawn_link* prev = nullptr;
  spawn_link* next = nullptr;
  std::coroutine_handle<> frame;
};
} // namespace detail

/// One event loop on one thread, over one backend (io_uring, Asio or IOCP): runs the
/// coroutines of its tasks and completes their I/O. See the top of this header for the
/// threading rules.
class SLUICE_API io_context {
public:
  /// How a context is set up.
  struct options {
    /// "uring", "asio", "iocp", or empty for SLUICE_BACKEND (or the best available).
    std::string_view backend;
    /// The pool receives borrow buffers from (recv_some, lent_buffer): the size of one
    /// buffer, how many exist at first, and how many it may grow to on demand.
    std::size_t recv_buffer_size = 16 * 1024;
    std::uint32_t recv_buffers = 64;       ///< buffers at first
    std::uint32_t max_recv_buffers = 4096; ///< the most it grows to
    /// Connections an acceptor accepts ahead of accept() (io_uring's multishot accept);
    /// past them the kernel's listen backlog holds the next ones.
    std::uint32_t accept_ahead = 64;
  };

  io_context();
  /// "uring", "asio", "iocp", or "" for the best available (SLUICE_BACKEND is not read).
  explicit io_context(std::string_view backend_name);
  /// A context set up by `o` (an empty `o.backend` reads SLUICE_BACKEND).
  explicit io_context(const options& o);
  ~io_context();
  io_context(const io_context&) = delete;
  io_context& operator=(const io_context&) = delete;

  /// "uring", "asio" or "iocp".
  std::string_view backend_name() const noexcept;
  /// The backend and the fallbacks it uses, e.g. "uring (shutdown: shutdown(2))".
  std::string backend_description() const;

  /// Runs until stop() is called or nothing is left to do: no spawned task alive, no
  /// operation in flight, no coroutine ready to resume.
  void run();
  /// Runs until `done` becomes true (or stop()).
  void run_until(const bool& done);
  /// Thread-safe; run() returns after the current loop turn.
  void stop() noexcept;
  /// True once stop() was called (until restart()).
  bool stopped() const noexcept;
  /// Clears a previous stop() so that run() can be called again.
  void restart() noexcept;

  /// Thread-safe: runs `fn` on the loop thread during a later turn.
  void post_remote(std::function<void()> fn);

  /// The context whose run() is executing on this thread, or nullptr.
  static io_context* current() noexcept;

  /// Spawned tasks alive (see spawn()).
  std::size_t spawned() const noexcept { return spawned_; }
  /// Operations in the backend now.
  std::size_t in_flight() const noexcept { return in_flight_; }
  /// The operations in flight, linked through operation::inflight_next (backends), when
  /// the backend keeps that list (keep_in_flight_list).
  detail::operation* first_in_flight() const noexcept { return inflight_; }
  /// Whether submit() links each operation into the in-flight list. A backend that never
  /// walks it turns it off: linking and unlinking cost every operation a write into its
  /// neighbours. Operations linked before it was turned off are unlinked as they complete.
  void keep_in_flight_list(bool on) noexcept { list_in_flight_ = on; }

  /// What a loop is doing now (read it on the loop thread; from another thread, through
  /// spawn_on()).
  struct stats_t {
    std::size_t in_flight = 0;      ///< operations in the backend (receives armed included)
    std::size_t spawned = 0;        ///< spawned tasks alive
    std::size_t buffers_in_use = 0; ///< receive buffers lent out now
    std::size_t buffers = 0;        ///< receive buffers in the pool
  };
  /// This loop's figures. Loop thread.
  stats_t stats() const noexcept;

  /// How many operations were withdrawn because their coroutine was destroyed first,
  /// by how far they had got (process-wide; for tests and diagnostics).
  struct abandon_stats {
    std::size_t queued = 0;        ///< waiting behind another sender, or in a wait list
    std::size_t not_submitted = 0; ///< the OS never saw them
    std::size_t in_flight = 0;     ///< cancelled in the OS
    std::size_t completed = 0;     ///< completed, result never seen (closed if a handle)
  };
  /// The counts so far.
  static abandon_stats abandoned() noexcept;

  /// Completions (and inline-completing operations) one loop turn runs before it lets
  /// the coroutines that are ready run: every ready coroutine gets a turn however busy
  /// one connection is (the cooperative budget of Tokio).
  static constexpr unsigned turn_budget = 128;

  /// The options in force (defaults filled in).
  const options& settings() const noexcept { return options_; }

  /// \cond INTERNAL

  /// --- runtime plumbing, not for users ---
  detail::backend& backend() noexcept { return *backend_; }
  /// The backend's pool of receive buffers, as lent buffers give theirs back to it
  /// (kept here: no virtual call to find it on every receive).
  detail::buffer_pool& lend_pool() noexcept { return *lend_pool_; }
  /// Receivers (the receive side of streams that use recv_some), pooled.
  detail::receiver* acquire_receiver();
  void release_receiver(detail::receiver* r) noexcept;
  /// Accept queues (the accepting side of acceptors), pooled the same way.
  detail::accept_queue* acquire_accept_queue();
  void release_accept_queue(detail::accept_queue* q) noexcept;
  /// A lent buffer came back to the pool: a receiver starved of buffers may go on.
  /// (The test inline: there is usually none.)
  void buffers_came_back() noexcept {
    if (starved_ != nullptr) resume_starved();
  }
  void resume_starved() noexcept;
  void park_starved(detail::receiver& r) noexcept;
  std::uint64_t id() const noexcept { return id_; }
  static bool alive(std::uint64_t id) noexcept;
  void on_spawn(detail::spawn_link& l) noexcept;
  void on_spawn_done(detail::spawn_link& l) noexcept;
  /// Queues `n` to run during the next turn. Loop thread.
  void post(detail::ready_node& n) noexcept;
  /// Starts op in the backend (or completes it with operation_aborted, deferred, if a
  /// cancel was requested for it): every submission and resubmission goes through here.
  void submit(detail::operation& op);
  /// A backend's completion: resumes op's coroutine (or calls its on_complete).
  /// (Inline: every completion comes through here.)
  void complete(detail::operation& op) noexcept {
    settle_completed(op);
    complete_idle(op);
  }
  /// complete() for an operation already idle: one taken out of a wait list (a reader
  /// served by its stream's receiver), which never was in the backend.
  void complete_idle(detail::operation& op) noexcept {
    if (shutting_down_) return complete_shutting_down(op);
    if (op.on_complete != nullptr)
      op.on_complete(op); // may resubmit op, or resume the waiter itself
    else
      op.waiter.resume();
  }
  /// A completion delivered on a later turn (op.res and op.error are already set).
  void defer_completion(detail::operation& op) noexcept;
  void cancel(detail::operation& op) noexcept;        ///< any thread
  void retire_cancel(detail::operation& op) noexcept; ///< after a cross-thread cancel
  /// Returns op to idle from whatever state it is in, before its frame is freed. A
  /// result the OS had produced is left in op.res / op.error; otherwise op.error is
  /// operation_aborted.
  void abandon(detail::operation& op) noexcept;
  /// Releases what an unseen completion carries (closes an accepted handle).
  void backend_discard(detail::operation& op) noexcept;
  void run_remote() noexcept; ///< called by the backend on wake
  /// Any thread: runs `n.run` on the loop thread during a later turn. Lock-free (a
  /// multi-producer queue, and a wake only when the loop may be asleep); `n` must stay
  /// alive until it has run.
  void post_remote(detail::remote_node& n) noexcept;
  /// Drops the remote work still queued (calls each node's `drop`). Only while no
  /// thread posts and the loop does not run (a runtime being destroyed).
  void drop_remote() noexcept;
  /// Takes one unit of this turn's budget; false once it is spent.
  bool consume_budget() noexcept {
    if (budget_ == 0) return false;
    --budget_;
    return true;
  }
  unsigned budget_left() const noexcept { return budget_; }
  bool shutting_down() const noexcept { return shutting_down_; }
  /// A queued operation (waiting its turn, or for a receiver, or in a wait list) with a
  /// deadline: the loop expires it (the backend bounds its wait by the earliest one).
  void watch_deadline(detail::operation& op) { waiting_deadlines_.insert(op); }
  void unwatch_deadline(detail::operation& op) noexcept { waiting_deadlines_.remove(op); }
  void count_queued(int delta) noexcept { queued_ += delta; }
  /// Aborts with a message naming `what` if called off the loop thread while it runs.
  /// (Checked in debug builds of sluice, or when it is built with SLUICE_CHECKS=1.)
  void check_loop_thread(const char* what) const noexcept;
  /// Whether this build of sluice checks the loop-thread preconditions.
  static bool loop_thread_checks() noexcept;

  /// \endcond

private:
  io_context(const options& o, bool read_environment);
  bool has_work() const noexcept;

  void turn(const bool* done);
  bool take_remote() noexcept; // moves remote work to the ready list; true if any
  bool remote_empty() const noexcept;
  void expire_waiting_deadlines() noexcept;

  options options_;
  std::unique_ptr<detail::backend> backend_;
  std::vector<std::unique_ptr<detail::receiver>> receivers_;
  std::vector<detail::receiver*> free_receivers_;
  void complete_shutting_down(detail::operation& op) noexcept;
  // submit() while shutting down, of a cancelled operation, or of one of no kind.
  [[gnu::noinline]] void refuse(detail::operation& op) noexcept;
  // A completion's effect on op's state: idle and off the in-flight list, unless it
  // was one completion of a multishot (the operation stays pending).
  void settle_completed(detail::operation& op) noexcept {
    if (op.more) return;
    if (op.state == detail::op_state::pending) unlink_inflight(op);
    op.state = detail::op_state::idle;
  }
  // Takes a completed operation out of the in-flight count (and list, if it is in it).
  void unlink_inflight(detail::operation& op) noexcept {
    if (op.background) --background_;
    if (op.inflight_pprev != nullptr) {
      *op.inflight_pprev = op.inflight_next;
      if (op.inflight_next != nullptr) op.inflight_next->inflight_pprev = op.inflight_pprev;
      op.inflight_next = nullptr;
      op.inflight_pprev = nullptr;
    }
    --in_flight_;
  }

  detail::buffer_pool* lend_pool_ = nullptr;
  detail::receiver* starved_ = nullptr; ///< receivers waiting for buffers, FIFO
  detail::receiver* starved_tail_ = nullptr;
  bool resuming_starved_ = false;
  std::vector<std::unique_ptr<detail::accept_queue>> accept_queues_;
  std::vector<detail::accept_queue*> free_accept_queues_;

  std::unique_ptr<detail::remote_queue> remote_;
  // The lock-free queue of remote work (Vyukov's intrusive MPSC queue): producers
  // exchange the tail, the loop pops from the head.
  detail::remote_node remote_stub_;
  std::atomic<detail::remote_node*> remote_tail_{&remote_stub_};
  detail::remote_node* remote_head_ = &remote_stub_;
  // Set while the loop may block in the backend: a producer that sees it wakes it.
  std::atomic<bool> sleeping_{false};
  detail::ready_node ready_;   ///< sentinel of the circular ready list
  detail::ready_node running_; ///< the part of it this turn runs
  detail::operation* inflight_ = nullptr;
  detail::deadline_heap waiting_deadlines_;

  std::uint64_t id_;
  std::size_t in_flight_ = 0;
  std::size_t background_ = 0; ///< of in_flight_: operations that are not work by themselves
  std::ptrdiff_t queued_ = 0;  ///< operations waiting in queues (their coroutines are work)

  std::size_t spawned_ = 0;
  detail::spawn_link* spawn_head_ = nullptr;
  unsigned budget_ = turn_budget;
  bool shutting_down_ = false;
  bool list_in_flight_ = true; ///< see keep_in_flight_list
  std::atomic<std::thread::id> loop_thread_{};
};

/// \cond INTERNAL
namespace detail {
// op_queue's members that count waiting operations as work of their loop (declared in
// detail/operation.hpp; here, where io_context is complete, so that they stay inline).
inline void count_queued(operation& op, int delta) noexcept {
  if (op.ctx != nullptr) op.ctx->count_queued(delta);
}

inline bool op_queue::enter(operation& op) noexcept {
  op.queue = this;
  if (active_ == nullptr) {
    active_ = &op;
    return true;
  }
  op.state = op_state::queued;
  op.queue_next = nullptr;
  *tail_ = &op;
  tail_ = &op.queue_next;
  count_queued(op, +1);
  return false;
}

inline void op_queue::wait(operation& op) noexcept {
  op.queue = this;
  op.state = op_state::queued;
  op.queue_next = nullptr;
  *tail_ = &op;
  tail_ = &op.queue_next;
  count_queued(op, +1);
}

inline operation* op_queue::leave(operation& op) noexcept {
  op.queue = nullptr;
  if (active_ != &op) {
    remove(op);
    return nullptr;
  }
  active_ = head_;
  if (head_ != nullptr) {
    head_ = head_->queue_next;
    if (head_ == nullptr) tail_ = &head_;
    active_->state = op_state::idle;
    unwatch_deadline(*active_); // its deadline now goes with it to the backend
    count_queued(*active_, -1);
  }
  return active_;
}

inline void op_queue::remove(operation& op) noexcept {
  for (operation** p = &head_; *p != nullptr; p = &(*p)->queue_next)
    if (*p == &op) {
      *p = op.queue_next;
      if (tail_ == &op.queue_next) tail_ = p;
      count_queued(op, -1);
      break;
    }
  detach(op);
}

inline operation& op_queue::remove_first() noexcept {
  operation& op = *head_;
  head_ = op.queue_next;
  if (head_ == nullptr) tail_ = &head_;
  count_queued(op, -1);
  detach(op);
  return op;
}

inline void op_queue::detach(operation& op) noexcept {
  op.queue = nullptr;
  op.queue_next = nullptr;
  op.state = op_state::idle;
  unwatch_deadline(op);
}
} // namespace detail
/// \endcond

} // namespace sluice
