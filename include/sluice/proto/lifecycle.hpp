// The stream lifecycle: the one place that decides the half-close rules.
//
// Sans-io (std only). Every backend asks this machine before it starts an operation on
// a stream and passes every completion through it, so the recv_disconnect contract of
// docs/architecture.md comes out identical whether the OS underneath is Linux (which still
// delivers queued and late data after shutdown(SHUT_RD)) or Windows (which does not).
//
// The rules, as data, are in lifecycle.cpp. Summary:
//  - A closed (or moved-from, never opened) stream answers not_a_socket to everything.
//  - Without a live runtime, recv_disconnect answers not_initialised.
//  - Pending disconnect data larger than the caller's buffer is buffer_too_small; the
//    data stays pending and nothing is shut.
//  - Before connect completes, receive/send/recv_disconnect answer not_connected.
//  - Once recv_disconnect has *started*, every receive — already pending or started
//    later — completes with shut_down and its bytes are discarded, whatever order the
//    completions arrive in. A second recv_disconnect while the first is in flight is
//    in_progress; after it succeeded, another one succeeds at once with no data.
//  - send_disconnect/shutdown_send shut the send side; later sends are shut_down.
//    Non-empty disconnect data on a transport that carries none is no_protocol_option.
#pragma once

#include <sluice/export.hpp>

#include <cstddef>
#include <cstdint>
#include <sluice/error.hpp>
#include <system_error>

namespace sluice::proto {

/// Where a stream's connection stands.
enum class connection_state : std::uint8_t {
  closed,      ///< closed, moved from, or never opened
  unconnected, ///< open, not connected
  connecting,  ///< a connect is in flight
  connected    ///< connected
};
/// Where one direction (receive or send) of a connected stream stands.
enum class side_state : std::uint8_t {
  open,     ///< usable
  shutting, ///< a shutdown of it is in flight
  shut      ///< shut down
};

/// What the caller must do after asking the lifecycle.
enum class verdict : std::uint8_t {
  proceed,  ///< start the operation on the OS
  complete, ///< succeed at once without touching the OS (e.g. a repeated recv_disconnect)
  fail,     ///< fail at once with the error returned alongside
};

/// The lifecycle's answer to "may this operation start?".
struct decision {
  verdict action; ///< what to do
  errc error{};   ///< meaningful when action == fail

  /// Same action and error.
  friend bool operator==(const decision&, const decision&) = default;
};

/// The half-close rules of a stream, in one place (the recv_disconnect contract of
/// docs/architecture.md as a state machine): every backend asks it before an operation
/// starts and filters completions through it.
class SLUICE_PROTO_API stream_lifecycle {
public:
  stream_lifecycle() = default; ///< closed: a default or moved-from stream
  /// An open socket, not connected.
  static stream_lifecycle opened() { return stream_lifecycle(connection_state::unconnected); }
  /// A connected socket (an accepted one, say).
  static stream_lifecycle connected() { return stream_lifecycle(connection_state::connected); }

  connection_state connection() const noexcept { return conn_; } ///< the connection's state
  side_state receive_side() const noexcept { return recv_; }     ///< the receive side's
  side_state send_side() const noexcept { return send_; }        ///< the send side's

  /// Before a connect.
  decision begin_connect() noexcept;
  /// After a connect, with whether it succeeded.
  void end_connect(bool ok) noexcept;

  /// receive: ask before starting, then pass the completion through filter_receive.
  /// (The open, connected case is answered here, inline: it is every receive's and
  /// send's; the tables in lifecycle.cpp decide the others.)
  decision begin_receive() const noexcept {
    return conn_ == connection_state::connected && recv_ == side_state::open
               ? decision{verdict::proceed}
               : refuse_receive();
  }
  /// Returns the error that replaces a completion (its bytes are then discarded), or
  /// an empty code to deliver the completion as it is. A receive that completes after
  /// recv_disconnect started is reported as shut down, even if it carries bytes (Linux
  /// delivers queued and late data; Windows does not).
  std::error_code filter_receive() const noexcept {
    if (delivers_receive()) return {};
    return make_error_code(conn_ == connection_state::closed ? errc::operation_aborted
                                                             : errc::shut_down);
  }
  /// The same answer as a bool: true when filter_receive() would deliver a completion as
  /// it is (no error_code made: for a receive's fast path).
  bool delivers_receive() const noexcept {
    return conn_ != connection_state::closed && recv_ == side_state::open;
  }

  /// Before a send.
  decision begin_send() const noexcept {
    return conn_ == connection_state::connected && send_ == side_state::open
               ? decision{verdict::proceed}
               : refuse_send();
  }

  /// recv_disconnect. `pending` is the size of the disconnect data the transport holds
  /// for the caller, `capacity` the caller's buffer: a buffer too small fails with
  /// buffer_too_small and changes nothing, so a retry with a larger one gets the data.
  decision begin_recv_disconnect(bool runtime_alive, std::size_t pending = 0,
                                 std::size_t capacity = 0) noexcept;
  /// After a recv_disconnect's shutdown, with whether it succeeded.
  void end_recv_disconnect(bool ok) noexcept;
  /// Settles a recv_disconnect from what the OS answered and returns its outcome. A
  /// connected stream whose connection already ended (both FINs exchanged, or reset)
  /// gets not_connected from shutdown(SHUT_RD) on Linux: its receive side is over
  /// anyway, so that is a success.
  std::error_code settle_recv_disconnect(std::error_code os) noexcept;

  /// Before a send_disconnect / shutdown_send with `data_size` bytes of disconnect
  /// data on a transport that carries it or not.
  decision begin_send_disconnect(std::size_t data_size, bool transport_carries_data) noexcept;
  /// After the send side's shutdown, with whether it succeeded.
  void end_send_disconnect(bool ok) noexcept;

  /// The stream was closed.
  void close() noexcept { *this = stream_lifecycle(); }

private:
  explicit stream_lifecycle(connection_state c) : conn_(c) {}
  decision refuse_receive() const noexcept; ///< begin_receive past the open case
  decision refuse_send() const noexcept;    ///< begin_send past the open case

  connection_state conn_ = connection_state::closed;
  side_state recv_ = side_state::open;
  side_state send_ = side_state::open;
};

} // namespace sluice::proto
