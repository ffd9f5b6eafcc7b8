// udp::socket. docs/udp.md explains the choices: every datagram is one sendmsg/recvmsg
// (op_code::send_message / recv_message, with the peer's address in the message), or,
// after recv_some_from(), a completion of the socket's receiver (recv_lent with
// recv_datagram: a multishot recvmsg on io_uring); a datagram that does not fit is an
// error naming its size, never a silent cut; a datagram received for a coroutine that
// was destroyed stays with the socket.
#include <sluice/net/udp.hpp>

#include "../backend/backend.hpp"
#include "../backend/socket_ops.hpp"
#include "heap_lend.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace sluice::udp {

namespace sys = sluice::detail::sys;

socket::socket(io_context& io, native_handle_type h) : io_(&io), io_id_(io.id()), handle_(h) {}

socket::socket(socket&& o) noexcept
    : io_(o.io_), io_id_(o.io_id_),
      handle_(std::exchange(o.handle_, sluice::detail::invalid_handle)),
      connected_(std::exchange(o.connected_, false)), peer_(o.peer_), unread_(std::move(o.unread_)),
      rx_(std::exchange(o.rx_, nullptr)) {}

socket& socket::operator=(socket&& o) noexcept {
  if (this != &o) {
    close();
    io_ = o.io_;
    io_id_ = o.io_id_;
    handle_ = std::exchange(o.handle_, sluice::detail::invalid_handle);
    connected_ = std::exchange(o.connected_, false);
    peer_ = o.peer_;
    unread_ = std::move(o.unread_);
    rx_ = std::exchange(o.rx_, nullptr);
  }
  return *this;
}

socket::~socket() { close(); }

sluice::detail::receiver& socket::receiver() {
  if (rx_ == nullptr) {
    rx_ = io_->acquire_receiver();
    rx_->open(handle_, true);
  }
  return *rx_;
}

void socket::close_receiver() noexcept {
  if (rx_ != nullptr) std::exchange(rx_, nullptr)->close();
}

result<socket> socket::bind(io_context& io, const endpoint& ep, const bind_options& o) {
  if (ep.is_local())
    return error(errc::invalid_endpoint, fmt::format("udp bind {}: UDP takes an IP address", ep));
  auto h = sys::open_datagram(ep);
  if (!h) return std::move(h).error();
  socket s(io, *h);
  if (o.reuse_address) {
    if (auto r = sys::set_reuse_address(s.handle_, true); !r)
      return error(r.error().code(), fmt::format("udp bind {}: {}", ep, r.error().context()));
  }
  if (auto r = sys::bind(s.handle_, ep); !r)
    return error(r.error().code(), "udp " + r.error().context());
  return s;
}

result<socket> socket::open(io_context& io, endpoint::family f) {
  if (f == endpoint::family::local)
    return error(errc::invalid_endpoint, "udp open: UDP takes an IP family");
  auto h = sys::open_datagram(f == endpoint::family::v6 ? endpoint::loopback_v6(0) : endpoint());
  if (!h) return std::move(h).error();
  return socket(io, *h);
}

result<void> socket::connect(const endpoint& peer) {
  if (!is_open()) return error(errc::not_a_socket, fmt::format("udp connect to {}", peer));
  if (auto r = sys::connect_now(handle_, peer); !r)
    return error(r.error().code(), "udp " + r.error().context());
  connected_ = true;
  peer_ = peer;
  return {};
}

void socket::close() noexcept {
  if (!is_open()) return;
  unread_.clear();
  if (io_ != nullptr && io_context::alive(io_id_)) close_receiver();
  // Pending operations on this handle must end before the descriptor can be reused.
  if (io_ != nullptr && io_context::alive(io_id_)) io_->backend().cancel_all(handle_);
  sys::close(handle_);
  handle_ = sluice::detail::invalid_handle;
  connected_ = false;
}

result<endpoint> socket::local_endpoint() const {
  if (!is_open()) return error(errc::not_a_socket, "udp local_endpoint");
  return sys::local_endpoint(handle_);
}

result<endpoint> socket::remote_endpoint() const {
  if (!is_open()) return error(errc::not_a_socket, "udp remote_endpoint");
  if (!connected_) return error(errc::not_connected, "udp remote_endpoint");
  return peer_;
}

