// TCP: tcp::acceptor and tcp::stream.
//
// Every operation is an awaitable yielding result<...>; none throws for a network
// condition. Operations take the awaiting task's stop token: stopping it completes the
// operation promptly with errc::operation_aborted.
//
// Preconditions (as in Asio): a stream or acceptor outlives the operations started on
// it (and is not moved while they run), and is used only from the thread that runs
// its io_context. The coroutines awaiting its operations may be destroyed at any time.
#pragma once

#include <sluice/export.hpp>

#include <chrono>
#include <cstddef>
#include <sluice/detail/accept_queue.hpp>
#include <sluice/detail/io_awaiter.hpp>

#include <sluice/detail/receiver.hpp>
#include <sluice/lent_buffer.hpp>

#include <sluice/net/endpoint.hpp>
#include <sluice/proto/lifecycle.hpp>
#include <sluice/task.hpp>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::local::detail {
class send_fds_awaiter;
class recv_fds_awaiter;
} // namespace sluice::local::detail

namespace sluice::tcp {

class stream;
class acceptor;

/// How acceptor::bind() listens.
struct listen_options {
  int backlog = 1024;      ///< the kernel's queue of connections not yet accepted
  bool reuse_port = false; ///< SO_REUSEPORT: acceptors of several loops share the port
  /// Unix-domain paths: a socket file nobody accepts on any more (a crashed server's
  /// leftover) is removed and the bind retried. A live server's socket, or a path that
  /// is not a socket, is never removed: the bind fails and says which.
  bool remove_stale_socket = true;
};

/// How stream::graceful_close() bounds itself.
struct graceful_close_options {
  /// The whole close — waiting for accepted sends, then for the peer's FIN — ends by
  /// then; past it the connection is aborted (RST).
  std::chrono::milliseconds deadline{5'000};
  /// Bytes the peer may still send after our FIN; past that, abort.
  std::size_t max_discard = 1 << 20;
  /// false: past the deadline or the cap, once our FIN is out, close instead of abort:
  /// the kernel still delivers what we queued (a slow reader keeps its response), and
  /// resets only if the peer's bytes are left unread (HTTP's lingering close, as nginx).
  bool reset_at_deadline = true;
};

/// What stream::graceful_close() saw.
struct close_report {
  bool peer_fin_seen = false;      ///< the peer finished cleanly
  std::size_t bytes_discarded = 0; ///< bytes the peer sent after our FIN
  bool timed_out = false;          ///< the deadline was hit
  bool aborted = false;            ///< closed with RST (deadline, cap, or an error)
};

namespace detail {
using sluice::detail::io_awaiter;
using sluice::detail::native_handle;
using sluice::detail::stop_of;

class [[nodiscard]] SLUICE_API recv_awaiter : public io_awaiter {
public:
  recv_awaiter(stream& s, std::span<std::byte> buf);
  recv_awaiter(recv_awaiter&&) = default;
  /// Destroyed after its receive completed but before anyone saw it: the bytes are
  /// kept by the stream for its next recv, never lost.
  ~recv_awaiter();
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    if (!begin()) return settle_now(h);
    if (via_receiver_) return wait_receiver(h, stop_of(h));
    return start(h, stop_of(h));
  }
  /// Bytes received; 0 means the peer closed its sending side (end of stream).
  result<std::size_t> await_resume() { return end(); }

private:
  bool begin();
  bool wait_receiver(std::coroutine_handle<> h, const sluice::detail::stop_ref& token);
  result<std::size_t> end();
  void copy_out() noexcept; ///< a receiver's lent buffer into the caller's
  stream* s_;
  std::span<std::byte> user_;
  bool began_ = false;
  bool via_receiver_ = false; ///< the stream receives into lent buffers: go through them
};

/// recv_some: the next bytes, in a buffer the backend lends (see lent_buffer.hpp).
class [[nodiscard]] SLUICE_API recv_some_awaiter : public io_awaiter {
public:
  inline explicit recv_some_awaiter(stream& s); // (inline, after stream: every receive's)
  recv_some_awaiter(recv_some_awaiter&&) = default;
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? wait_receiver(h, stop_of(h)) : settle_now(h);
  }
  /// The bytes (empty: the peer closed its sending side), or an error.
  result<lent_buffer> await_resume() { return end(); }

private:
  inline bool begin(); // (these three inline, after stream: every receive's)
  inline bool wait_receiver(std::coroutine_handle<> h, const sluice::detail::stop_ref& token);
  inline result<lent_buffer> end();
  bool take_unread();                 ///< bytes kept by the stream: lent from the heap
  inline lent_buffer lend() noexcept; ///< the receiver's bytes in op_, as a lent buffer
  result<lent_buffer> end_rest();     ///< an error, the end of the stream, or kept bytes
  stream* s_;
  bool began_ = false;
  lent_buffer kept_; ///< bytes a destroyed recv had received, lent from the heap
};

/// Sends take their turn in the stream's sender queue: they leave in call order and
/// never interleave, whichever coroutines start them.
class [[nodiscard]] SLUICE_API send_awaiter : public io_awaiter {
public:
  send_awaiter(stream& s, std::span<const std::byte> buf);
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? start(h, stop_of(h), queue()) : settle_now(h);
  }
  /// Bytes sent (may be fewer than asked; see send_all).
  result<std::size_t> await_resume() { return end(); }

private:
  bool begin();
  sluice::detail::op_queue* queue() noexcept;
  result<std::size_t> end();
  stream* s_;
};

