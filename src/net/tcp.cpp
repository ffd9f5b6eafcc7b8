#include <sluice/net/tcp.hpp>

#include "../backend/backend.hpp"
#include "../backend/socket_ops.hpp"

#include <fmt/format.h>
#include <sluice/scope.hpp>
#include <sluice/timer.hpp>

namespace sluice::tcp {

namespace sys = sluice::detail::sys;
using proto::verdict;

// ---------------------------------------------------------------- stream

stream::stream(io_context& io, native_handle_type h, proto::stream_lifecycle life, endpoint peer)
    : io_(&io), io_id_(io.id()), handle_(h), life_(life), peer_(peer) {}

stream::stream(stream&& o) noexcept
    : io_(o.io_), io_id_(o.io_id_),
      handle_(std::exchange(o.handle_, sluice::detail::invalid_handle)),
      life_(std::exchange(o.life_, proto::stream_lifecycle())), peer_(o.peer_) {}

stream& stream::operator=(stream&& o) noexcept {
  if (this != &o) {
    close();
    io_ = o.io_;
    io_id_ = o.io_id_;
    handle_ = std::exchange(o.handle_, sluice::detail::invalid_handle);
    life_ = std::exchange(o.life_, proto::stream_lifecycle());
    peer_ = o.peer_;
  }
  return *this;
}

stream::~stream() { close(); }

void stream::close() noexcept {
  if (!is_open()) return;
  // Pending operations on this handle must end before the fd number can be reused.
  if (io_ != nullptr && io_context::alive(io_id_)) io_->backend().cancel_all(handle_);
  sys::close(handle_);
  handle_ = sluice::detail::invalid_handle;
  life_.close();
}

void stream::abort() noexcept {
  if (!is_open()) return;
  if (io_ != nullptr && io_context::alive(io_id_)) io_->backend().cancel_all(handle_);
  sys::abort(handle_);
  handle_ = sluice::detail::invalid_handle;
  life_.close();
}

void stream::send_finished() noexcept {
  if (--sends_in_flight_ == 0 && drain_waiter_ != nullptr)
    static_cast<sluice::detail::wait_list*>(drain_waiter_)->notify();
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
  // 1. Sends already started elsewhere finish first, so nothing queued is lost.
  if (sends_in_flight_ != 0) {
    sluice::detail::wait_list drained(*io_);
    drain_waiter_ = &drained;
    auto r = co_await with_timeout(as_task(drained.wait(false)), left());
    drain_waiter_ = nullptr;
    if (!r) {
      give_up(r.error() == errc::timed_out);
      co_return rep;
    }
  }
  // 2. FIN.
  if (auto r = co_await send_disconnect(); !r && r.error() != errc::shut_down) {
    give_up(false);
    co_return rep;
  }
  // 3. Discard until the peer's FIN, so that its late data cannot make our kernel
  //    answer with an RST that would destroy what it has not read yet.
  std::array<std::byte, 16 * 1024> sink;
  for (;;) {
    if (rep.bytes_discarded > o.max_discard) {
      give_up(false);
      break;
    }
    auto n = co_await with_timeout(recv(sink), left());
    if (!n) {
      if (n.error() == errc::shut_down) { // receive side already shut: nothing to wait for
        close();
        break;
      }
      give_up(n.error() == errc::timed_out);
      break;
    }
    if (*n == 0) {
      rep.peer_fin_seen = true;
      close();
      break;
    }
    rep.bytes_discarded += *n;
  }
  co_return rep;
}

result<stream> stream::open(io_context& io, endpoint::family f) {
  endpoint family_of = f == endpoint::family::v6 ? endpoint::loopback_v6(0) : endpoint();
  auto h = sys::open_tcp(family_of);
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

result<void> stream::set_nodelay(bool on) {
  if (!is_open()) return error(errc::not_a_socket, "set_nodelay");
  return sys::set_nodelay(handle_, on);
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

recv_awaiter::recv_awaiter(stream& s, std::span<std::byte> buf) : s_(&s) {
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
  return true;
}

result<std::size_t> recv_awaiter::end() {
  finish();
  if (!began_) return error(op_.error, s_->describe("recv")); // rejected by the lifecycle
  // Once recv_disconnect has started (or the stream was closed), the lifecycle
  // overrides whatever the OS delivered: the bytes are discarded.
  if (auto ec = s_->life_.filter_receive()) {
    if (ec == errc::shut_down || !op_.error) return error(ec, s_->describe("recv"));
    return error(op_.error, s_->describe("recv"));
  }
  if (op_.error) return error(op_.error, s_->describe("recv"));
  return static_cast<std::size_t>(op_.res);
}

// ------------------------------------------------------------------ send

send_awaiter::send_awaiter(stream& s, std::span<const std::byte> buf) : s_(&s) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::send;
  op_.handle = s.handle_;
  op_.buffer = const_cast<std::byte*>(buf.data());
  op_.length = buf.size();
}

bool send_awaiter::begin() {
  const auto d = s_->life_.begin_send();
  if (d.action != verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  s_->send_started();
  counted_ = true;
  return true;
}

result<std::size_t> send_awaiter::end() {
  finish();
  if (counted_) s_->send_finished();
  if (op_.error) return error(op_.error, s_->describe("send"));
  return static_cast<std::size_t>(op_.res);
}

// -------------------------------------------------------------- send_all

send_all_awaiter::send_all_awaiter(stream& s, std::span<const std::byte> buf)
    : s_(&s), total_(buf.size()) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::send;
  op_.handle = s.handle_;
  op_.buffer = const_cast<std::byte*>(buf.data());
  op_.length = buf.size();
}

bool send_all_awaiter::begin() {
  const auto d = s_->life_.begin_send();
  if (d.action != verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  if (total_ == 0) return false; // nothing to send: complete at once
  s_->send_started();
  counted_ = true;
  // Set here, not in the constructor: the awaiter may have moved.
  op_.on_complete = &send_all_awaiter::on_complete;
  op_.owner = this;
  return true;
}

void send_all_awaiter::on_complete(sluice::detail::operation& op) {
  auto* self = static_cast<send_all_awaiter*>(op.owner);
  if (!op.error && op.res > 0) {
    self->sent_ += static_cast<std::size_t>(op.res);
    if (self->sent_ < self->total_ && self->s_->life_.begin_send().action == verdict::proceed) {
      op.buffer = static_cast<std::byte*>(op.buffer) + op.res;
      op.length -= static_cast<std::size_t>(op.res);
      op.ctx->submit(op); // the rest; the coroutine stays suspended
      return;
    }
  }
  op.waiter.resume();
}

result<std::size_t> send_all_awaiter::end() {
  finish();
  if (counted_) s_->send_finished();
  if (op_.error) return error(op_.error, s_->describe("send_all"));
  if (sent_ < total_ && total_ != 0) {
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
  const bool was_connecting = s_->life_.connection() == proto::connection_state::connecting;
  s_->life_.end_connect(!op_.error);
  if (op_.error) return error(op_.error, fmt::format("connect to {}", target_));
  if (was_connecting) s_->peer_ = target_;
  return {};
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
  return true;
}

result<std::size_t> disconnect_awaiter::end() {
  finish();
  if (skipped_) return std::size_t{0};
  const bool receive = op_.flags == sluice::detail::shutdown_receive;
  const char* what = receive ? "recv_disconnect" : "send_disconnect";
  // Only a verdict of "proceed" reached the OS (or was cancelled before it): settle
  // the side that begin() marked as shutting.
  auto& life = s_->life_;
  const bool shutting =
      (receive ? life.receive_side() : life.send_side()) == proto::side_state::shutting;
  if (shutting) {
    if (receive)
      op_.error = life.settle_recv_disconnect(op_.error);
    else
      life.end_send_disconnect(!op_.error);
  }
  if (op_.error) return error(op_.error, s_->describe(what));
  return std::size_t{0};
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
  return true;
}

result<stream> accept_awaiter::await_resume() {
  finish();
  if (op_.error) return error(op_.error, fmt::format("accept on {}", a_->local_));
  return stream(*a_->io_, static_cast<sluice::detail::native_handle>(op_.res),
                proto::stream_lifecycle::connected(), sys::from_storage(peer_));
}

} // namespace detail

// -------------------------------------------------------------- acceptor

acceptor::acceptor(acceptor&& o) noexcept
    : io_(o.io_), io_id_(o.io_id_),
      handle_(std::exchange(o.handle_, sluice::detail::invalid_handle)), local_(o.local_) {}

acceptor& acceptor::operator=(acceptor&& o) noexcept {
  if (this != &o) {
    close();
    io_ = o.io_;
    io_id_ = o.io_id_;
    handle_ = std::exchange(o.handle_, sluice::detail::invalid_handle);
    local_ = o.local_;
  }
  return *this;
}

acceptor::~acceptor() { close(); }

void acceptor::close() noexcept {
  if (!is_open()) return;
  if (io_ != nullptr && io_context::alive(io_id_)) io_->backend().cancel_all(handle_);
  sys::close(handle_);
  handle_ = sluice::detail::invalid_handle;
}

result<acceptor> acceptor::bind(io_context& io, const endpoint& ep, int backlog) {
  auto h = sys::open_tcp(ep);
  if (!h) return std::move(h).error();
  acceptor a;
  a.io_ = &io;
  a.io_id_ = io.id();
  a.handle_ = *h;
  if (auto r = sys::set_reuse_address(a.handle_, true); !r) return std::move(r).error();
  if (auto r = sys::bind(a.handle_, ep); !r) return std::move(r).error();
  if (auto r = sys::listen(a.handle_, backlog); !r)
    return error(r.error().code(), fmt::format("listen on {}", ep));
  auto local = sys::local_endpoint(a.handle_);
  if (!local) return std::move(local).error();
  a.local_ = *local;
  return a;
}

} // namespace sluice::tcp
