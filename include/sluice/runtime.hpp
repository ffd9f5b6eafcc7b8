// Thread-per-core: several io_contexts, one per thread, and the ways coroutines cross
// between them.
//
//   sluice::runtime rt(2);                         // two loops, two threads
//   rt.run([&](io_context& loop, std::size_t i) -> task<void> { ... });
//
//   auto h = spawn_on(rt.loop(1), compute());      // any thread: runs on loop 1
//   int v = co_await h;                            // its result (or its exception)
//
//   co_await switch_to(rt.loop(1));                // this coroutine goes on there
//
// Each loop keeps its own backend (its own ring, Asio context or completion port) and
// is driven by its own thread; nothing is shared between them but what is handed
// over explicitly. Work crosses loops through a lock-free queue per loop and a wake of
// that loop only when it may be asleep: no mutex on that path. The rules of a single
// io_context still hold on each loop: a socket belongs to the loop it was opened on.
// docs/runtime.md ("Thread-per-core") has the details.
#pragma once

#include <sluice/export.hpp>

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <sluice/detail/operation.hpp>
#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/spawn.hpp>
#include <sluice/stop_token.hpp>
#include <sluice/task.hpp>
#include <sluice/when_all.hpp>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace sluice {

/// Awaitable that moves the awaiting coroutine to the loop `to` (switch_to()).
class [[nodiscard]] switch_awaiter : private detail::remote_node {
public:
  /// Moves to `to`.
  explicit switch_awaiter(io_context& to) noexcept : to_(&to) { run = &go_on; }
  /// A copy that has not been posted (awaiters are copied before they are awaited).
  switch_awaiter(const switch_awaiter& o) noexcept : detail::remote_node(), to_(o.to_) {
    run = &go_on;
  }
  switch_awaiter& operator=(const switch_awaiter&) = delete;

  bool await_ready() const noexcept { return io_context::current() == to_; }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    handle_ = h;
    to_->post_remote(*this);
  }
  void await_resume() const noexcept {}

private:
  static void go_on(detail::ready_node& n) noexcept {
    static_cast<switch_awaiter&>(n).handle_.resume();
  }
  io_context* to_;
  std::coroutine_handle<> handle_;
};

/// Moves the awaiting coroutine to the loop `to`: it goes on on `to`'s thread, during
/// a later turn of `to` (at once if it runs there already). What it touches afterwards
/// must belong to `to` (its sockets, timers and tasks). A coroutine whose root was
/// spawned on another loop ends back there (its frame is freed by its own loop).
inline switch_awaiter switch_to(io_context& to) noexcept { return switch_awaiter(to); }

namespace detail {

// What a spawn_on() task and its join_handle share. Freed by the last of its owners:
// the handle, the task side, and a resumption in flight.
struct SLUICE_API join_base {
  // A node that knows its state.
  struct node : remote_node {
    join_base* owner = nullptr;
  };
  std::atomic<int> refs{2}; // the handle and the task side
  // 0: running, nobody waits; 1: a coroutine waits; 2: finished.
  std::atomic<std::uint8_t> phase{0};
  std::atomic<bool> withdrawn{false}; // the waiting coroutine was destroyed
  stop_source stop;                   // stops the task (any thread)
  node start;                         // starts it on its loop
  node resume;                        // resumes the waiter on its own loop
  std::coroutine_handle<> waiter;
  io_context* waiter_io = nullptr;
  io_context* loop = nullptr; // where the task runs
  std::exception_ptr error;

  join_base() noexcept;
  join_base(const join_base&) = delete;
  join_base& operator=(const join_base&) = delete;
  virtual ~join_base() = default;

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // The task side is done (finished, failed, or never started): wakes the waiter and
  // lets go of the task side's share.
  void finish() noexcept;
  // The waiting coroutine's thread: registers `h` to be resumed on `io`; false if the
  // task had finished already.
  bool wait(std::coroutine_handle<> h, io_context& io) noexcept;
  // The waiter's frame is being destroyed: it must not be resumed.
  void withdraw() noexcept;

protected:
  // On `loop`'s thread: spawns the task.
  virtual void begin() noexcept = 0;

private:
  static void run_start(ready_node& n) noexcept;
  static void drop_start(remote_node& n) noexcept;
  static void run_resume(ready_node& n) noexcept;
  static void drop_resume(remote_node& n) noexcept;
};

template <class T> struct join_state final : join_base {
  task<T> body;
  std::optional<typename outcome<T>::stored> value;

  void begin() noexcept override {
    try {
      spawn(*loop, run_body(this), stop.get_token());
    } catch (...) { // no memory for the frame
      error = std::current_exception();
      finish();
    }
  }

  // Runs the body on its loop; a frame destroyed before it finished (its loop went
  // away) still finishes the state, with an error.
  static task<void> run_body(join_state* s) {
    struct finisher {
      join_state* s;
      ~finisher() {
        if (!s->value && !s->error)
          s->error = std::make_exception_ptr(std::system_error(
              make_error_code(errc::operation_aborted),
              "spawn_on: the task's io_context was destroyed before it finished"));
        s->finish();
      }
    } done{s};
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(s->body);
        s->value.emplace();
      } else {
        s->value.emplace(co_await std::move(s->body));
      }
    } catch (...) {
      s->error = std::current_exception();
    }
  }
};

} // namespace detail

