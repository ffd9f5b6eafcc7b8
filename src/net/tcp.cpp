#include <sluice/net/tcp.hpp>

#include "../backend/backend.hpp"
#include "../backend/socket_ops.hpp"
#include "heap_lend.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <optional>
#include <sluice/scope.hpp>
#include <sluice/timer.hpp>

namespace sluice::tcp {

namespace sys = sluice::detail::sys;
using proto::verdict;

// ---------------------------------------------------------------- stream

stream::stream(io_context& io, native_handle_type h, proto::stream_lifecycle life, endpoint peer)
    : io_(&io), io_id_(io.id()), handle_(h), life_(life), peer_(peer) {}

// (The sender queue is not moved: a stream is not moved while operations run on it.)
stream::stream(stream&& o) noexcept
    : io_(o.io_), io_id_(o.io_id_),
      handle_(std::exchange(o.handle_, sluice::detail::invalid_handle)),
      life_(std::exchange(o.life_, proto::stream_lifecycle())), peer_(o.peer_),
      unread_(std::move(o.unread_)), rx_(std::exchange(o.rx_, nullptr)) {}

stream& stream::operator=(stream&& o) noexcept {
  if (this != &o) {
    close();
    io_ = o.io_;
    io_id_ = o.io_id_;
    handle_ = std::exchange(o.handle_, sluice::detail::invalid_handle);
    life_ = std::exchange(o.life_, proto::stream_lifecycle());
    peer_ = o.peer_;
    unread_ = std::move(o.unread_);
    rx_ = std::exchange(o.rx_, nullptr);
  }
  return *this;
}

sluice::detail::receiver& stream::open_receiver() {
  rx_ = io_->acquire_receiver();
  rx_->open(handle_);
  return *rx_;
}

void stream::close_receiver() noexcept {
  if (rx_ != nullptr) std::exchange(rx_, nullptr)->close();
}

stream::~stream() { close(); }

bool stream::available() const noexcept {
  if (life_.begin_receive().action != verdict::proceed || !unread_.empty()) return true;
  return rx_ != nullptr && rx_->ready();
}

result<void> stream::watch_receive(sluice::detail::ready_node& w) {
  const auto d = life_.begin_receive();
  if (d.action != verdict::proceed) return error(d.error, describe("recv_some"));
  if (!unread_.empty())
    io_->post(w);
  else
    receiver().watch(w);
  return {};
}

void stream::unwatch_receive() noexcept {
  if (rx_ != nullptr) rx_->unwatch();
}

result<stream> stream::adopt(io_context& io, native_handle_type h) {
  auto peer = sys::remote_endpoint(h);
  if (!peer)
    return error(peer.error().code(),
                 fmt::format("adopt socket {}: {}", h, peer.error().message()));
  return stream(io, h, proto::stream_lifecycle::connected(), *peer);
}

stream::native_handle_type stream::release() noexcept {
  if (!is_open()) return sluice::detail::invalid_handle;
  unread_.clear();
  if (io_ != nullptr && io_context::alive(io_id_)) close_receiver();
  abort_waiting_senders();
  const native_handle_type h = std::exchange(handle_, sluice::detail::invalid_handle);
  life_.close();
  return h;
}

void stream::abort_waiting_senders() noexcept {
  while (sluice::detail::operation* op = sendq_.first_waiting()) {
    sendq_.remove(*op);
    op->res = 0;
    op->error = make_error_code(errc::operation_aborted);
    io_->defer_completion(*op);
  }
}

void stream::close() noexcept {
  if (!is_open()) return;
  unread_.clear();
  if (io_ != nullptr && io_context::alive(io_id_)) close_receiver();
  abort_waiting_senders();
  // Pending operations on this handle must end before the fd number can be reused.
  if (io_ != nullptr && io_context::alive(io_id_)) io_->backend().cancel_all(handle_);
  sys::close(handle_);
  handle_ = sluice::detail::invalid_handle;
  life_.close();
}

void stream::abort() noexcept {
  if (!is_open()) return;
  unread_.clear();
  if (io_ != nullptr && io_context::alive(io_id_)) close_receiver();
  abort_waiting_senders();
  if (io_ != nullptr && io_context::alive(io_id_)) io_->backend().cancel_all(handle_);
  sys::abort(handle_);
  handle_ = sluice::detail::invalid_handle;
  life_.close();
}

task<close_report> stream::graceful_close(graceful_close_options o) {
  using clock = std::chrono::steady_clock;
  close_report rep;
  if (!is_open()) co_return rep;
  const auto deadline = clock::now() + o.deadline;
  auto left = [&] { return std::max(clock::duration::zero(), deadline - clock::now()); };
  auto give_up = [&](bool timed_out) {
    rep.timed_out = timed_out;
    rep.aborted = true;
    abort();
  };
  // 1. FIN, after the sends already started elsewhere (it waits its turn in the
  //    sender queue), so nothing queued is lost.
  if (auto r = co_await with_timeout(send_disconnect(), left());
      !r && r.error() != errc::shut_down) {
    give_up(r.error() == errc::timed_out);
    co_return rep;
  }
  // 2. Discard until the peer's FIN, so that its late data cannot make our kernel
  //    answer with an RST that would destroy what it has not read yet.
  auto stop_waiting = [&](bool timed_out) {
    if (o.reset_at_deadline) return give_up(timed_out);
    rep.timed_out = timed_out;
    close();
  };
  //    Lent buffers: the wait holds none, and each goes back at once.
  for (;;) {
    if (rep.bytes_discarded > o.max_discard) {
      stop_waiting(false);
      break;
    }
    auto b = co_await with_timeout(recv_some(), left());
    if (!b) {
      if (b.error() == errc::shut_down) { // receive side already shut: nothing to wait for
        close();
        break;
      }
      stop_waiting(b.error() == errc::timed_out);
      break;
    }
    if (b->empty()) {

      rep.peer_fin_seen = true;
      close();
      break;
    }
    rep.bytes_discarded += b->size();
  }

  co_return rep;
}

result<stream> stream::open(io_context& io, endpoint::family f) {
  endpoint family_of = f == endpoint::family::v6      ? endpoint::loopback_v6(0)
                       : f == endpoint::family::local ? *endpoint::local("")
                                                      : endpoint();
  auto h = sys::open_stream(family_of);
  if (!h) return std::move(h).error();
  return stream(io, *h, proto::stream_lifecycle::opened(), endpoint());
}

task<result<stream>> stream::connect(io_context& io, endpoint ep) {
  auto s = open(io, ep.address_family());
  if (!s) co_return std::move(s).error();
  auto r = co_await s->connect(ep);
  if (!r) co_return std::move(r).error();
  co_return std::move(*s);
}

result<endpoint> stream::local_endpoint() const {
  if (!is_open()) return error(errc::not_a_socket, "local_endpoint");
  return sys::local_endpoint(handle_);
}

result<endpoint> stream::remote_endpoint() const {
  if (!is_open()) return error(errc::not_a_socket, "remote_endpoint");
  if (life_.connection() != proto::connection_state::connected)
    return error(errc::not_connected, "remote_endpoint");
  return peer_;
}

void stream::put_back(std::span<const std::byte> bytes) {
  unread_.insert(unread_.begin(), bytes.begin(), bytes.end());
}

result<void> stream::set_nodelay(bool on) {
  if (!is_open()) return error(errc::not_a_socket, "set_nodelay");
  return sys::set_nodelay(handle_, on);
}

result<bool> stream::nodelay() const {
  if (!is_open()) return error(errc::not_a_socket, "nodelay");
  return sys::nodelay(handle_);
}

result<void> stream::set_linger(bool on, int seconds) {

  if (!is_open()) return error(errc::not_a_socket, "set_linger");
  return sys::set_linger(handle_, on, seconds);
}

std::string stream::describe(std::string_view op) const {
  if (life_.connection() == proto::connection_state::connected)
    return fmt::format("{} (peer {})", op, peer_);
  return std::string(op);
}

namespace detail {

// ------------------------------------------------------------------ recv

recv_awaiter::recv_awaiter(stream& s, std::span<std::byte> buf) : s_(&s), user_(buf) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::recv;
  op_.handle = s.handle_;
  op_.buffer = buf.data();
  op_.length = buf.size();
}

bool recv_awaiter::begin() {
  const auto d = s_->life_.begin_receive();
  if (d.action != verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  began_ = true;
  if (!s_->unread_.empty()) { // left by a recv whose coroutine was destroyed
    auto& u = s_->unread_;
    const std::size_t n = std::min(u.size(), op_.length);
    std::copy_n(u.begin(), n, static_cast<std::byte*>(op_.buffer));
    u.erase(u.begin(), u.begin() + static_cast<std::ptrdiff_t>(n));
    op_.res = static_cast<std::int64_t>(n);
    op_.error = {};
    return false;
  }
  if (s_->rx_ != nullptr) {
    // The stream receives into lent buffers now: take from them, in order.
    via_receiver_ = true;
    op_.code = sluice::detail::op_code::recv_lent;
    if (s_->rx_->ready()) {
      s_->rx_->take(op_);
      copy_out();
      return false;
    }
  }
  return true;
}

bool recv_awaiter::wait_receiver(std::coroutine_handle<> h, const sluice::detail::stop_ref& token) {
  return start_waiting(h, token, [this](sluice::detail::operation& op) { s_->rx_->wait(op); });
}

void recv_awaiter::copy_out() noexcept {
  if (op_.error || op_.res <= 0 || op_.buffer == user_.data()) return;
  const auto n = std::min<std::size_t>(static_cast<std::size_t>(op_.res), user_.size());
  std::memcpy(user_.data(), op_.buffer, n);
  if (n < static_cast<std::size_t>(op_.res) && s_->rx_ != nullptr) {
    sluice::detail::operation rest; // the unread rest stays first in line
    rest.res = op_.res - static_cast<std::int64_t>(n);
    rest.lent_id = op_.lent_id;
    rest.buffer = static_cast<std::byte*>(op_.buffer) + n;
    s_->rx_->put_back(rest);
  } else {
    s_->io_->backend().buffers().give_back(op_.lent_id);
  }
  op_.res = static_cast<std::int64_t>(n);
  op_.buffer = user_.data(); // copied: nothing lent any more
}

recv_awaiter::~recv_awaiter() {
  if (withdraw() && !op_.error && op_.res > 0) {
    // The OS had delivered these bytes into this frame's buffer (or a lent one): the
    // stream keeps them.
    const auto* p = static_cast<const std::byte*>(op_.buffer);
    s_->unread_.insert(s_->unread_.begin(), p, p + op_.res);
    if (via_receiver_ && op_.buffer != user_.data())
      s_->io_->backend().buffers().give_back(op_.lent_id);
  }
}

result<std::size_t> recv_awaiter::end() {
  finish();
  if (!began_) return error(op_.error, s_->describe("recv")); // rejected by the lifecycle
  if (via_receiver_) copy_out();

  // Once recv_disconnect has started (or the stream was closed), the lifecycle
  // overrides whatever the OS delivered: the bytes are discarded.
  if (auto ec = s_->life_.filter_receive()) {
    if (ec == errc::shut_down || !op_.error) return error(ec, s_->describe("recv"));
    return error(op_.error, s_->describe("recv"));
  }
  if (op_.error) return error(op_.error, describe_outcome(s_->describe("recv")));
  return static_cast<std::size_t>(op_.res);
}

// ------------------------------------------------------------- recv_some

bool recv_some_awaiter::take_unread() {
  kept_ = sluice::detail::heap_lend::make(std::move(s_->unread_));
  s_->unread_.clear();
  op_.error = {};
  return false;
}

// end() past its fast path (finish() has run).
result<lent_buffer> recv_some_awaiter::end_rest() {
  if (!began_) return error(op_.error, s_->describe("recv_some")); // rejected by the lifecycle
  // Bytes kept from the stream (unread_), or the receiver's, lent as they are.
  lent_buffer b = kept_.empty() && !op_.error && op_.res > 0 ? lend() : std::move(kept_);
  // Once recv_disconnect has started (or the stream was closed), the lifecycle
  // overrides what came: the bytes go back unread.
  if (auto ec = s_->life_.filter_receive()) {
    if (ec == errc::shut_down || !op_.error) return error(ec, s_->describe("recv_some"));
    return error(op_.error, s_->describe("recv_some"));
  }
  if (op_.error) return error(op_.error, describe_outcome(s_->describe("recv_some")));
  return b; // empty: the peer closed its sending side
}

// ------------------------------------------------------------------ send

send_awaiter::send_awaiter(stream& s, std::span<const std::byte> buf) : s_(&s) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::send;
  op_.handle = s.handle_;
  op_.buffer = const_cast<std::byte*>(buf.data());
  op_.length = buf.size();
}

sluice::detail::op_queue* send_awaiter::queue() noexcept { return &s_->sendq_; }

bool send_awaiter::begin() {
  const auto d = s_->life_.begin_send();
  if (d.action != verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  return true;
}

result<std::size_t> send_awaiter::end() {
  finish();
  if (op_.error) return error(op_.error, describe_outcome(s_->describe("send")));
  return static_cast<std::size_t>(op_.res);
}

// -------------------------------------------------------------- send_all

send_all_awaiter::send_all_awaiter(stream& s, std::span<const std::span<const std::byte>> bufs)
    : s_(&s), parts_(bufs.data()), count_(bufs.size()) {
  op_.ctx = s.io_;
  op_.handle = s.handle_;
  for (const auto& b : bufs)
    total_ += b.size();
}

send_all_awaiter::send_all_awaiter(send_all_awaiter&& o) noexcept
    : io_awaiter(std::move(o)), s_(o.s_), one_(o.one_),
      parts_(o.parts_ == &o.one_ ? &one_ : o.parts_), count_(o.count_), total_(o.total_) {}

void send_all_awaiter::aim_parts() noexcept {
  while (index_ < count_ && parts_[index_].size() == offset_) { // skip empty / finished

    ++index_;
    offset_ = 0;
  }
  const std::span<const std::byte> first = parts_[index_].subspan(offset_);
  std::size_t n = 0;
  for (std::size_t i = index_; i < count_ && n < window; ++i) {
    const auto part = i == index_ ? first : parts_[i];
    if (part.empty()) continue;
    iov_[n++] = {const_cast<std::byte*>(part.data()), part.size()};
  }
  if (n == 1) { // a plain send: cheaper than sendmsg
    op_.code = sluice::detail::op_code::send;
    op_.buffer = iov_[0].data;
    op_.length = iov_[0].size;
  } else {
    op_.code = sluice::detail::op_code::sendmsg;
    op_.buffer = iov_;
    op_.length = n;
  }
}

void send_all_awaiter::on_complete(sluice::detail::operation& op) {
  auto* self = static_cast<send_all_awaiter*>(op.owner);
  if (!op.error && op.res > 0) {
    auto left = static_cast<std::size_t>(op.res);
    self->sent_ += left;
    if (self->sent_ == self->total_) { // all of it went out: the usual case
      op.waiter.resume();
      return;
    }
    while (left != 0) { // advance over what went out
      const std::size_t in_part = self->parts_[self->index_].size() - self->offset_;
      if (left < in_part) {
        self->offset_ += left;
        break;
      }
      left -= in_part;
      ++self->index_;
      self->offset_ = 0;
    }
    if (self->sent_ < self->total_ && self->s_->life_.begin_send().action == verdict::proceed) {
      self->aim();
      op.ctx->submit(op); // the rest; the coroutine stays suspended (a cancel ends it)
      return;
    }
  }
  op.waiter.resume();
}

// end() past its fast path (finish() has run).
result<std::size_t> send_all_awaiter::end_rest() {
  if (op_.error) return error(op_.error, describe_outcome(s_->describe("send_all")));
  if (sent_ < total_) {
    // Stopped early without an OS error: the send side was shut meanwhile.
    if (const auto d = s_->life_.begin_send(); d.action == verdict::fail)
      return error(d.error, s_->describe("send_all"));
    return error(errc::broken_pipe, s_->describe("send_all"));
  }
  return total_;
}

// --------------------------------------------------------------- connect

connect_awaiter::connect_awaiter(stream& s, const endpoint& ep) : s_(&s), target_(ep) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::connect;
  op_.handle = s.handle_;
}

bool connect_awaiter::begin() {
  const auto d = s_->life_.begin_connect();
  if (d.action != verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  sys::to_storage(target_, address_);
  op_.address = &address_; // here, not in the constructor: the awaiter may have moved
  return true;
}

result<void> connect_awaiter::end() {
  finish();
  settle();
  if (op_.error) return error(op_.error, describe_outcome(fmt::format("connect to {}", target_)));
  return {};
}

void connect_awaiter::settle() noexcept {
  if (s_->life_.connection() != proto::connection_state::connecting) return;
  s_->life_.end_connect(!op_.error);
  if (!op_.error) s_->peer_ = target_;
}

connect_awaiter::~connect_awaiter() {
  if (withdraw()) settle();
}

// ------------------------------------------------------------ disconnect

disconnect_awaiter::disconnect_awaiter(stream& s, int how, std::span<std::byte> in,
                                       std::size_t out_size, std::size_t pending)
    : s_(&s), out_size_(out_size), capacity_(in.size()), pending_(pending) {
  // TCP has no inbound disconnect data: the buffer is left untouched.
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::shutdown;
  op_.handle = s.handle_;
  op_.flags = how;
}

sluice::detail::op_queue* disconnect_awaiter::queue() noexcept {
  return op_.flags == sluice::detail::shutdown_send ? &s_->sendq_ : nullptr;
}

bool disconnect_awaiter::begin() {
  const bool receive = op_.flags == sluice::detail::shutdown_receive;
  const auto d =
      receive ? s_->life_.begin_recv_disconnect(io_context::alive(s_->io_id_), pending_, capacity_)
              : s_->life_.begin_send_disconnect(out_size_, false);
  if (d.action == verdict::fail) return sluice::detail::fail_now(op_, d.error);
  if (d.action == verdict::complete) {
    skipped_ = true;
    return false;
  }
  // Nothing is received any more: lent buffers go back, readers end (with shut_down).
  if (receive) s_->close_receiver();
  return true;
}

result<std::size_t> disconnect_awaiter::end() {
  finish();
  if (skipped_) return std::size_t{0};
  settle();
  const char* what =
      op_.flags == sluice::detail::shutdown_receive ? "recv_disconnect" : "send_disconnect";
  if (op_.error) return error(op_.error, describe_outcome(s_->describe(what)));
  return std::size_t{0};
}

// Only a verdict of "proceed" reached the OS (or was cancelled before it): settle the
// side that begin() marked as shutting.
void disconnect_awaiter::settle() noexcept {
  const bool receive = op_.flags == sluice::detail::shutdown_receive;
  auto& life = s_->life_;
  const bool shutting =
      (receive ? life.receive_side() : life.send_side()) == proto::side_state::shutting;
  if (!shutting) return;
  if (receive)
    op_.error = life.settle_recv_disconnect(op_.error);
  else
    life.end_send_disconnect(!op_.error);
}

disconnect_awaiter::~disconnect_awaiter() {
  if (withdraw() && !skipped_) settle();
}

// ---------------------------------------------------------------- accept

accept_awaiter::accept_awaiter(acceptor& a) : a_(&a) {
  op_.ctx = a.io_;
  op_.code = sluice::detail::op_code::accept;
  op_.handle = a.handle_;
}

bool accept_awaiter::begin() {
  if (!a_->is_open()) return sluice::detail::fail_now(op_, errc::not_a_socket);
  op_.address = &peer_; // here, not in the constructor: the awaiter may have moved
  auto& q = a_->queue();
  if (!q.ready()) return true;
  q.take(op_); // accepted ahead
  return false;
}

bool accept_awaiter::wait_queue(std::coroutine_handle<> h, const sluice::detail::stop_ref& token) {
  return start_waiting(h, token, [this](sluice::detail::operation& op) { a_->queue_->wait(op); });
}

accept_awaiter::~accept_awaiter() {
  // Destroyed after it was handed a connection it never returned: the acceptor takes
  // it back for its next accept(), or it is closed.
  if (withdraw() && !op_.error && op_.res >= 0) {
    const auto h = static_cast<sluice::detail::native_handle>(op_.res);
    if (a_->is_open() && io_context::alive(a_->io_id_))
      a_->queue().put_back(h, peer_);
    else
      sys::close(h);
    op_.error = make_error_code(errc::operation_aborted); // nothing left to release
  }
}

result<stream> accept_awaiter::await_resume() {
  finish();
  if (op_.error) return error(op_.error, describe_outcome(fmt::format("accept on {}", a_->local_)));
  return stream(*a_->io_, static_cast<sluice::detail::native_handle>(op_.res),
                proto::stream_lifecycle::connected(), sys::from_storage(peer_));
}

} // namespace detail

// -------------------------------------------------------------- acceptor

acceptor::acceptor(acceptor&& o) noexcept
    : io_(o.io_), io_id_(o.io_id_),
      handle_(std::exchange(o.handle_, sluice::detail::invalid_handle)), local_(o.local_),
      queue_(std::exchange(o.queue_, nullptr)) {}

acceptor& acceptor::operator=(acceptor&& o) noexcept {
  if (this != &o) {
    close();
    io_ = o.io_;
    io_id_ = o.io_id_;
    handle_ = std::exchange(o.handle_, sluice::detail::invalid_handle);
    local_ = o.local_;
    queue_ = std::exchange(o.queue_, nullptr);
  }
  return *this;
}

acceptor::~acceptor() { close(); }

sluice::detail::accept_queue& acceptor::queue() {
  if (queue_ == nullptr) {
    queue_ = io_->acquire_accept_queue();
    queue_->open(handle_, io_->settings().accept_ahead);
  }
  return *queue_;
}

std::size_t acceptor::queued() const noexcept {
  return queue_ != nullptr && io_context::alive(io_id_) ? queue_->queued() : 0;
}

void acceptor::close() noexcept {
  if (!is_open()) return;
  if (io_ != nullptr && io_context::alive(io_id_)) {
    // Queued connections are closed, waiting accept()s end with operation_aborted.
    if (queue_ != nullptr) queue_->close();
    io_->backend().cancel_all(handle_);
  }
  queue_ = nullptr;
  sys::close(handle_);
  handle_ = sluice::detail::invalid_handle;
}

void acceptor::stop_accepting() {
  if (!is_open() || io_ == nullptr || !io_context::alive(io_id_)) return;
  queue().stop();
}

result<acceptor> acceptor::adopt(io_context& io, sluice::detail::native_handle h) {
  auto what = [h](const error& e) {
    return error(e.code(), fmt::format("adopt listening socket {}: {}", h, e.context()));
  };
  auto listening = sys::is_listening(h);
  if (!listening) return what(listening.error());
  if (!*listening)
    return error(std::make_error_code(std::errc::invalid_argument),
                 fmt::format("adopt listening socket {}: it is not listening", h));
  auto local = sys::local_endpoint(h);
  if (!local) return what(local.error());
  acceptor a;
  a.io_ = &io;
  a.io_id_ = io.id();
  a.handle_ = h;
  a.local_ = *local;
  return a;
}

sluice::detail::native_handle acceptor::release() noexcept {
  if (!is_open()) return sluice::detail::invalid_handle;
  if (io_ != nullptr && io_context::alive(io_id_)) {
    if (queue_ != nullptr) queue_->close();
    io_->backend().cancel_all(handle_);
  }
  queue_ = nullptr;
  return std::exchange(handle_, sluice::detail::invalid_handle);
}

result<acceptor> acceptor::bind(io_context& io, const endpoint& ep, int backlog) {
  return bind(io, ep, listen_options{.backlog = backlog, .reuse_port = false});
}

result<acceptor> acceptor::bind(io_context& io, const endpoint& ep, const listen_options& o) {
  auto h = sys::open_stream(ep);
  if (!h) return std::move(h).error();
  acceptor a;
  a.io_ = &io;
  a.io_id_ = io.id();
  a.handle_ = *h;
  if (ep.is_local()) {
    if (o.reuse_port)
      return error(errc::no_protocol_option,
                   fmt::format("listen on {}: SO_REUSEPORT is for IP sockets; share a "
                               "Unix-domain listener by passing it (local::send_fds)",
                               ep));
  } else if (auto r = sys::set_reuse_address(a.handle_, true); !r) {
    return std::move(r).error();
  }
  if (o.reuse_port) {
    if (auto r = sys::set_reuse_port(a.handle_, true); !r)
      return error(r.error().code(), fmt::format("listen on {}: {}", ep, r.error().context()));
  }
  auto bound = sys::bind(a.handle_, ep);
  if (!bound && bound.error() == errc::address_in_use && ep.is_local() && !ep.is_abstract() &&
      o.remove_stale_socket) {
    // A socket file is in the way: remove it if nobody accepts on it any more.
    if (auto r = sys::remove_stale_socket(ep); !r) return std::move(r).error();
    bound = sys::bind(a.handle_, ep);
  }
  if (!bound) return std::move(bound).error();
  if (auto r = sys::listen(a.handle_, o.backlog); !r)
    return error(r.error().code(), fmt::format("listen on {}", ep));
  auto local = sys::local_endpoint(a.handle_);
  if (!local) return std::move(local).error();
  a.local_ = *local;
  return a;
}

task<result<stream>> connect(io_context& io, std::vector<endpoint> eps,
                             std::chrono::milliseconds timeout) {
  if (eps.empty()) co_return error(errc::invalid_endpoint, "connect: no address to try");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<sluice::error> last;
  for (const endpoint& ep : eps) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto c = co_await with_timeout(stream::connect(io, ep), left);
    if (c) co_return std::move(*c);
    if (c.error() == errc::timed_out)
      co_return error(errc::timed_out, fmt::format("connect to {} did not complete within {} ms",
                                                   ep, timeout.count()));
    last = std::move(c).error();
  }
  if (!last)
    last = error(errc::timed_out, fmt::format("connect to {} did not complete within {} ms",
                                              eps.front(), timeout.count()));
  co_return std::move(*last);
}

} // namespace sluice::tcp
