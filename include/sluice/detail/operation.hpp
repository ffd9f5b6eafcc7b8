// One I/O operation, as the runtime hands it to a backend. Backend-neutral: no OS
// types. It lives inside the awaiter, i.e. inside the awaiting coroutine's frame, so
// starting an operation allocates nothing.
//
// Its states (docs/runtime.md has the whole contract):
//
//   idle ──start──▶ queued ──(its turn)──▶ pending ──completion──▶ idle (resumed)
//     │  (behind earlier sends on the     │  (in the backend)  │
//     │   same stream: one sender at a    │                    └─deferred──▶ ready ──▶ idle
//     └──────────────time)────────────────┘                      (in the loop's ready list)
//
// Whatever the state, destroying the awaiter (its frame) returns the operation to
// idle first: a queued one leaves its queue, a pending one is cancelled and its
// completion reaped before the destructor returns, a ready one leaves the ready list.
#pragma once

#include <sluice/export.hpp>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace sluice {
class io_context;
}

namespace sluice::detail {

// A socket or file descriptor: an int fd on POSIX, a SOCKET on Windows.
using native_handle = std::intptr_t;
inline constexpr native_handle invalid_handle = -1;

enum class op_code : std::uint8_t {
  // No OS operation (the default): a wait in one of the runtime's own queues (a wait
  // list: an event, a channel, a scope's join; a lookup's answer). A backend refuses to
  // start one, and discarding one releases nothing: its res (0) is not a descriptor.
  none,
  accept,
  connect,
  recv,
  recv_lent, // into a buffer the backend lends from the context's pool
  send,
  sendmsg,
  shutdown,
  timeout,
  read,
  send_message, // sendmsg with ancillary data: operation::buffer is a message
  recv_message  // recvmsg with ancillary data: operation::buffer is a message
};

// For op_code::recv_lent, in operation::flags: receive one datagram with its sender.
// The lent buffer then holds a datagram_header, `datagram_name_room` bytes for the
// sender's address, and the datagram's bytes; op.res counts all three. io_uring's
// multishot recvmsg writes this layout itself (struct io_uring_recvmsg_out); the other
// backends write it after a recvmsg / WSARecvFrom into the same places.
inline constexpr int recv_datagram = 1;

struct datagram_header {
  std::uint32_t name_length;    // the sender's address: its length
  std::uint32_t control_length; // always 0 (no ancillary data is asked for)
  std::uint32_t whole_size;     // the datagram's size, where the OS tells it
  std::uint32_t flags;          // datagram_truncated
};
inline constexpr std::uint32_t datagram_truncated = 1; // it did not fit the buffer
inline constexpr std::size_t datagram_name_room = 128; // sizeof(sockaddr_storage)
inline constexpr std::size_t datagram_payload_offset = sizeof(datagram_header) + datagram_name_room;

// For op_code::accept, in operation::flags: take a connection only if one is already
// waiting in the listen backlog; complete at once with EAGAIN when none is. Asked only
// of a backend whose accept_sweep() says so (the acceptor's queue after a stop).
inline constexpr int accept_no_wait = 1;

// For op_code::shutdown, in operation::flags.
enum shutdown_how : int { shutdown_receive = 0, shutdown_send = 1, shutdown_both = 2 };

enum class op_state : std::uint8_t { idle, queued, pending, ready };

inline constexpr std::uint32_t no_deadline_slot = static_cast<std::uint32_t>(-1);

// Storage for a socket address (large enough for sockaddr_storage, and for the two
// sockaddr_un plus padding that Windows' AcceptEx writes for a Unix-domain socket).
struct address_storage {
  alignas(8) unsigned char bytes[256];
  std::uint32_t length = 0;
};

// A buffer of a gather send: the layout of a POSIX iovec.
struct io_buffer {
  void* data;
  std::size_t size;
};

// What op_code::send_message and recv_message carry (through operation::buffer): the
// parts of sendmsg/recvmsg that a plain send or recv has no room for.
struct message {
  io_buffer* parts = nullptr; // the data, gathered or scattered
  std::size_t count = 0;
  void* control = nullptr;        // ancillary data (SCM_RIGHTS, say)
  std::size_t control_length = 0; // send: its size; recv: its capacity, then what came
  // send: where to (nullptr: the connected peer); recv: filled with the sender (its
  // length set), when not nullptr.
  address_storage* peer = nullptr;
  bool datagram = false;          // recv: report a datagram's whole size (MSG_TRUNC)
  bool truncated = false;         // recv: the datagram did not fit (res: its whole size
                                  // where the OS tells it, else the buffer's)
  bool control_truncated = false; // recv: MSG_CTRUNC (ancillary data did not fit)
};

// A link in an io_context's list of work ready to run this turn. Unlinks in O(1)
// from wherever it is, so that a destroyed frame can withdraw itself.
struct ready_node {
  ready_node* prev = nullptr;
  ready_node* next = nullptr;
  void (*run)(ready_node&) noexcept = nullptr;

