// The receive side of a stream that receives into lent buffers (recv_some).
//
// One recv_lent operation, which the backend may complete many times (a multishot recv
// on a provided-buffer ring with io_uring), and what it delivered that nobody has taken
// yet. Pooled by the io_context: a stream holds one while it receives this way, and an
// idle one holds no buffer — only an operation armed in the kernel.
//
//  - Bounded: past `high_water` undelivered completions, a multishot is cancelled (the
//    kernel's socket buffer holds the rest, TCP pushes back); it is re-armed when the
//    reader has caught up.
//  - ENOBUFS (the pool had no buffer) ends a multishot but is not end of stream: the
//    receiver parks until a buffer comes back (io_context::buffers_came_back), then
//    re-arms. Nothing is lost.
//  - close() cancels it; a receiver whose operation is still in the backend is
//    returned to the pool by its last completion, never freed under it.
//  - A watcher (watch()) is how a connection waits with no coroutine at all (a
//    server's parked idle connection): the first completion for a reader runs it,
//    once.
#pragma once

#include <sluice/export.hpp>

#include <cstdint>
#include <memory>
#include <sluice/detail/operation.hpp>
#include <sluice/io_context.hpp> // op_queue's members
#include <sluice/lent_buffer.hpp>
#include <system_error>
#include <vector>

namespace sluice::detail {

class SLUICE_API receiver {
public:
  static constexpr std::size_t high_water = 2;

  explicit receiver(io_context& io) noexcept;
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;

  // Begins receiving on `h` (a fresh receiver from the pool): bytes of a stream, or
  // with `datagrams` one datagram per completion, with its sender (recv_datagram).
  void open(native_handle h, bool datagrams = false);

  // What the reader gets: a completion queued, if any.
  bool ready() const noexcept { return count_ != 0; }
  // Moves the first queued completion into `into` (res, error, lent_id, buffer).
  void take(operation& into) noexcept;
  // Puts the unread rest of a taken completion back at the front (a reader that wanted
  // fewer bytes than the buffer held).
  void put_back(const operation& from) noexcept;

  // Queues `waiter` (the reader's operation) until a completion comes; arms the
  // receive if it is not running. Precondition: !ready(). (Inline: a multishot receive
  // is usually running already, and the reader only queues.)
  void wait(operation& waiter) noexcept {
    waiters_.wait(waiter);
    if (op_.state == op_state::idle) arm();
  }

  // Stops receiving: pending completions' buffers go back; a waiting reader ends with
  // operation_aborted; the receiver goes back to the pool now, or after its operation's
  // last completion.
  void close() noexcept;

  // A buffer came back while this receiver was parked for lack of one.
  void resume_after_starving() noexcept;

  // Runs `w` (once) when a completion is there for a reader — bytes, the end of the
  // stream or an error — and arms the receive. `w.run` is called from inside that
  // completion, so it must not receive, close or otherwise touch this receiver beyond
  // unwatch(): it posts the work it wants done. If a completion is there already, `w`
  // is posted to the loop's ready list instead. One watcher at a time; no reader may
  // wait meanwhile. The watcher must stay alive until it has run or unwatch() was
  // called.
  void watch(ready_node& w) noexcept;
  // Forgets the watcher (it is not posted any more; one already posted stays posted).
  void unwatch() noexcept { watcher_ = nullptr; }

  receiver* next_starved = nullptr;

private:
  struct item {
    std::int64_t res;
    std::error_code error;
    std::uint32_t lent_id;
    void* data;
  };
  static void on_complete(operation& op);
  [[gnu::noinline]] void complete_rest(operation& op) noexcept;
  void arm() noexcept;
  void push(const item& it);
  void deliver() noexcept;
  // A completion straight to a waiting reader when nothing is queued before it.
  [[gnu::always_inline]] inline bool hand_over(const operation& from) noexcept;
  static void give(operation& into, const item& it) noexcept;

  void release_items() noexcept;

  void notify_watcher() noexcept;

  operation op_;
  // A datagram receiver's room for the sender, where the backend needs it (made once,
  // kept while the receiver is pooled: the backend may write it until the last completion).
  std::unique_ptr<address_storage> sender_;
  op_queue waiters_;
  io_context* io_;
  ready_node* watcher_ = nullptr;
  native_handle handle_ = invalid_handle;
  item inline_[high_water + 2];
  std::vector<item> overflow_; // completions already in flight past the inline slots
  // The inline ring: its first item and how many. Items go to overflow_ only while the
  // ring is full, and the ring is refilled from it as items leave, so count_ == 0 means
  // nothing is queued anywhere (ready() and the hand-over test count_ alone).
  std::uint32_t head_ = 0, count_ = 0;
  bool closed_ = true;
  bool parked_ = false; // starved of buffers: waits for one to come back
};

} // namespace sluice::detail
