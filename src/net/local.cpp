// sluice::local: Unix-domain listeners and connections, and descriptor passing.
// docs/local_sockets.md explains the choices: the stream and acceptor are TCP's own
// classes over an AF_UNIX socket; descriptors travel as SCM_RIGHTS control messages
// in one operation (recvmsg / sendmsg), never through the lent-buffer receiver, which
// would drop them.
#include <sluice/net/local.hpp>

#include "../backend/backend.hpp"
#include "../backend/socket_ops.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

#ifndef _WIN32
#include <sys/socket.h>
#endif

namespace sluice::local {

namespace sys = sluice::detail::sys;
using proto::verdict;

#ifndef _WIN32
static_assert(CMSG_SPACE(max_fds * sizeof(int)) <= detail::control_room,
              "control_room holds max_fds descriptors");
#endif

void unique_fd::reset(native_handle_type h) noexcept {
  if (h_ != sluice::detail::invalid_handle) sys::close(h_);
  h_ = h;
}

result<acceptor> bind(io_context& io, std::string_view path, const listen_options& options) {
  auto ep = endpoint::local(path);
  if (!ep) return std::move(ep).error();
  return acceptor::bind(io, *ep, options);
}

task<result<stream>> connect(io_context& io, std::string path) {
  auto ep = endpoint::local(path);
  if (!ep) co_return std::move(ep).error();
  co_return co_await stream::connect(io, *ep);
}

result<std::pair<stream, stream>> pair(io_context& io) {
  auto fds = sys::socket_pair();
  if (!fds) return std::move(fds).error();
  auto a = stream::adopt(io, fds->first);
  if (!a) {
    sys::close(fds->first);
    sys::close(fds->second);
    return std::move(a).error();
  }
  auto b = stream::adopt(io, fds->second);
  if (!b) {
    sys::close(fds->second);
    return std::move(b).error();
  }
  return std::pair<stream, stream>(std::move(*a), std::move(*b));
}

namespace detail {

namespace {
#ifdef _WIN32
constexpr const char* no_passing = "Windows has no SCM_RIGHTS descriptor passing";
#endif
} // namespace

// -------------------------------------------------------------- send_fds

send_fds_awaiter::send_fds_awaiter(tcp::stream& s, std::span<const std::byte> data,
                                   std::span<const native_handle_type> fds)
    : s_(&s), data_(data), fds_(fds) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::send_message;
  op_.handle = s.handle_;
}

send_fds_awaiter::send_fds_awaiter(send_fds_awaiter&& o) noexcept
    : io_awaiter(std::move(o)), s_(o.s_), data_(o.data_), fds_(o.fds_) {}

sluice::detail::op_queue* send_fds_awaiter::queue() noexcept { return &s_->sendq_; }

bool send_fds_awaiter::begin() {
  const auto d = s_->life_.begin_send();
  if (d.action != verdict::proceed) return sluice::detail::fail_now(op_, d.error);
#ifdef _WIN32
  refused_ = no_passing;
  op_.error = std::make_error_code(std::errc::operation_not_supported);
  return false;
#else
  if (data_.empty()) {
    refused_ = "a stream carries descriptors with a byte: data is empty";
    op_.error = std::make_error_code(std::errc::invalid_argument);
    return false;
  }
  if (fds_.size() > max_fds) {
    refused_ = "more descriptors than max_fds";
    op_.error = std::make_error_code(std::errc::argument_list_too_long);
    return false;
  }
  // Set here, not in the constructor: the awaiter may have moved.
  part_ = {const_cast<std::byte*>(data_.data()), data_.size()};
  msg_ = {};
  msg_.parts = &part_;
  msg_.count = 1;
  if (!fds_.empty()) {
    msg_.control = control_;
    msg_.control_length = sys::pack_fds(fds_.data(), fds_.size(), control_);
  }
  op_.buffer = &msg_;
  op_.on_complete = &send_fds_awaiter::on_complete;
  op_.owner = this;
  return true;
#endif
}

// A partial send: the descriptors went with the first byte; the rest follows as plain
// data, the coroutine still suspended.
void send_fds_awaiter::on_complete(sluice::detail::operation& op) {
  auto* self = static_cast<send_fds_awaiter*>(op.owner);
  if (!op.error && op.res > 0) {
    self->sent_ += static_cast<std::size_t>(op.res);
    if (self->sent_ < self->data_.size() &&
        self->s_->life_.begin_send().action == verdict::proceed) {
      self->part_ = {const_cast<std::byte*>(self->data_.data()) + self->sent_,
                     self->data_.size() - self->sent_};
      self->msg_.control = nullptr;
      self->msg_.control_length = 0;
      op.ctx->submit(op);
      return;
    }
  }
  op.waiter.resume();
}

result<std::size_t> send_fds_awaiter::end() {
  finish();
  if (refused_ != nullptr)
    return error(op_.error, fmt::format("{}: {} ({} descriptors, {} bytes; max_fds is {})",
                                        s_->describe("send_fds"), refused_, fds_.size(),
                                        data_.size(), max_fds));
  if (op_.error) return error(op_.error, describe_outcome(s_->describe("send_fds")));
  if (sent_ < data_.size()) {
    if (const auto d = s_->life_.begin_send(); d.action == verdict::fail)
      return error(d.error, s_->describe("send_fds"));
    return error(errc::broken_pipe, s_->describe("send_fds"));
  }
  return sent_;
}

// -------------------------------------------------------------- recv_fds

recv_fds_awaiter::recv_fds_awaiter(tcp::stream& s, std::span<std::byte> buf) : s_(&s), buf_(buf) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::recv_message;
  op_.handle = s.handle_;
}