/// Sends whole buffers: resubmits after partial sends without resuming the coroutine
/// in between (no allocation, one resumption), holding the sender queue throughout.
/// One buffer (send) or several (sendmsg / WSASend with several WSABUFs).
class [[nodiscard]] SLUICE_API send_all_awaiter : public io_awaiter {
public:
  inline send_all_awaiter(stream& s, std::span<const std::byte> buf); // (after stream)
  /// Precondition: `bufs` (the array of spans) outlives the co_await — a braced list
  /// in the co_await expression does.
  send_all_awaiter(stream& s, std::span<const std::span<const std::byte>> bufs);
  send_all_awaiter(send_all_awaiter&& o) noexcept;
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? start(h, stop_of(h), queue()) : settle_now(h);
  }
  /// All the bytes, or the first error.
  result<std::size_t> await_resume() { return end(); }

private:
  static constexpr std::size_t window = 8; ///< buffers per sendmsg
  static void on_complete(sluice::detail::operation& op);
  inline bool begin(); // (inline, after stream: every send's)
  inline sluice::detail::op_queue* queue() noexcept;
  inline void aim() noexcept;       ///< points op_ at what is left
  void aim_parts() noexcept;        ///< aim() for several buffers
  inline result<std::size_t> end(); // (inline, after stream)
  result<std::size_t> end_rest();   ///< an error, or stopped early
  stream* s_;
  std::span<const std::byte> one_;
  const std::span<const std::byte>* parts_ = &one_;
  std::size_t count_ = 1;
  std::size_t index_ = 0;  ///< first part not fully sent
  std::size_t offset_ = 0; ///< bytes of it already sent
  std::size_t total_ = 0;
  std::size_t sent_ = 0;
  sluice::detail::io_buffer iov_[window];
};

class [[nodiscard]] SLUICE_API connect_awaiter : public io_awaiter {
public:
  connect_awaiter(stream& s, const endpoint& ep);
  connect_awaiter(connect_awaiter&&) = default;
  ~connect_awaiter(); ///< the stream's state follows what the OS did
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? start(h, stop_of(h)) : settle_now(h);
  }
  result<void> await_resume() { return end(); }

private:
  bool begin();
  result<void> end();
  void settle() noexcept;
  stream* s_;
  endpoint target_;
  sluice::detail::address_storage address_;
};

/// recv_disconnect and send_disconnect: a shutdown of one side, ruled by the lifecycle.
/// The send side's FIN takes its turn in the sender queue, after the sends started
/// before it.
class [[nodiscard]] SLUICE_API disconnect_awaiter : public io_awaiter {
public:
  /// recv_disconnect: `pending` is the disconnect data a layer above holds (0 on TCP).
  disconnect_awaiter(stream& s, int how, std::span<std::byte> in, std::size_t out_size,
                     std::size_t pending = 0);
  disconnect_awaiter(disconnect_awaiter&&) = default;
  ~disconnect_awaiter(); ///< the stream's state follows what the OS did
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? start(h, stop_of(h), queue()) : settle_now(h);
  }
  /// recv_disconnect: the size of the disconnect data written to the buffer (0 on TCP).
  result<std::size_t> await_resume() { return end(); }

private:
  bool begin();
  sluice::detail::op_queue* queue() noexcept;
  result<std::size_t> end();
  void settle() noexcept;
  stream* s_;
  std::size_t out_size_;
  std::size_t capacity_;
  std::size_t pending_;
  bool skipped_ = false; ///< the lifecycle answered without an OS call
};