namespace detail {

namespace {
// "recv_from on 127.0.0.1:5000" / "recv (peer 127.0.0.1:6000)".
std::string describe(const socket& s, bool connected, const char* op) {
  if (connected) {
    if (auto p = s.remote_endpoint()) return fmt::format("udp {} (peer {})", op, *p);
  }
  if (auto l = s.local_endpoint()) return fmt::format("udp {} on {}", op, *l);
  return fmt::format("udp {}", op);
}

// A datagram the receiver lent (op.buffer: its pool buffer, in the layout of
// sluice::detail::datagram_header).
struct lent_view {
  const std::byte* bytes;
  std::size_t stored; // bytes in the buffer
  std::size_t whole;  // the datagram's size, where the OS told it (else `stored`)
  bool truncated;     // it did not fit the pool buffer
  endpoint from;
};

lent_view view_lent(const sluice::detail::operation& op, const socket& s) {
  using sluice::detail::datagram_header;
  const auto* base = static_cast<const std::byte*>(op.buffer);
  datagram_header h;
  std::memcpy(&h, base, sizeof h);
  lent_view v{};
  v.bytes = base + sluice::detail::datagram_payload_offset;
  v.stored = static_cast<std::size_t>(op.res) - sluice::detail::datagram_payload_offset;
  v.truncated = (h.flags & sluice::detail::datagram_truncated) != 0;
  v.whole = std::max<std::size_t>(h.whole_size, v.stored);
  sluice::detail::address_storage a;
  a.length = std::min<std::uint32_t>(h.name_length, sluice::detail::datagram_name_room);
  std::memcpy(a.bytes, base + sizeof(datagram_header), a.length);
  if (a.length > 0) {
    v.from = sys::from_storage(a);
  } else if (auto p = s.remote_endpoint()) {
    v.from = *p;
  }
  return v;
}

// The room a pool buffer leaves for a datagram.
std::size_t datagram_room(io_context& io) {
  const std::size_t size = io.settings().recv_buffer_size;
  return size > sluice::detail::datagram_payload_offset
             ? size - sluice::detail::datagram_payload_offset
             : 0;
}
} // namespace

// --------------------------------------------------------------- receive

receive_awaiter::receive_awaiter(socket& s, std::span<std::byte> buf, bool connected)
    : s_(&s), buf_(buf), connected_(connected) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::recv_message;
  op_.handle = s.handle_;
}

receive_awaiter::receive_awaiter(receive_awaiter&& o) noexcept
    : io_awaiter(std::move(o)), s_(o.s_), buf_(o.buf_), connected_(o.connected_) {}

bool receive_awaiter::begin() {
  if (!s_->is_open()) return sluice::detail::fail_now(op_, errc::not_a_socket);
  if (connected_ && !s_->connected_) return sluice::detail::fail_now(op_, errc::not_connected);
  began_ = true;
  msg_ = {};
  op_.buffer = &msg_;
  if (s_->unread_.empty() && s_->rx_ != nullptr) {
    // The socket receives into lent buffers now: take from them, in order.
    via_receiver_ = true;
    op_.code = sluice::detail::op_code::recv_lent;
    op_.handle = s_->handle_;
    if (!s_->rx_->ready()) return true;
    s_->rx_->take(op_);
    lent_ = true;
    copy_out();
    return false;
  }
  if (!s_->unread_.empty()) {
    // A datagram a destroyed receive had taken: it comes first.
    auto k = std::move(s_->unread_.front());
    s_->unread_.erase(s_->unread_.begin());
    const std::size_t n = std::min(k.bytes.size(), buf_.size());
    std::copy_n(k.bytes.begin(), n, buf_.begin());
    sys::to_storage(k.from, peer_);
    msg_.truncated = k.cut || k.whole > n;
    op_.res = static_cast<std::int64_t>(k.whole);
    op_.error = {};
    return false;
  }
  part_ = {buf_.data(), buf_.size()};
  msg_.parts = &part_;
  msg_.count = 1;
  msg_.peer = &peer_;
  msg_.datagram = true;
  return true;
}

