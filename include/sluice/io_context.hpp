// io_context: one event loop, one backend, one thread.
//
// The backend is chosen at construction: io_uring when the kernel lets the ring be
// set up, otherwise standalone Asio (when built in); SLUICE_BACKEND=uring|asio|iocp
// forces one, and a forced backend that cannot start throws std::system_error
// (errc::backend_unavailable / unsupported_backend) — never a silent fallback.
//
// Threading: run() drives the loop on the calling thread; every socket, timer and
// task of this context must be used from that thread. stop() and post_remote() are
// the only members safe to call from other threads (or from a signal handler: no,
// use sluice::signal_set for signals).
#pragma once

#include <coroutine>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string_view>

namespace sluice {

namespace detail {
class backend;
struct operation;
struct remote_queue;

// Links a spawned task's frame into its io_context, which destroys the frames still
// alive when it is destroyed itself.
struct spawn_link {
  spawn_link* prev = nullptr;
  spawn_link* next = nullptr;
  std::coroutine_handle<> frame;
};
} // namespace detail

class io_context {
public:
  io_context();
  explicit io_context(std::string_view backend_name);
  ~io_context();
  io_context(const io_context&) = delete;
  io_context& operator=(const io_context&) = delete;

  // "uring", "asio" or "iocp".
  std::string_view backend_name() const noexcept;

  // Runs until stop() is called or nothing is left to do: no spawned task alive, no
  // operation in flight, no coroutine ready to resume.
  void run();
  // Runs until `done` becomes true (or stop()).
  void run_until(const bool& done);
  // Thread-safe; run() returns after the current loop turn.
  void stop() noexcept;
  bool stopped() const noexcept;
  // Clears a previous stop() so that run() can be called again.
  void restart() noexcept;

  // Queues a coroutine to be resumed by this loop. Loop thread only.
  void post(std::coroutine_handle<> h);
  // Thread-safe: runs `fn` on the loop thread during a later turn.
  void post_remote(std::function<void()> fn);

  // The context whose run() is executing on this thread, or nullptr.
  static io_context* current() noexcept;

  // Spawned tasks alive (see spawn()).
  std::size_t spawned() const noexcept { return spawned_; }

  // --- runtime plumbing, not for users ---
  detail::backend& backend() noexcept { return *backend_; }
  std::uint64_t id() const noexcept { return id_; }
  static bool alive(std::uint64_t id) noexcept;
  void on_spawn(detail::spawn_link& l) noexcept;
  void on_spawn_done(detail::spawn_link& l) noexcept;
  std::size_t in_flight() const noexcept { return in_flight_; }
  void submit(detail::operation& op);
  void complete(detail::operation& op) noexcept;
  void cancel(detail::operation& op) noexcept;        // any thread
  void retire_cancel(detail::operation& op) noexcept; // after a cross-thread cancel
  void run_remote() noexcept;                         // called by the backend on wake

private:
  bool has_work() const noexcept;
  void turn(const bool* done);

  std::unique_ptr<detail::backend> backend_;
  std::unique_ptr<detail::remote_queue> remote_;
  std::deque<std::coroutine_handle<>> ready_;
  std::uint64_t id_;
  std::size_t in_flight_ = 0;
  std::size_t spawned_ = 0;
  detail::spawn_link* spawn_head_ = nullptr;
  bool shutting_down_ = false;
};

} // namespace sluice