/// The result of a task started by spawn_on(): await it (once) for the task's value or
/// exception. Destroying it unawaited detaches the task, which runs on.
template <class T> class [[nodiscard]] join_handle {
public:
  /// Owns a share of `s` (spawn_on() makes it).
  explicit join_handle(detail::join_state<T>* s) noexcept : s_(s) {}
  /// Takes over `o`'s task.
  join_handle(join_handle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  join_handle& operator=(join_handle&&) = delete;
  ~join_handle() {
    if (s_ != nullptr) s_->release();
  }

  /// Asks the task to stop (its stop token); safe from any thread.
  void request_stop() noexcept {
    if (s_ != nullptr) s_->stop.request_stop();
  }

  /// \cond INTERNAL
  class [[nodiscard]] awaiter {
  public:
    explicit awaiter(detail::join_state<T>* s) noexcept : s_(s) {}
    awaiter(awaiter&& o) noexcept : s_(o.s_) {}
    ~awaiter() {
      callback_.reset();
      if (waiting_) s_->withdraw();
    }
    bool await_ready() const noexcept { return s_->phase.load(std::memory_order_acquire) == 2; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) {
      io_context* io = io_context::current();
      if (io == nullptr) throw std::logic_error("awaiting a join_handle outside a running loop");
      // Stopping the awaiting coroutine stops the task; the awaiter still waits for
      // it to end (structured: nothing it started outlives it unseen).
      const stop_token token = detail::stop_token_of(h);
      if (token.stop_possible()) callback_.emplace(token, forward{s_});
      if (!s_->wait(h, *io)) return false; // it had finished meanwhile
      waiting_ = true;
      return true;
    }
    T await_resume() {
      waiting_ = false;
      callback_.reset();
      if (s_->error) std::rethrow_exception(s_->error);
      if constexpr (!std::is_void_v<T>) return std::move(*s_->value);
    }

  private:
    struct forward {
      detail::join_base* s;
      void operator()() const noexcept { s->stop.request_stop(); }
    };
    detail::join_state<T>* s_;
    bool waiting_ = false;
    std::optional<stop_callback<forward>> callback_;
  };
  /// \endcond

  /// Waits for the task: its value, or its exception rethrown. Precondition: not
  /// awaited before, on a running loop.
  awaiter operator co_await() && noexcept { return awaiter(s_); }
  /// The same, for a handle named by an lvalue.
  awaiter operator co_await() & noexcept { return awaiter(s_); }

private:
  detail::join_state<T>* s_;
};

/// Starts `t` on the loop `on`, from any thread (it starts during a later turn of
/// `on`), under a stop token of its own (join_handle::request_stop, or stopping the
/// coroutine that awaits the handle). If `on` is destroyed before `t` finished, awaiting
/// the handle throws std::system_error (operation_aborted).
template <class T> join_handle<T> spawn_on(io_context& on, task<T> t) {
  auto* s = new detail::join_state<T>();
  s->body = std::move(t);
  s->loop = &on;
  on.post_remote(s->start);
  return join_handle<T>(s);
}

/// Several io_contexts on as many threads, optionally pinned to CPUs: a server on every
/// core. See the top of this header.
class SLUICE_API runtime {
public:
  /// How the loops are set up.
  struct options {
    unsigned threads = 0;     ///< loops (and threads); 0: one per CPU this process may use
    bool pin = false;         ///< pin loop i's thread to the i-th CPU this process may use
    io_context::options loop; ///< each loop's options (backend, receive buffers, ...)
  };

  /// `threads` loops (0: one per CPU), unpinned, with default options.
  explicit runtime(unsigned threads = 0);
  /// Loops as `o` says. Throws std::system_error if a loop cannot be set up.
  explicit runtime(const options& o);
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;
  /// Destroys every loop (after dropping the work still queued between them). Not
  /// while run() runs.
  ~runtime();

  /// How many loops.
  std::size_t size() const noexcept { return loops_.size(); }
  /// Loop `i` (0 <= i < size()).
  io_context& loop(std::size_t i) noexcept { return *loops_[i]; }

  /// Runs `fn(loop, index)` as a task on every loop, each loop on its own thread (loop
  /// 0 on the calling one), until every one of those tasks has finished (the loops are
  /// stopped then; work they still hold stays with them) or stop() is called. Rethrows
  /// the first exception a task threw. May be called again afterwards.
  void run(std::function<task<void>(io_context&, std::size_t)> fn);

  /// Any thread: stops every loop; run() returns.
  void stop() noexcept;

  /// The CPUs the calling thread may run on, in order (on the thread that builds the
  /// runtime: the ones `pin` uses).
  static std::vector<int> allowed_cpus();

private:
  options options_;
  std::vector<int> cpus_; // where the loops are pinned, read once at construction
  std::vector<std::unique_ptr<io_context>> loops_;
};

} // namespace sluice
