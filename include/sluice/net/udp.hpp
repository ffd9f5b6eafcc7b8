// UDP: udp::socket. docs/udp.md has the design.
//
// Every operation is an awaitable yielding result<...>, cancellable through the
// awaiting task's stop token and boundable with with_timeout(), like TCP's. A datagram
// is never cut silently: one too big for the buffer fails the receive with
// errc::message_too_large, naming its size and sender (the buffer holds its start).
//
// Preconditions (as in Asio): a socket outlives the operations started on it, is not
// moved while they run, and is used only from the thread that runs its io_context.
#pragma once

#include <sluice/export.hpp>

#include <cstddef>
#include <sluice/detail/io_awaiter.hpp>
#include <sluice/detail/receiver.hpp>
#include <sluice/lent_buffer.hpp>
#include <sluice/net/endpoint.hpp>
#include <span>
#include <string_view>
#include <vector>

namespace sluice::udp {

class socket;

/// What recv_from() received.
struct datagram {
  std::size_t size = 0; ///< bytes in the buffer (0: an empty datagram, not an end)
  endpoint from;        ///< the sender
};

/// The room each pool buffer gives up to a lent datagram's header and sender: a pool
/// of recv_buffer_size bytes lends datagrams of up to recv_buffer_size minus this.
inline constexpr std::size_t lent_datagram_overhead = sluice::detail::datagram_payload_offset;

/// What recv_some_from() received: one datagram in a buffer lent by the io_context's
/// receive pool (give it back soon: destroy it, or release()).
struct lent_datagram {
  lent_buffer data; ///< the datagram's bytes (empty: an empty datagram, not an end)
  endpoint from;    ///< the sender
};

/// How socket::bind() binds.
struct bind_options {
  /// SO_REUSEADDR (several sockets on one multicast port, say).
  bool reuse_address = false;
};

namespace detail {
using sluice::detail::io_awaiter;
using sluice::detail::stop_of;

/// recv_from() and recv(): one datagram.
class [[nodiscard]] SLUICE_API receive_awaiter : public io_awaiter {
public:
  receive_awaiter(socket& s, std::span<std::byte> buf, bool connected);
  receive_awaiter(receive_awaiter&& o) noexcept;
  /// Destroyed after it received, unresumed: the socket keeps the datagram for its next
  /// receive.
  ~receive_awaiter();
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    if (!begin()) return settle_now(h);
    return via_receiver_ ? wait_receiver(h, stop_of(h)) : start(h, stop_of(h));
  }

protected:
  result<datagram> take();

private:
  bool begin();
  bool wait_receiver(std::coroutine_handle<> h, const sluice::detail::stop_ref& token);
  void copy_out() noexcept; ///< a datagram the receiver lent into the caller's buffer
  socket* s_;
  std::span<std::byte> buf_;
  bool connected_;
  bool began_ = false;
  bool via_receiver_ = false; ///< the socket receives into lent buffers: take from them
  bool lent_ = false;         ///< op_ holds a lent datagram not copied out yet
  sluice::detail::io_buffer part_{};
  sluice::detail::message msg_{};
  sluice::detail::address_storage peer_;
};

/// recv_from(): the datagram's size and sender.
class [[nodiscard]] SLUICE_API recv_from_awaiter : public receive_awaiter {
public:
  recv_from_awaiter(socket& s, std::span<std::byte> buf) : receive_awaiter(s, buf, false) {}
  /// The datagram, or an error (message_too_large: it did not fit).
  result<datagram> await_resume() { return take(); }
};

/// recv() on a connected socket: the datagram's size.
class [[nodiscard]] SLUICE_API recv_awaiter : public receive_awaiter {
public:
  recv_awaiter(socket& s, std::span<std::byte> buf) : receive_awaiter(s, buf, true) {}
  /// Bytes of the datagram (0: an empty one), or an error.
  result<std::size_t> await_resume();
};

/// recv_some_from(): one datagram in a buffer lent by the io_context's pool.
class [[nodiscard]] SLUICE_API recv_some_from_awaiter : public io_awaiter {
public:
  explicit recv_some_from_awaiter(socket& s);
  recv_some_from_awaiter(recv_some_from_awaiter&&) = default;
  /// Destroyed after it received, unresumed: the datagram goes back to the socket's
  /// receiver, first in line.
  ~recv_some_from_awaiter();
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? wait_receiver(h, stop_of(h)) : settle_now(h);
  }
  /// The datagram and its sender, or an error (message_too_large: it did not fit a
  /// pool buffer).
  result<lent_datagram> await_resume();

private:
  bool begin();
  bool wait_receiver(std::coroutine_handle<> h, const sluice::detail::stop_ref& token);
  socket* s_;
  bool began_ = false;
  lent_buffer kept_; ///< a datagram a destroyed receive had taken, lent from the heap
  endpoint kept_from_;
  std::size_t kept_whole_ = 0; ///< its size, where the OS told it
  bool kept_cut_ = false;      ///< it had not fit the destroyed receive's buffer
  bool from_kept_ = false;     ///< the datagram came from the socket's kept ones
};

