// The accepting side of a tcp::acceptor: one accept operation, which the backend may
// complete many times (a multishot accept with io_uring), and the connections it
// accepted that no accept() has taken yet. Pooled by the io_context, like receivers
// (receiver.hpp): an acceptor takes one on its first accept().
//
//  - Bounded: past `limit` connections nobody has taken, a multishot accept is
//    cancelled and not re-armed; the kernel's listen backlog holds the next ones. It is
//    re-armed when an accept() finds the queue empty.
//  - A single-shot accept (Asio, IOCP, io_uring without multishot) is armed only while
//    an accept() waits: nothing is accepted ahead there.
//  - An error (EMFILE, ...) ends a multishot; it goes to the next accept(), and the
//    operation is re-armed only by an accept() that finds the queue empty.
//  - stop() stops taking connections from the kernel but keeps what it took: the
//    operation is cancelled and never re-armed, the connections it accepted (ahead, or
//    as the cancel raced) still go to accept(), and once none is left every accept()
//    ends with operation_aborted. The socket keeps listening for whoever else holds it.
//    Where the backend says a cancelled accept may have spent wake-ups meant for the
//    socket's other holders (io_uring), the queue then also takes, without waiting, the
//    connections left in the backlog (at most `limit`): they would otherwise wait for a
//    wake-up that already came.
//  - close() closes the queued connections, aborts the waiting accept()s and cancels the
//    operation; a queue whose operation is still in the backend goes back to the pool
//    with its last completion (which closes what it carries), never freed under it.
// docs/runtime.md ("Accepting") has the whole story.
#pragma once

#include <sluice/export.hpp>

#include <cstdint>
#include <sluice/detail/operation.hpp>
#include <sluice/net/endpoint.hpp>
#include <system_error>
#include <vector>

namespace sluice::detail {

class SLUICE_API accept_queue {
public:
  explicit accept_queue(io_context& io) noexcept;
  accept_queue(const accept_queue&) = delete;
  accept_queue& operator=(const accept_queue&) = delete;
  ~accept_queue(); // closes the connections still queued

  // Begins accepting on the listening socket `h`, keeping at most `limit` connections
  // ahead of accept().
  void open(native_handle h, std::uint32_t limit) noexcept;

  bool ready() const noexcept { return count_ != 0; }
  // Moves the oldest result into `into`: res (the handle) and error; the peer's address
  // into *into.address.
  void take(operation& into) noexcept;
  // An accepted connection goes back to the front (its accept() was destroyed before
  // it could take it).
  void put_back(native_handle h, const address_storage& peer);
  // Queues `waiter` until a connection comes; arms the accept. Precondition: !ready().
  void wait(operation& waiter) noexcept;
  void stop() noexcept;
  void close() noexcept;

  // Connections accepted and not yet taken (tests, diagnostics).
  std::size_t queued() const noexcept { return count_; }

private:
  struct item {
    native_handle handle;
    std::error_code error;
    endpoint peer;
  };
  static void on_complete(operation& op);
  void arm() noexcept;
  void start(int flags) noexcept; // submits op_ afresh
  void sweep() noexcept;          // one accept that does not wait (accept_no_wait)
  void deliver();                 // queued connections to the waiting accept()s
  void push(const item& it);
  item pop() noexcept;
  static void give(operation& into, const item& it) noexcept;
  void close_items() noexcept;
  void abort_waiters() noexcept;

  operation op_;
  op_queue waiters_;
  io_context* io_;
  native_handle handle_ = invalid_handle;
  address_storage peer_;   // a single-shot accept writes the peer here
  std::vector<item> ring_; // a circular buffer; grows past `limit_` only by what was in flight
  std::uint32_t head_ = 0, count_ = 0;
  std::uint32_t limit_ = 0;
  bool closed_ = true;
  bool stopped_ = false;    // stop(): nothing more is taken from the kernel
  std::uint32_t swept_ = 0; // accepts of this sweep of the backlog (after stop())
};

} // namespace sluice::detail
