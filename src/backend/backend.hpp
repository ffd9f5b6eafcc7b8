// The backend contract — the one place where sluice branches on the platform.
// docs/runtime.md explains it with the operation states; this is the checklist.
//
// A backend turns detail::operation records into OS work and reports completions. It
// must provide, for sockets created by the socket_ops below:
//
//   submit(op)    start op (accept, connect, recv, recv_lent, send, sendmsg, shutdown,
//                 timeout, read). Called by io_context::submit only, which has already checked
//                 op.cancel_requested. The completion is delivered later, from poll()
//                 on the loop thread, by calling io_context::complete(op) (or
//                 defer_completion(op)) after filling op.res / op.error. Never
//                 completes inline inside submit(). An internal re-arm (a readiness
//                 wait after EAGAIN, a retry) checks op.cancel_requested first and
//                 completes with operation_aborted instead.
//                 With op.deadline set, the backend cancels op when it passes and sets
//                 op.timed_out (io_uring: a linked timeout; others: a deadline heap).
//   accept        completes with the accepted handle in op.res and the peer in
//                 *op.address — or, when the backend made it a multishot (it sets
//                 op.multishot; io_uring), once per connection with op.more set on all
//                 but the last, and no peer address (the acceptor's queue asks).
//                 With op.flags accept_no_wait (only where accept_sweep() is true):
//                 single-shot, takes a connection already waiting or completes with
//                 EAGAIN, never waits.

//   recv_lent     receives into a buffer the backend chooses from its pool (buffers()):
//                 completes with op.res bytes (0: end of stream), op.lent_id and
//                 op.buffer naming the lent buffer, which the reader gives back. An
//                 operation may complete many times (op.multishot, io_uring): every
//                 completion but the last has op.more set and leaves op pending; on_complete
//                 sees each. Past the pool's last buffer (after growing it to its cap) it
//                 completes with ENOBUFS, which is not the end of the stream. An idle
//                 receive holds no buffer (io_uring: a buffer ring; Asio: read on
//                 readiness; IOCP: a zero-byte WSARecv first).
//                 With op.flags recv_datagram (UDP), each completion is one datagram in
//                 the layout of datagram_header (operation.hpp): io_uring's multishot
//                 recvmsg writes it; the others recvmsg / WSARecvFrom into it (IOCP
//                 holds the buffer while it waits: a zero-byte receive would eat the
//                 datagram). Its res is never 0: an empty datagram still has a header.
//   cancel(op)    ask for op to complete early with operation_aborted (ECANCELED or
//                 its platform twin). Best effort: op may still complete normally —
//                 and then its result is delivered, so nothing received is lost.
//   cancel_all(h) the same for every operation on handle h (close() calls it just
//                 before closing h, so nothing may still be queued for h after it).
//   abandon(op)   op is pending and its awaiter is being destroyed (loop thread).
//                 Before returning, make sure nothing — the kernel, a handler, an
//                 OVERLAPPED — refers to op or its buffer any more: cancel it and reap
//                 its completion, waiting if need be. Completions of other operations
//                 seen meanwhile are handed to io_context::defer_completion, never
//                 resumed from here. Do not call complete(op). Returns how far op
//                 had got; when it had completed, its result (bytes received, an
//                 accepted handle) is left in op.res / op.error for the awaiter to hand
//                 to its socket, or to discard().
//   accept_sweep() true when a cancelled accept may have taken the kernel's wake-up
//                 for a connection and left it in the backlog (io_uring: an armed
//                 accept is an exclusive waiter on the socket, and one being cancelled
//                 still takes wake-ups until its cancel runs). The acceptor's queue
//                 then takes what waits with accept_no_wait once its accept ended on
//                 stop(), so that no connection waits for a wake-up already spent.
//   discard(op)   op completed but nobody will take the result (the context is
//                 shutting down, or no socket can keep it): close the accepted handle
//                 it carries. It is called for any operation an awaiter withdraws,
//                 including waits the backend never saw (op_code::none, a wait in a
//                 runtime queue): those release nothing (their res is not a handle).
//                 (io_context::submit never hands a backend an op_code::none: it
//                 completes one with invalid_argument itself.)
//   poll(block, wake_by) push queued submissions to the OS, wait for at least one
//                 completion if `block` (but not past wake_by, a steady_clock time in ns,
//                 when it is not 0: the loop's own earliest deadline), dispatch at most
//                 io_context::turn_budget completions (io_context::consume_budget()),
//                 leaving the rest for the next turn. Loop thread only.
//   buffers()     the context's receive buffer pool.
//   wake()        any thread: make a blocking poll() return soon; the backend then
//                 calls io_context::run_remote() on the loop thread.
//   wake_other(b) this loop's thread: wake another loop's backend `b` through this
//                 backend's own submissions (io_uring MSG_RING), or return false.
//   shutdown()    cancel every operation in flight and reap their completions (the
//                 io_context does not resume their coroutines then, and discards their
//                 results), so that no operation still refers to memory when its
//                 coroutine frame is freed. Bounded in time: milliseconds.
//                 io_context::first_in_flight() lists the operations in flight only
//                 while the backend keeps that list (io_context::keep_in_flight_list,
//                 on by default); a backend that turns it off finds them by itself
//                 (io_uring: in its SQ, then IORING_ASYNC_CANCEL_ANY; Asio: its handlers).
//
// Completions are matched to operations by identity (the operation's address, or a
// slot with a generation), never by descriptor number, so a completion for a closed
// descriptor whose number was reused cannot resume the new owner's operation.
//
// Which backends exist is decided here and in CMake, nowhere else:
//   SLUICE_HAVE_URING  Linux io_uring (src/backend/uring/)
//   SLUICE_HAVE_ASIO   standalone Asio reactor (src/backend/asio/)
//   SLUICE_HAVE_IOCP   Windows completion ports (src/backend/iocp/)
#pragma once