class [[nodiscard]] SLUICE_API accept_awaiter : public io_awaiter {
public:
  explicit accept_awaiter(acceptor& a);
  accept_awaiter(accept_awaiter&&) = default;
  /// Destroyed after the OS accepted a connection for it: the acceptor keeps the
  /// connection for its next accept() (or closes it if it is closed itself).
  ~accept_awaiter();
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return begin() ? wait_queue(h, stop_of(h)) : settle_now(h);
  }
  result<stream> await_resume();

private:
  bool begin();
  bool wait_queue(std::coroutine_handle<> h, const sluice::detail::stop_ref& token);
  acceptor* a_;
  sluice::detail::address_storage peer_;
};

} // namespace detail

/// A TCP connection: awaitable receives and sends, half-closes with the
/// recv_disconnect contract, graceful and abortive closes. Move-only; closed when
/// destroyed. The same class carries a Unix-domain stream socket (sluice::local, in
/// local.hpp), where TCP-only options such as set_nodelay() fail with the OS's error.
class SLUICE_API stream {
public:
  /// A socket descriptor (int) on POSIX, a SOCKET on Windows.
  using native_handle_type = sluice::detail::native_handle;

  /// Not open.
  stream() = default;
  /// Takes over `o`'s socket (no operation may be running on `o`).
  stream(stream&& o) noexcept;
  /// Closes its own socket, then takes over `o`'s.
  stream& operator=(stream&& o) noexcept;
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream();

  /// An open, unconnected socket of the given family (then connect()).
  static result<stream> open(io_context& io, endpoint::family f = endpoint::family::v4);
  /// Opens a socket and connects it to `ep`.
  static task<result<stream>> connect(io_context& io, endpoint ep);
  /// Takes a connected socket (from release() on another loop, or from outside sluice)
  /// onto `io`. Errors name the socket: not a connected TCP socket, say.
  static result<stream> adopt(io_context& io, native_handle_type h);

  /// Gives up the socket without closing it, to adopt() it on another loop (a
  /// hand-off from an accepting loop, say). Precondition: no operation of this stream
  /// is running (a freshly accepted stream). The stream is closed afterwards.
  native_handle_type release() noexcept;

  /// Connects an open() socket to `ep`. Errors name the endpoint.
  detail::connect_awaiter connect(const endpoint& ep) { return {*this, ep}; }
  /// Receives into `buf`: the bytes received, 0 at the end of the stream.
  detail::recv_awaiter recv(std::span<std::byte> buf) { return {*this, buf}; }
  /// The next bytes that arrive, in a buffer lent from the io_context's pool: no buffer
  /// is held while the connection is idle (io_uring: a multishot recv on a provided
  /// buffer ring). Give the lent_buffer back soon. recv() and recv_some() may be mixed:
  /// bytes come out in order either way.
  detail::recv_some_awaiter recv_some() { return detail::recv_some_awaiter(*this); }
  /// Receives text into `buf` (a std::string or char array, say); as recv(bytes).
  detail::recv_awaiter recv(std::span<char> buf) { return {*this, std::as_writable_bytes(buf)}; }
  /// Sends some of `buf` (one send): the bytes sent, maybe fewer than asked.
  detail::send_awaiter send(std::span<const std::byte> buf) { return {*this, buf}; }
  /// Sends all of `buf` (several sends if needed): buf.size(), or the first error.
  detail::send_all_awaiter send_all(std::span<const std::byte> buf) { return {*this, buf}; }
  /// Sends all of the text `text` (a string literal or std::string, say).
  detail::send_all_awaiter send_all(std::string_view text) {
    return {*this, std::as_bytes(std::span(text.data(), text.size()))};
  }
  /// Sends some of `text` (one send).
  detail::send_awaiter send(std::string_view text) {
    return {*this, std::as_bytes(std::span(text.data(), text.size()))};
  }
  /// Gather: sends every buffer, in order, as one operation (sendmsg / WSASend).
  /// `bufs` must outlive the co_await:
  ///   std::array<std::span<const std::byte>, 2> parts{header, body};
  ///   co_await s.send_all(parts);
  /// (g++ 12 cannot carry a braced initializer list across a co_await.)
  detail::send_all_awaiter send_all(std::span<const std::span<const std::byte>> bufs) {
    return {*this, bufs};
  }