recv_fds_awaiter::recv_fds_awaiter(recv_fds_awaiter&& o) noexcept
    : io_awaiter(std::move(o)), s_(o.s_), buf_(o.buf_) {}

bool recv_fds_awaiter::begin() {
  const auto d = s_->life_.begin_receive();
  if (d.action != verdict::proceed) return sluice::detail::fail_now(op_, d.error);
  began_ = true;
  msg_ = {};
  op_.buffer = &msg_;
  if (!s_->unread_.empty()) {
    // Bytes a destroyed receive had taken: they come first (their descriptors, if
    // any, were closed then).
    auto& u = s_->unread_;
    const std::size_t n = std::min(u.size(), buf_.size());
    std::copy_n(u.begin(), n, buf_.begin());
    u.erase(u.begin(), u.begin() + static_cast<std::ptrdiff_t>(n));
    op_.res = static_cast<std::int64_t>(n);
    op_.error = {};
    return false;
  }
#ifdef _WIN32
  refused_ = no_passing;
  op_.error = std::make_error_code(std::errc::operation_not_supported);
  return false;
#else
  if (s_->rx_ != nullptr) {
    refused_ = "the stream receives into lent buffers (recv_some or watch_receive was used), "
               "which would drop descriptors";
    op_.error = std::make_error_code(std::errc::invalid_argument);
    return false;
  }
  part_ = {buf_.data(), buf_.size()};
  msg_.parts = &part_;
  msg_.count = 1;
  msg_.control = control_;
  msg_.control_length = sizeof control_;
  return true;
#endif
}

recv_fds_awaiter::~recv_fds_awaiter() {
  if (withdraw() && !op_.error && op_.res >= 0 && op_.buffer == &msg_) {
    // Received, never seen: the stream keeps the bytes, the descriptors are closed.
    s_->unread_.insert(s_->unread_.begin(), buf_.begin(), buf_.begin() + op_.res);
    sys::close_fds(msg_.control, msg_.control_length);
    op_.error = make_error_code(errc::operation_aborted); // nothing left to release
  }
}

result<received> recv_fds_awaiter::end() {
  finish();
  if (!began_) return error(op_.error, s_->describe("recv_fds")); // rejected by the lifecycle
  if (refused_ != nullptr)
    return error(op_.error, fmt::format("{}: {}", s_->describe("recv_fds"), refused_));
  received out;
  std::vector<native_handle_type> fds;
  if (!op_.error) sys::unpack_fds(msg_.control, msg_.control_length, fds);
  out.fds.reserve(fds.size());
  for (auto h : fds)
    out.fds.emplace_back(h);
  // Once recv_disconnect has started (or the stream was closed), the lifecycle
  // overrides what came: bytes are discarded and descriptors closed (out.fds).
  if (auto ec = s_->life_.filter_receive()) {
    if (ec == errc::shut_down || !op_.error) return error(ec, s_->describe("recv_fds"));
    return error(op_.error, s_->describe("recv_fds"));
  }
  if (op_.error) return error(op_.error, describe_outcome(s_->describe("recv_fds")));
  out.bytes = static_cast<std::size_t>(op_.res);
  out.fds_truncated = msg_.control_truncated;
  return out;
}

} // namespace detail
} // namespace sluice::local