/// send_to() and send(): one datagram, whole or not at all.
class [[nodiscard]] SLUICE_API send_awaiter : public io_awaiter {
public:
  /// `to` nullptr: the connected peer.
  send_awaiter(socket& s, std::span<const std::byte> data, const endpoint* to);
  send_awaiter(send_awaiter&& o) noexcept;
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? start(h, stop_of(h)) : settle_now(h);
  }
  /// data.size(), or the error (naming the destination and the size).
  result<std::size_t> await_resume();

private:
  bool begin();
  socket* s_;
  std::span<const std::byte> data_;
  endpoint to_;
  bool has_to_;
  sluice::detail::io_buffer part_{};
  sluice::detail::message msg_{};
  sluice::detail::address_storage addr_;
};

} // namespace detail

/// A UDP socket: datagrams to and from any peer, or (after connect()) one peer.
/// Move-only; closed when destroyed.
class SLUICE_API socket {
public:
  /// A socket descriptor (int) on POSIX, a SOCKET on Windows.
  using native_handle_type = sluice::detail::native_handle;

  socket() = default; ///< not open
  /// Takes over `o`'s socket (no operation may be running on `o`).
  socket(socket&& o) noexcept;
  /// Closes its own socket, then takes over `o`'s.
  socket& operator=(socket&& o) noexcept;
  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;
  ~socket();

  /// A socket bound to `ep` (port 0 picks a free port: see local_endpoint()). Errors
  /// name the endpoint.
  static result<socket> bind(io_context& io, const endpoint& ep, const bind_options& o = {});
  /// An unbound socket of family `f` (the OS binds it at its first send).
  static result<socket> open(io_context& io, endpoint::family f = endpoint::family::v4);

  /// Sets the peer: send()/recv() then talk to it alone, the OS drops datagrams from
  /// anyone else, and an ICMP "port unreachable" fails the next receive with
  /// errc::connection_refused (Linux). Immediate: UDP has no handshake.
  result<void> connect(const endpoint& peer);

  /// Sends one datagram to `to`.
  detail::send_awaiter send_to(std::span<const std::byte> data, const endpoint& to) {
    return {*this, data, &to};
  }
  /// Sends the text `data` as one datagram to `to`.
  detail::send_awaiter send_to(std::string_view data, const endpoint& to) {
    return {*this, std::as_bytes(std::span(data.data(), data.size())), &to};
  }
  /// Receives one datagram into `buf`, with its sender.
  detail::recv_from_awaiter recv_from(std::span<std::byte> buf) { return {*this, buf}; }
  /// Sends one datagram to the connected peer.
  detail::send_awaiter send(std::span<const std::byte> data) { return {*this, data, nullptr}; }
  /// Sends the text `data` as one datagram to the connected peer.
  detail::send_awaiter send(std::string_view data) {
    return {*this, std::as_bytes(std::span(data.data(), data.size())), nullptr};
  }
  /// Receives one datagram from the connected peer.
  detail::recv_awaiter recv(std::span<std::byte> buf) { return {*this, buf}; }
  /// Receives one datagram into a buffer lent by the io_context's receive pool, with its
  /// sender. On io_uring one multishot recvmsg on the provided-buffer ring keeps
  /// receiving (no buffer is held while idle); on Asio each is a recvmsg on readiness;
  /// on IOCP a WSARecvFrom into a pool buffer. A datagram larger than a pool buffer
  /// (io_context options recv_buffer_size, less datagram_payload_offset) fails with
  /// message_too_large, naming its size. Once used, recv_from()/recv() take their
  /// datagrams from the same receiver, in order.
  detail::recv_some_from_awaiter recv_some_from() { return detail::recv_some_from_awaiter(*this); }

  /// Cancels pending operations (they complete with operation_aborted) and closes.
  void close() noexcept;
  /// True until close() (or a move from it).
  bool is_open() const noexcept { return handle_ != sluice::detail::invalid_handle; }
  /// The local address and port (getsockname).
  result<endpoint> local_endpoint() const;
  /// The connected peer (errc::not_connected before connect()).
  result<endpoint> remote_endpoint() const;
  /// The io_context it belongs to, or nullptr.
  io_context* context() const noexcept { return io_; }
  /// The OS socket (for options sluice does not wrap: multicast, say).
  native_handle_type native_handle() const noexcept { return handle_; }

private:
  friend class detail::receive_awaiter;
  friend class detail::recv_awaiter;
  friend class detail::recv_some_from_awaiter;
  friend class detail::send_awaiter;
  socket(io_context& io, native_handle_type h);
  sluice::detail::receiver& receiver();
  void close_receiver() noexcept;

  io_context* io_ = nullptr;
  std::uint64_t io_id_ = 0;
  native_handle_type handle_ = sluice::detail::invalid_handle;
  bool connected_ = false;
  endpoint peer_;
  /// A datagram a receive took whose coroutine was destroyed.
  struct kept {
    std::vector<std::byte> bytes; ///< what the destroyed receive's buffer held
    std::size_t whole = 0;        ///< the datagram's size, where the OS told it
    bool cut = false;             ///< it did not fit the destroyed receive's buffer
    endpoint from;
  };
  std::vector<kept> unread_;               ///< for the next receives, oldest first
  sluice::detail::receiver* rx_ = nullptr; ///< once recv_some_from is used
};

} // namespace sluice::udp