  /// True if recv() or recv_some() would complete now without waiting: bytes, the end
  /// of the stream or an error are there (or the receive side is shut).
  bool available() const noexcept;
  /// For servers that hold idle connections with no coroutine (sluice::server parks
  /// them): runs `w` once when available() becomes true. `w.run` is then called from
  /// inside the receive's completion, so it may only call unwatch_receive() and post
  /// work to the loop (spawn, say); if available() is true already, `w` is posted to
  /// the loop's ready list instead. The stream receives into lent buffers meanwhile (as
  /// recv_some); no recv may wait on it until `w` has run or unwatch_receive() was
  /// called, and `w` must outlive both. Fails as recv_some would if the receive side
  /// is shut or the stream closed.
  result<void> watch_receive(sluice::detail::ready_node& w);
  /// Withdraws the watch of watch_receive() (a posted wake-up stays posted).
  void unwatch_receive() noexcept;

  /// Half-closes the receive side and yields the peer's disconnect data into `data`
  /// (always empty on TCP, whose transport has none). The contract is docs/architecture.md's
  /// recv_disconnect table: afterwards every receive — pending or later — fails with
  /// errc::shut_down and delivers nothing; the send side stays usable; the socket stays
  /// open until close(). Never waits for the network.
  detail::disconnect_awaiter recv_disconnect(std::span<std::byte> data = {}) {
    return {*this, sluice::detail::shutdown_receive, data, 0};
  }
  /// For transports layered over TCP that carry disconnect data (framed_stream): the
  /// same half-close, with `pending` bytes of disconnect data held above, so that the
  /// lifecycle decides buffer_too_small. Yields 0; the caller copies its data.
  detail::disconnect_awaiter recv_disconnect_layered(std::span<std::byte> data,
                                                     std::size_t pending) {
    return {*this, sluice::detail::shutdown_receive, data, 0, pending};
  }
  /// Half-closes the send side (FIN). Non-empty `data` fails with
  /// errc::no_protocol_option: TCP carries no disconnect data.
  detail::disconnect_awaiter send_disconnect(std::span<const std::byte> data = {}) {
    return {*this, sluice::detail::shutdown_send, {}, data.size()};
  }
  /// send_disconnect() without data: a FIN.
  detail::disconnect_awaiter shutdown_send() { return send_disconnect(); }

  /// Plain TCP carries no disconnect data (the analog of XP1_DISCONNECT_DATA unset).
  static constexpr bool carries_disconnect_data() noexcept { return false; }

  /// Cancels pending operations (they complete with operation_aborted; sends still
  /// waiting their turn never reach the OS) and closes. Closing a closed stream does
  /// nothing.
  void close() noexcept;

  /// Closes without losing what was sent and without truncating the peer: half-closes
  /// (FIN) after the sends already started on this stream, reads and discards until the
  /// peer's FIN, then closes. Bounded by options.deadline and
  /// options.max_discard; past either it aborts (RST). Never blocks the loop and never
  /// relies on SO_LINGER. The stream is closed afterwards in every case.
  task<close_report> graceful_close(graceful_close_options options = {});

  /// Closes at once with an RST (SO_LINGER on, zero timeout); pending operations
  /// complete with operation_aborted.
  void abort() noexcept;

  /// True until close() or abort() (or a move from it).
  bool is_open() const noexcept { return handle_ != sluice::detail::invalid_handle; }
  /// The local address and port (getsockname).
  result<endpoint> local_endpoint() const;
  /// The peer's address and port (getpeername), or what set_remote_endpoint() said.
  result<endpoint> remote_endpoint() const;
  /// Says who the peer really is, for remote_endpoint() from now on: the client a load
  /// balancer's PROXY protocol header named (sluice::server does this with its
  /// proxy_protocol option). The socket itself is unchanged.
  void set_remote_endpoint(const endpoint& peer) noexcept { peer_ = peer; }
  /// Puts `bytes` back in front of whatever is received next: the next recv() or
  /// recv_some() returns them first. For a layer that read past its own header (a PROXY
  /// protocol header, a handshake) and hands the rest on.
  void put_back(std::span<const std::byte> bytes);
  /// Sets TCP_NODELAY: small sends leave at once instead of waiting for an ACK.
  result<void> set_nodelay(bool on);
  result<bool> nodelay() const; ///< TCP_NODELAY

  /// Sets SO_LINGER (graceful_close() never relies on it).
  result<void> set_linger(bool on, int seconds);

