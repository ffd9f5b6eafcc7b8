// Unix-domain stream sockets (AF_UNIX): sluice::local. docs/local_sockets.md has the
// design.
//
// A local connection is a tcp::stream and a local listener a tcp::acceptor over an
// AF_UNIX socket: the same operations, the same recv_disconnect contract, the same
// lifetimes. What only Unix-domain sockets have lives here: binding a path (removing
// a stale socket file), abstract names, connected pairs, and passing descriptors
// (SCM_RIGHTS) from one process to another.
#pragma once

#include <sluice/export.hpp>

#include <cstddef>
#include <sluice/detail/io_awaiter.hpp>
#include <sluice/net/endpoint.hpp>
#include <sluice/net/tcp.hpp>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::local {

using stream = tcp::stream;                 ///< a Unix-domain stream connection
using acceptor = tcp::acceptor;             ///< a listening Unix-domain socket
using listen_options = tcp::listen_options; ///< backlog, remove_stale_socket

/// A descriptor: an int on POSIX (a SOCKET on Windows, which cannot pass them).
using native_handle_type = sluice::detail::native_handle;

/// The most descriptors one send_fds() carries, and one recv_fds() takes.
inline constexpr std::size_t max_fds = 64;

/// Listens on `path` (a file system path, or "@name" for an abstract name on Linux).
/// A stale socket file is removed first (options.remove_stale_socket). The file stays
/// when the acceptor closes, so that a process it was handed to keeps its path;
/// remove it with std::filesystem::remove when the service is gone for good. Errors
/// name the path: too long, in use by a live server, not a socket, permission denied.
SLUICE_API result<acceptor> bind(io_context& io, std::string_view path,
                                 const listen_options& options = {});
/// Connects to the Unix-domain socket at `path`. Errors name the path (no such file:
/// errc is std::errc::no_such_file_or_directory; nobody accepting: connection_refused).
SLUICE_API task<result<stream>> connect(io_context& io, std::string path);
/// Two connected streams (socketpair): for a parent and the child it starts, or for
/// tests. Not on Windows (std::errc::operation_not_supported).
SLUICE_API result<std::pair<stream, stream>> pair(io_context& io);

/// A descriptor received with recv_fds(): owned, closed when destroyed unless
/// released. Move-only.
class SLUICE_API unique_fd {
public:
  unique_fd() = default; ///< owns nothing
  /// Owns `h`.
  explicit unique_fd(native_handle_type h) noexcept : h_(h) {}
  /// Takes over `o`'s descriptor.
  unique_fd(unique_fd&& o) noexcept : h_(std::exchange(o.h_, sluice::detail::invalid_handle)) {}
  /// Closes its own descriptor, then takes over `o`'s.
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.h_, sluice::detail::invalid_handle));
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  native_handle_type get() const noexcept { return h_; } ///< the descriptor, still owned
  /// Gives the descriptor up (to tcp::stream::adopt, say): the caller closes it.
  native_handle_type release() noexcept {
    return std::exchange(h_, sluice::detail::invalid_handle);
  }
  /// Closes the descriptor it owns, then owns `h`.
  void reset(native_handle_type h = sluice::detail::invalid_handle) noexcept;
  /// True while it owns a descriptor.
  explicit operator bool() const noexcept { return h_ != sluice::detail::invalid_handle; }

private:
  native_handle_type h_ = sluice::detail::invalid_handle;
};

/// What recv_fds() received.
struct received {
  std::size_t bytes = 0;      ///< bytes written to the buffer; 0: the peer closed its side
  std::vector<unique_fd> fds; ///< the descriptors that came with them (close-on-exec)
  bool fds_truncated = false; ///< more descriptors came than max_fds: the kernel closed the rest
};

namespace detail {
using sluice::detail::io_awaiter;
using sluice::detail::stop_of;

// Control-message room for max_fds descriptors (CMSG_SPACE on Linux: a 16-byte header
// and 4 bytes each; local.cpp checks it).
inline constexpr std::size_t control_room = 16 + max_fds * 4;

/// send_fds(): all of `data`, with the descriptors attached to its first byte. Takes
/// its turn in the stream's sender queue like every send.
class [[nodiscard]] SLUICE_API send_fds_awaiter : public io_awaiter {
public:
  send_fds_awaiter(tcp::stream& s, std::span<const std::byte> data,
                   std::span<const native_handle_type> fds);
  send_fds_awaiter(send_fds_awaiter&& o) noexcept;
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? start(h, stop_of(h), queue()) : settle_now(h);
  }
  /// data.size(), or the first error (naming the peer and the limit broken).
  result<std::size_t> await_resume() { return end(); }

private:
  static void on_complete(sluice::detail::operation& op);
  bool begin();
  sluice::detail::op_queue* queue() noexcept;
  result<std::size_t> end();
  tcp::stream* s_;
  std::span<const std::byte> data_;
  std::span<const native_handle_type> fds_;
  std::size_t sent_ = 0;
  const char* refused_ = nullptr; ///< why begin() refused, for the message
  sluice::detail::io_buffer part_{};
  sluice::detail::message msg_{};
  alignas(8) unsigned char control_[control_room];
};

/// recv_fds(): the next bytes and the descriptors sent with them.
class [[nodiscard]] SLUICE_API recv_fds_awaiter : public io_awaiter {
public:
  recv_fds_awaiter(tcp::stream& s, std::span<std::byte> buf);
  recv_fds_awaiter(recv_fds_awaiter&& o) noexcept;
  /// Destroyed after it received: the bytes stay with the stream for its next receive;
  /// the descriptors, which nobody can take any more, are closed (none leaks).
  ~recv_fds_awaiter();
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? start(h, stop_of(h)) : settle_now(h);
  }
  /// The bytes and descriptors (bytes 0: end of stream), or an error.
  result<received> await_resume() { return end(); }

private:
  bool begin();
  result<received> end();
  tcp::stream* s_;
  std::span<std::byte> buf_;
  bool began_ = false;
  const char* refused_ = nullptr;
  sluice::detail::io_buffer part_{};
  sluice::detail::message msg_{};
  alignas(8) unsigned char control_[control_room];
};

} // namespace detail

/// Sends all of `data` (at least one byte: a stream carries descriptors with a byte)
/// with the descriptors `fds` (at most max_fds). The receiver gets duplicates; the
/// caller's stay open. Fails with std::errc::operation_not_supported on Windows.
inline detail::send_fds_awaiter send_fds(tcp::stream& s, std::span<const std::byte> data,
                                         std::span<const native_handle_type> fds) {
  return {s, data, fds};
}
/// Receives bytes into `buf` and the descriptors that came with them. Receive
/// anything that may carry descriptors with recv_fds: a plain recv() (or recv_some())
/// over those bytes drops them. Not on a stream that recv_some() or watch_receive()
/// has switched to lent buffers (it fails, saying so).
inline detail::recv_fds_awaiter recv_fds(tcp::stream& s, std::span<std::byte> buf) {
  return {s, buf};
}

} // namespace sluice::local