bool receive_awaiter::wait_receiver(std::coroutine_handle<> h,
                                    const sluice::detail::stop_ref& token) {
  lent_ = true; // whatever the receiver hands over is lent
  return start_waiting(h, token, [this](sluice::detail::operation& op) { s_->rx_->wait(op); });
}

void receive_awaiter::copy_out() noexcept {
  if (!std::exchange(lent_, false) || op_.error || op_.res <= 0) return;
  const lent_view v = view_lent(op_, *s_);
  const std::size_t n = std::min(v.stored, buf_.size());
  std::memcpy(buf_.data(), v.bytes, n);
  sys::to_storage(v.from, peer_);
  msg_.truncated = v.truncated || v.stored > buf_.size();
  op_.res = static_cast<std::int64_t>(v.truncated ? v.whole : v.stored);
  s_->io_->backend().buffers().give_back(op_.lent_id);
  op_.buffer = buf_.data(); // copied: nothing lent any more
}

receive_awaiter::~receive_awaiter() {
  const bool withdrawn = withdraw();
  if (withdrawn && via_receiver_) copy_out();
  if (withdrawn && !op_.error && began_) {
    // Received, never seen: the socket keeps the datagram for its next receive.
    const auto whole = static_cast<std::size_t>(op_.res);
    const std::size_t n = std::min(whole, buf_.size());
    socket::kept k;
    k.bytes.assign(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    k.whole = whole;
    k.cut = msg_.truncated;
    k.from = peer_.length > 0 ? sys::from_storage(peer_) : s_->peer_;
    s_->unread_.insert(s_->unread_.begin(), std::move(k));
    op_.error = make_error_code(errc::operation_aborted); // nothing left to release
  }
}

result<datagram> receive_awaiter::take() {
  finish();
  if (via_receiver_) copy_out();
  const char* op = connected_ ? "recv" : "recv_from";
  if (op_.error) return error(op_.error, describe_outcome(describe(*s_, connected_, op)));
  const auto whole = static_cast<std::size_t>(op_.res);
  const std::size_t n = std::min(whole, buf_.size());
  datagram d;
  d.size = n;
  d.from = peer_.length > 0 ? sys::from_storage(peer_) : s_->peer_;
  if (msg_.truncated || whole > buf_.size()) {
    // The OS told the whole size (Linux), or only that it was bigger (Windows).
    const std::string size =
        whole > buf_.size() ? fmt::format("of {} bytes", whole) : std::string("larger than that");
    return error(errc::message_too_large,
                 fmt::format("udp {} from {}: a datagram {} does not fit the {}-byte buffer "
                             "(its first {} bytes are in the buffer)",
                             op, d.from, size, buf_.size(), n));
  }
  return d;
}

result<std::size_t> recv_awaiter::await_resume() {
  auto d = take();
  if (!d) return std::move(d).error();
  return d->size;
}

// --------------------------------------------------------- recv_some_from

recv_some_from_awaiter::recv_some_from_awaiter(socket& s) : s_(&s) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::recv_lent;
  op_.handle = s.handle_;
}

bool recv_some_from_awaiter::begin() {
  if (!s_->is_open()) return sluice::detail::fail_now(op_, errc::not_a_socket);
  if (datagram_room(*s_->io_) == 0) return sluice::detail::fail_now(op_, errc::buffer_too_small);
  began_ = true;
  op_.handle = s_->handle_;
  if (!s_->unread_.empty()) {
    // A datagram a destroyed receive had taken: it comes first.
    auto k = std::move(s_->unread_.front());
    s_->unread_.erase(s_->unread_.begin());
    from_kept_ = true;
    kept_from_ = k.from;
    kept_cut_ = k.cut || k.whole > k.bytes.size();
    kept_whole_ = std::max(k.whole, k.bytes.size());
    if (!kept_cut_) kept_ = sluice::detail::heap_lend::make(std::move(k.bytes));
    op_.res = 0;
    op_.error = {};
    return false;
  }
  auto& rx = s_->receiver();
  if (!rx.ready()) return true;
  rx.take(op_);
  return false;
}