  /// The half-close state machine that rules this stream (docs/architecture.md).
  const proto::stream_lifecycle& lifecycle() const noexcept { return life_; }
  /// The io_context it belongs to, or nullptr.
  io_context* context() const noexcept { return io_; }
  /// The OS socket (for options sluice does not wrap).
  native_handle_type native_handle() const noexcept { return handle_; }

private:
  friend class detail::recv_awaiter;
  friend class detail::recv_some_awaiter;
  friend class detail::send_awaiter;
  friend class detail::send_all_awaiter;
  friend class detail::connect_awaiter;
  friend class detail::disconnect_awaiter;
  friend class detail::accept_awaiter;
  friend class sluice::local::detail::send_fds_awaiter;
  friend class sluice::local::detail::recv_fds_awaiter;

  stream(io_context& io, native_handle_type h, proto::stream_lifecycle life, endpoint peer);
  std::string describe(std::string_view op) const; ///< "recv from 1.2.3.4:5"
  void abort_waiting_senders() noexcept;
  inline sluice::detail::receiver& receiver(); ///< rx_, opened on first use
  sluice::detail::receiver& open_receiver();
  void close_receiver() noexcept;

  io_context* io_ = nullptr;
  std::uint64_t io_id_ = 0;
  native_handle_type handle_ = sluice::detail::invalid_handle;
  proto::stream_lifecycle life_;
  endpoint peer_;
  sluice::detail::op_queue sendq_;         ///< one sender at a time
  std::vector<std::byte> unread_;          ///< received by a recv whose coroutine was destroyed
  sluice::detail::receiver* rx_ = nullptr; ///< once recv_some is used: lent-buffer receives
};

/// \cond INTERNAL
// The parts of recv_some and send_all that every receive and send runs, inline (they
// need stream complete).
namespace detail {

inline recv_some_awaiter::recv_some_awaiter(stream& s) : s_(&s) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::recv_lent;
  op_.handle = s.handle_;
}

} // namespace detail

inline sluice::detail::receiver& stream::receiver() {
  return rx_ != nullptr ? *rx_ : open_receiver();
}