#include <memory>
#include <sluice/detail/operation.hpp>
#include <sluice/error.hpp>
#include <sluice/lent_buffer.hpp>

#include "recv_pool.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace sluice::detail {

enum class abandoned_at : std::uint8_t {
  not_submitted, // the OS never saw it
  in_flight,     // the OS had it; it was cancelled
  completed,     // the OS had completed it; nobody had seen the result
};

class backend {
public:
  virtual ~backend() = default;
  virtual std::string_view name() const noexcept = 0;
  // The name and the fallbacks in use, e.g. "uring (shutdown: shutdown(2))".
  virtual std::string description() const { return std::string(name()); }
  virtual void submit(operation& op) = 0;
  virtual void cancel(operation& op) noexcept = 0;
  virtual void cancel_all(native_handle h) noexcept = 0;
  virtual abandoned_at abandon(operation& op) noexcept = 0;
  // The same on every backend (backend.cpp): closes an accepted socket, gives a lent
  // buffer back, closes descriptors received as ancillary data.
  void discard(operation& op) noexcept;
  virtual bool accept_sweep() const noexcept { return false; }
  virtual void poll(bool block, std::int64_t wake_by) = 0;
  virtual recv_pool& buffers() noexcept = 0;

  virtual void wake() noexcept = 0;
  // Called on this backend's loop thread: wakes `target` (another loop's backend)
  // through this backend's own submissions, if it can (io_uring's MSG_RING, submitted
  // with this loop's next batch: no syscall of its own). False: use target.wake().
  virtual bool wake_other(backend& target) noexcept {
    (void)target;
    return false;
  }
  virtual void shutdown() noexcept = 0;
};

// The CPUs the calling thread may run on (its affinity mask), in order; empty if unknown.
std::vector<int> allowed_cpus();
// Pins the calling thread to `cpu` (best effort: a CPU it may not use is ignored).
void pin_thread(int cpu) noexcept;

// Creates the backend named `name` ("" = the best available one). Fails with
// unsupported_backend for a name not built in, backend_unavailable when it cannot
// start here (the context says why).
result<std::unique_ptr<backend>> make_backend(io_context& io, std::string_view name);

} // namespace sluice::detail