  bool linked() const noexcept { return next != nullptr; }
  void unlink() noexcept {
    if (next == nullptr) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

// A ready_node that resumes a coroutine.
struct resume_node : ready_node {
  std::coroutine_handle<> handle;
  resume_node() noexcept { run = &resume; }
  static void resume(ready_node& n) noexcept { static_cast<resume_node&>(n).handle.resume(); }
};

// Work handed to a loop from any thread (io_context::post_remote): a ready_node that
// also links into the loop's lock-free queue of remote work. When the loop takes it
// from that queue, it runs as ready work (its `run`) during that same turn.
struct remote_node : ready_node {
  std::atomic<remote_node*> remote_next{nullptr};
  // Called instead of `run` for a node still queued when its io_context is destroyed
  // (it never ran): releases what the node owns. Optional.
  void (*drop)(remote_node&) noexcept = nullptr;
};

class op_queue;
struct operation;

// A cleared error_code to copy from: making one (std::error_code{}) is a call into the
// C++ library for system_category(), and every awaiter's operation starts with one.
// (Only an operation built during static initialization, before this is, would copy
// a zeroed one; none is.)
inline const std::error_code no_error{};

// Takes a watched operation's deadline out of the loop's deadline heap (timer.cpp);
// unwatch_deadline() below calls it only for an operation that is in it.
SLUICE_API void unwatch_deadline_slot(operation& op) noexcept;

struct operation : ready_node { // the node: its deferred completion
  op_code code{};
  op_state state = op_state::idle;
  bool cancel_requested = false; // checked by every (re)submission
  bool cancel_posted = false;    // a cancel request from another thread is queued
  int flags = 0;
  native_handle handle = invalid_handle;
  void* buffer = nullptr; // sendmsg: an io_buffer array
  std::size_t length = 0; // sendmsg: its number of entries
  // connect: the target; accept: receives the peer; recv_lent of a datagram: room for
  // the sender where a backend needs its own (io_uring's single-shot recvmsg).
  address_storage* address = nullptr;
  std::int64_t duration_ns = 0; // timeout
  // Deadline: the steady_clock time (ns since its epoch) past which the operation is
  // cancelled and reported as timed_out; 0 for none. Kept across resubmissions.
  std::int64_t deadline = 0;
  std::uint32_t deadline_slot = no_deadline_slot; // its place in a backend's deadline heap
  std::uint32_t deadline_ms = 0;                  // the bound as given, for messages
  bool timed_out = false;                         // the deadline cancelled it (set by the backend)
  // recv_lent: the backend may keep receiving (io_uring multishot); each completion but
  // the last says `more`, and the operation stays pending until the last.
  bool multishot = false;
  bool more = false;
  // Not work of the loop by itself (a stream's receiver, armed whether or not anyone
  // reads): run() returns when only background operations are in flight.
  bool background = false;
  std::uint32_t lent_id = 0; // recv_lent: the lent buffer (op.buffer: its bytes)

  // Backend-private: a kernel timespec or msghdr (uring), a pooled timer and a slot
  // (asio), an OVERLAPPED with its WSABUF (iocp).
  // (Not zeroed here: a backend constructs its data in it when the operation starts.)
  alignas(8) unsigned char scratch[80];

  // Filled in by the backend before the operation completes.
  std::int64_t res = 0; // bytes transferred, or the accepted handle
  std::error_code error = no_error;

  std::coroutine_handle<> waiter;
  // When set, called on completion instead of resuming `waiter` (loop thread). It may
  // submit the operation again (send_all does, after a partial send) or resume.
  void (*on_complete)(operation&) = nullptr;
  void* owner = nullptr; // for on_complete: the awaiter that started the operation
  io_context* ctx = nullptr;

  // The io_context's list of operations in flight (state pending).
  operation* inflight_next = nullptr;
  operation** inflight_pprev = nullptr;
  // The sender queue this operation waits in or holds (see op_queue).
  op_queue* queue = nullptr;
  operation* queue_next = nullptr;
};

// No error: op.error cleared only if one is there (on the usual path there is nothing
// to clear).
inline void clear_error(operation& op) noexcept {
  if (op.error) op.error = no_error;
}

// Takes a queued operation's deadline out of the loop's deadline heap, if it has one
// there (the test inline: most operations have none).
inline void unwatch_deadline(operation& op) noexcept {
  if (op.deadline_slot != no_deadline_slot) unwatch_deadline_slot(op);
}

// One sender at a time: the operations that write to one stream leave in the order
// they were started and never interleave. The operation at the front is `active` (in
// the backend, or finished and not yet resumed); the others wait, state queued. The
// single-sender path costs a pointer test; no lock (a stream belongs to one loop).
class op_queue {
public:
  op_queue() = default;
  op_queue(const op_queue&) = delete;
  op_queue& operator=(const op_queue&) = delete;

  bool idle() const noexcept { return active_ == nullptr; }

  // True if `op` may start now (it is then the active one); otherwise it was queued.
  inline bool enter(operation& op) noexcept;
  // Appends `op` as a waiter that never becomes active (a wait_list).
  inline void wait(operation& op) noexcept;
  // `op` is done with the queue (finished, or abandoned); returns the next operation
  // to start, now active, or nullptr.
  inline operation* leave(operation& op) noexcept;
  // Unlinks a waiting operation (cancelled, or its frame destroyed).
  inline void remove(operation& op) noexcept;
  // Unlinks the first waiting operation and returns it (there must be one): remove()
  // without the search, for the one that is served next.
  inline operation& remove_first() noexcept;
  // (The five are defined at the end of io_context.hpp: they count waiting operations
  // as work of their loop, which needs io_context complete.)

  bool has_waiting() const noexcept { return head_ != nullptr; }

  // The first waiting operation, or nullptr (to cancel them all on close()).

  operation* first_waiting() const noexcept { return head_; }

private:
  // An operation just unlinked from the waiting list: idle, in no queue, no deadline.
  static inline void detach(operation& op) noexcept;

  operation* active_ = nullptr;
  operation* head_ = nullptr;
  operation** tail_ = &head_;
};

} // namespace sluice::detail