namespace detail {

inline bool recv_some_awaiter::begin() {
  const auto d = s_->life_.begin_receive();
  if (d.action != proto::verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  began_ = true;
  if (!s_->unread_.empty()) return take_unread();
  auto& rx = s_->receiver();
  if (!rx.ready()) return true;
  rx.take(op_);
  return false;
}

inline bool recv_some_awaiter::wait_receiver(std::coroutine_handle<> h,
                                             const sluice::detail::stop_ref& token) {
  return start_waiting(h, token, [this](sluice::detail::operation& op) { s_->rx_->wait(op); });
}

inline result<lent_buffer> recv_some_awaiter::end() {
  finish();
  // Bytes from the receiver, delivered as they are: lent straight out. (A receive the
  // lifecycle refused, or one served from kept bytes, leaves op_.res at 0: no test of
  // began_ or kept_ here.)
  if (!op_.error && op_.res > 0 && s_->life_.delivers_receive()) return lend();
  return end_rest();
}

inline lent_buffer recv_some_awaiter::lend() noexcept {
  return lent_buffer(s_->io_->lend_pool(), op_.lent_id, static_cast<const std::byte*>(op_.buffer),
                     static_cast<std::size_t>(op_.res));
}

inline send_all_awaiter::send_all_awaiter(stream& s, std::span<const std::byte> buf)
    : s_(&s), one_(buf), total_(buf.size()) {
  op_.ctx = s.io_;
  op_.handle = s.handle_;
}

inline sluice::detail::op_queue* send_all_awaiter::queue() noexcept { return &s_->sendq_; }

inline bool send_all_awaiter::begin() {
  const auto d = s_->life_.begin_send();
  if (d.action != proto::verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  if (total_ == 0) return false; // nothing to send: complete at once
  aim();
  // Set here, not in the constructor: the awaiter may have moved.
  op_.on_complete = &send_all_awaiter::on_complete;
  op_.owner = this;
  return true;
}

inline void send_all_awaiter::aim() noexcept {
  if (count_ != 1) return aim_parts();
  // One buffer, the usual case: a plain send of what is left.
  op_.code = sluice::detail::op_code::send;
  op_.buffer = const_cast<std::byte*>(parts_[0].data()) + offset_;
  op_.length = parts_[0].size() - offset_;
}

inline result<std::size_t> send_all_awaiter::end() {
  finish();
  if (!op_.error && sent_ == total_) return total_; // all of it went out
  return end_rest();
}

} // namespace detail
/// \endcond

/// A listening TCP socket: accept() yields a connected stream.
class SLUICE_API acceptor {
public:
  /// Not open.
  acceptor() = default;
  /// Takes over `o`'s socket (no accept may be running on `o`).
  acceptor(acceptor&& o) noexcept;
  /// Closes its own socket, then takes over `o`'s.
  acceptor& operator=(acceptor&& o) noexcept;
  ~acceptor();

  /// Binds (SO_REUSEADDR) and listens. Port 0 picks a free port: see local_endpoint().
  static result<acceptor> bind(io_context& io, const endpoint& ep, int backlog = 1024);
  /// The same, with listen_options (SO_REUSEPORT: one acceptor per loop on one port;
  /// errc::no_protocol_option on Windows, which has no such option).
  static result<acceptor> bind(io_context& io, const endpoint& ep, const listen_options& o);

  /// Takes a listening socket onto `io`: one received with local::recv_fds (a server
  /// handing its listeners over), inherited from systemd, or given up by release().
  /// Errors name the socket: not a socket, not listening.
  static result<acceptor> adopt(io_context& io, sluice::detail::native_handle h);
  /// Gives up the listening socket without closing it (to send it to another process,
  /// or adopt() it on another loop). Precondition: no accept() is running. Connections
  /// accepted ahead are closed; the ones in the kernel's backlog go with the socket.
  sluice::detail::native_handle release() noexcept;

  /// The next connection. Errors name the listening endpoint; running out of file
  /// descriptors is errc::too_many_open_files and leaves the acceptor usable.
  /// With io_uring, one multishot accept serves every accept(): connections that arrive
  /// while nobody awaits accept() wait in a queue (io_context::options::accept_ahead
  /// of them; past that, in the kernel's listen backlog).
  detail::accept_awaiter accept() { return detail::accept_awaiter(*this); }
  /// Connections accepted ahead and not yet taken by accept().
  std::size_t queued() const noexcept;

  /// True until close() (or a move from it).
  bool is_open() const noexcept { return handle_ != sluice::detail::invalid_handle; }
  /// Where it listens (the port bind() picked for port 0).
  const endpoint& local_endpoint() const noexcept { return local_; }
  /// Stops listening: a waiting accept() ends with operation_aborted, connections
  /// accepted ahead are closed.
  void close() noexcept;
  /// Stops taking connections without closing anything: accept() still returns the
  /// connections the OS already handed over (accepted ahead, or as the stop raced),
  /// then ends with operation_aborted. The socket keeps listening: new connections
  /// wait in the kernel's backlog for another holder of the socket (another loop, or
  /// the process it was handed over to). close() or release() it afterwards; a
  /// release() after the last accept() ended leaves no accept behind in the kernel.
  void stop_accepting();
  /// The io_context it belongs to, or nullptr.
  io_context* context() const noexcept { return io_; }
  /// The OS socket.
  sluice::detail::native_handle native_handle() const noexcept { return handle_; }

private:
  friend class detail::accept_awaiter;
  sluice::detail::accept_queue& queue();
  io_context* io_ = nullptr;
  std::uint64_t io_id_ = 0;
  sluice::detail::native_handle handle_ = sluice::detail::invalid_handle;
  endpoint local_;
  sluice::detail::accept_queue* queue_ = nullptr; ///< from the io_context's pool, once accepting
};

/// Connects to `ep` (same as stream::connect(io, ep)).
inline task<result<stream>> connect(io_context& io, endpoint ep) { return stream::connect(io, ep); }

/// Connects to the first of `eps` that accepts, trying them in order (as resolve()
/// returns them), all within `timeout`: each attempt gets what is left of it. Fails
/// with the last attempt's error, or errc::timed_out naming the address that was being
/// tried and the bound; errc::invalid_endpoint if `eps` is empty.
SLUICE_API task<result<stream>> connect(io_context& io, std::vector<endpoint> eps,
                                        std::chrono::milliseconds timeout);

} // namespace sluice::tcp

// fmt: "peer FIN seen, 0 bytes discarded" / "aborted at the deadline, 12 bytes discarded".
/// \cond SPECIALIZATIONS
template <> struct fmt::formatter<sluice::tcp::close_report> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::tcp::close_report& r, Ctx& ctx) const {
    const char* how = r.aborted         ? (r.timed_out ? "aborted at the deadline" : "aborted")
                      : r.timed_out     ? "closed at the deadline"
                      : r.peer_fin_seen ? "peer FIN seen"
                                        : "closed";
    return fmt::formatter<std::string_view>::format(
        fmt::format("{}, {} bytes discarded", how, r.bytes_discarded), ctx);
  }
};
/// \endcond