bool recv_some_from_awaiter::wait_receiver(std::coroutine_handle<> h,
                                           const sluice::detail::stop_ref& token) {
  return start_waiting(h, token, [this](sluice::detail::operation& op) { s_->rx_->wait(op); });
}

recv_some_from_awaiter::~recv_some_from_awaiter() {
  if (withdraw() && !op_.error && op_.res > 0 && !from_kept_) {
    // Received, never seen: first in line for the socket's next receive.
    if (s_->rx_ != nullptr)
      s_->rx_->put_back(op_);
    else
      s_->io_->backend().buffers().give_back(op_.lent_id);
    op_.error = make_error_code(errc::operation_aborted); // nothing left to release
  }
}

result<lent_datagram> recv_some_from_awaiter::await_resume() {
  finish();
  // Named on the error paths only: describing the socket costs a getsockname().
  auto what = [this] { return describe(*s_, false, "recv_some_from"); };
  if (!began_ && op_.error == errc::buffer_too_small)
    return error(errc::buffer_too_small,
                 fmt::format("{}: the io_context's receive buffers ({} bytes, options "
                             "recv_buffer_size) leave no room for a datagram after its {}-byte "
                             "header and sender",
                             what(), s_->io_->settings().recv_buffer_size,
                             sluice::detail::datagram_payload_offset));
  if (!began_) return error(op_.error, what());
  if (from_kept_) {
    if (kept_cut_)
      return error(errc::message_too_large,
                   fmt::format("{} from {}: a datagram of {} bytes was cut by the receive that "
                               "took it (its coroutine was destroyed)",
                               what(), kept_from_, kept_whole_));
    return lent_datagram{std::move(kept_), kept_from_};
  }
  if (op_.error) return error(op_.error, describe_outcome(what()));
  const lent_view v = view_lent(op_, *s_);
  auto& pool = s_->io_->backend().buffers();
  if (v.truncated) {
    pool.give_back(op_.lent_id);
    const std::string size =
        v.whole > v.stored ? fmt::format("of {} bytes", v.whole) : std::string("larger than that");
    return error(errc::message_too_large,
                 fmt::format("{} from {}: a datagram {} does not fit a receive buffer of the "
                             "io_context's pool ({} bytes for the datagram: options "
                             "recv_buffer_size {}, less {} for its header and sender)",
                             what(), v.from, size, v.stored, s_->io_->settings().recv_buffer_size,
                             sluice::detail::datagram_payload_offset));
  }
  return lent_datagram{lent_buffer(pool, op_.lent_id, v.bytes, v.stored), v.from};
}

// ------------------------------------------------------------------ send

send_awaiter::send_awaiter(socket& s, std::span<const std::byte> data, const endpoint* to)
    : s_(&s), data_(data), to_(to != nullptr ? *to : endpoint()), has_to_(to != nullptr) {
  op_.ctx = s.io_;
  op_.code = sluice::detail::op_code::send_message;
  op_.handle = s.handle_;
}

send_awaiter::send_awaiter(send_awaiter&& o) noexcept
    : io_awaiter(std::move(o)), s_(o.s_), data_(o.data_), to_(o.to_), has_to_(o.has_to_) {}

bool send_awaiter::begin() {
  if (!s_->is_open()) return sluice::detail::fail_now(op_, errc::not_a_socket);
  if (!has_to_ && !s_->connected_) return sluice::detail::fail_now(op_, errc::not_connected);
  // Set here, not in the constructor: the awaiter may have moved.
  part_ = {const_cast<std::byte*>(data_.data()), data_.size()};
  msg_ = {};
  msg_.parts = &part_;
  msg_.count = 1;
  if (has_to_) {
    sys::to_storage(to_, addr_);
    msg_.peer = &addr_;
  }
  op_.buffer = &msg_;
  return true;
}

result<std::size_t> send_awaiter::await_resume() {
  finish();
  if (op_.error) {
    const std::string what =
        has_to_ ? fmt::format("udp send_to {} ({} bytes)", to_, data_.size())
                : fmt::format("{} ({} bytes)", describe(*s_, true, "send"), data_.size());
    return error(op_.error, describe_outcome(what));
  }
  return static_cast<std::size_t>(op_.res);
}

} // namespace detail
} // namespace sluice::udp
