// One I/O operation, as the runtime hands it to a backend. Backend-neutral: no OS
// types. It lives inside the awaiter, i.e. inside the awaiting coroutine's frame, so
// starting an operation allocates nothing.
#pragma once

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

enum class op_code : std::uint8_t { accept, connect, recv, send, shutdown, timeout, read };

// For op_code::shutdown, in operation::flags.
enum shutdown_how : int { shutdown_receive = 0, shutdown_send = 1, shutdown_both = 2 };

// Storage for a socket address (large enough for sockaddr_storage).
struct address_storage {
  alignas(8) unsigned char bytes[128];
  std::uint32_t length = 0;
};

struct operation {
  op_code code{};
  native_handle handle = invalid_handle;
  void* buffer = nullptr;
  std::size_t length = 0;
  int flags = 0;
  address_storage* address = nullptr; // connect: target; accept: receives the peer
  std::int64_t duration_ns = 0;       // timeout
  // Backend-private: a kernel timespec (uring), a pooled timer (asio), an OVERLAPPED
  // with its WSABUF (iocp).
  alignas(8) unsigned char scratch[80]{};

  // Filled in by the backend before it resumes `waiter`.
  std::int64_t res = 0; // bytes transferred, or the accepted handle
  std::error_code error;

  std::coroutine_handle<> waiter;
  // When set, called on completion instead of resuming `waiter` (loop thread). It may
  // submit the operation again (send_all does, after a partial send) or resume.
  void (*on_complete)(operation&) = nullptr;
  void* owner = nullptr; // for on_complete: the awaiter that started the operation
  io_context* ctx = nullptr;
  bool pending = false;       // submitted and not yet completed
  bool cancel_posted = false; // a cancel request from another thread is queued
};

} // namespace sluice::detail
