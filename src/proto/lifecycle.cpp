// Rule 1: everything that decides what a stream operation does in a given state lives
// here, in these tables. Backends only carry out the verdicts.
#include <sluice/proto/lifecycle.hpp>

namespace sluice::proto {
namespace {

constexpr decision go{verdict::proceed};
constexpr decision done{verdict::complete};
constexpr decision fail(errc e) { return {verdict::fail, e}; }

// Per connection state, the verdict for operations that need a connection.
// Index: connection_state (closed, unconnected, connecting, connected).
constexpr decision needs_connection[] = {
    fail(errc::not_a_socket),
    fail(errc::not_connected),
    fail(errc::not_connected),
    go,
};

// On a connected stream, by the state of the side the operation uses.
// Index: side_state (open, shutting, shut).
constexpr decision receive_by_side[] = {go, fail(errc::shut_down), fail(errc::shut_down)};
constexpr decision send_by_side[] = {go, fail(errc::shut_down), fail(errc::shut_down)};
constexpr decision recv_disconnect_by_side[] = {go, fail(errc::in_progress), done};
constexpr decision send_disconnect_by_side[] = {go, fail(errc::in_progress), done};

constexpr decision connect_by_state[] = {
    fail(errc::not_a_socket),     // closed
    go,                           // unconnected
    fail(errc::in_progress),      // connecting
    fail(errc::already_connected) // connected
};

template <std::size_t N, class E> constexpr decision at(const decision (&t)[N], E e) {
  return t[static_cast<std::size_t>(e)];
}

} // namespace

decision stream_lifecycle::begin_connect() noexcept {
  const decision d = at(connect_by_state, conn_);
  if (d.action == verdict::proceed) conn_ = connection_state::connecting;
  return d;
}

void stream_lifecycle::end_connect(bool ok) noexcept {
  if (conn_ == connection_state::connecting)
    conn_ = ok ? connection_state::connected : connection_state::unconnected;
}

decision stream_lifecycle::refuse_receive() const noexcept {
  if (const decision d = at(needs_connection, conn_); d.action != verdict::proceed) return d;
  return at(receive_by_side, recv_);
}

decision stream_lifecycle::refuse_send() const noexcept {
  if (const decision d = at(needs_connection, conn_); d.action != verdict::proceed) return d;
  return at(send_by_side, send_);
}

decision stream_lifecycle::begin_recv_disconnect(bool runtime_alive, std::size_t pending,
                                                 std::size_t capacity) noexcept {
  if (conn_ == connection_state::closed) return fail(errc::not_a_socket);
  if (!runtime_alive) return fail(errc::not_initialised);
  if (const decision d = at(needs_connection, conn_); d.action != verdict::proceed) return d;
  if (recv_ == side_state::open && pending > capacity) return fail(errc::buffer_too_small);
  const decision d = at(recv_disconnect_by_side, recv_);
  if (d.action == verdict::proceed) recv_ = side_state::shutting;
  return d;
}

void stream_lifecycle::end_recv_disconnect(bool ok) noexcept {
  if (recv_ == side_state::shutting) recv_ = ok ? side_state::shut : side_state::open;
}

std::error_code stream_lifecycle::settle_recv_disconnect(std::error_code os) noexcept {
  if (os == errc::not_connected && conn_ == connection_state::connected) os.clear();
  end_recv_disconnect(!os);
  return os;
}

decision stream_lifecycle::begin_send_disconnect(std::size_t data_size,
                                                 bool transport_carries_data) noexcept {
  if (const decision d = at(needs_connection, conn_); d.action != verdict::proceed) return d;
  if (data_size != 0 && !transport_carries_data) return fail(errc::no_protocol_option);
  const decision d = at(send_disconnect_by_side, send_);
  if (d.action == verdict::proceed) send_ = side_state::shutting;
  return d;
}

void stream_lifecycle::end_send_disconnect(bool ok) noexcept {
  if (send_ == side_state::shutting) send_ = ok ? side_state::shut : side_state::open;
}

} // namespace sluice::proto
