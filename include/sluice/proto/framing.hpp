// The sluice framing protocol, sans-io: length-prefixed messages and a CLOSE frame
// that carries disconnect data. The wire format is docs/framing.md.
//
//   framing::connection c;
//   c.receive_data(bytes);                  // buffer what the transport delivered
//   while (true) {
//     auto ev = c.next_event();             // need_data / message / peer_close /
//     ...                                   // protocol_error / end_of_stream
//   }
//   c.send_message(payload, out);           // append a DATA frame to `out`
//   c.send_close(reason, out);              // append the CLOSE frame
//
// Errors the peer causes are events (protocol_error, named by framing::violation);
// misuse by the local side is a framing::local_error exception — different types, as
// in h11. No sockets, no clocks, no OS headers.
#pragma once

#include <sluice/export.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace sluice::proto::framing {

inline constexpr std::size_t header_size = 5; ///< type (1) + big-endian length (4)
using header = std::array<std::byte, header_size>;

/// The first byte of a frame.
enum class frame_type : std::uint8_t {
  data = 0x01, ///< a message
  close = 0x02 ///< the last frame, carrying the disconnect data
};

/// What a connection accepts from its peer (and lets its user send).
struct limits {
  std::size_t max_message = 16u << 20;    ///< payload of one DATA frame
  std::size_t max_disconnect_data = 4096; ///< payload of the CLOSE frame
};
inline constexpr std::size_t hard_max_message = 1u << 30; ///< limits are clamped to this

/// What the peer did wrong (each one ends the connection).
enum class violation : std::uint8_t {
  unknown_frame_type,        ///< type byte is neither DATA nor CLOSE
  message_too_large,         ///< DATA length above limits::max_message
  disconnect_data_too_large, ///< CLOSE length above limits::max_disconnect_data
  frame_after_close,         ///< any byte after the CLOSE frame
  truncated_frame,           ///< end of stream in the middle of a frame
};
SLUICE_PROTO_API const char* to_string(violation v) noexcept;

/// Event: nothing complete is buffered; feed more bytes.
struct need_data {};
/// Event: one message.
struct message {
  std::span<const std::byte> payload; ///< valid until the next receive_data()
};
/// Event: the peer's CLOSE frame, with its disconnect data.
struct peer_close {
  std::span<const std::byte> data; ///< the disconnect data; valid as long as the connection
};
/// Event: the peer broke the protocol; the connection is failed.
struct protocol_error {
  violation what;          ///< which rule
  std::string description; ///< "DATA frame of 20000000 bytes exceeds the limit of 16777216"
};
/// Event: the transport ended cleanly after the peer's CLOSE, or without one (then
/// peer_closed() is false).
struct end_of_stream {};

using event = std::variant<need_data, message, peer_close, protocol_error, end_of_stream>;

/// Local misuse: sending after close, a message above the limit.
class SLUICE_PROTO_API local_error : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

/// One end of a framing connection, sans-io: bytes in (receive_data), events out
/// (next_event), frames out into a caller's buffer (send_message, send_close).
class SLUICE_PROTO_API connection {
public:
  /// A connection that enforces `l`.
  explicit connection(limits l = {});

  // --- inputs
  /// Buffers bytes received from the transport.
  void receive_data(std::span<const std::byte> bytes);
  /// The transport ended (a truncated frame is then a protocol_error).
  void receive_eof() noexcept { eof_ = true; }

  // --- outputs
  /// The next event: a message, the peer's close, an error, end_of_stream, or need_data.
  event next_event();

  /// The header of a DATA frame carrying `payload_size` bytes, for a caller that sends
  /// the payload from where it lies (a gather send). Checks as send_message.
  header message_header(std::size_t payload_size);
  /// The header of the CLOSE frame; the connection is locally closed afterwards.
  /// Checks as send_close.
  header close_header(std::size_t data_size);

  /// Appends a DATA frame to `out`. Throws local_error after send_close() or when
  /// `payload` exceeds max_message.
  void send_message(std::span<const std::byte> payload, std::vector<std::byte>& out);
  /// Appends the CLOSE frame with `disconnect_data`. Throws local_error when called twice
  /// or when the data exceeds max_disconnect_data.
  void send_close(std::span<const std::byte> disconnect_data, std::vector<std::byte>& out);

  // --- state
  /// The peer's CLOSE frame has been read.
  bool peer_closed() const noexcept { return peer_closed_; }
  /// Our CLOSE frame has been written (nothing may be sent after it).
  bool local_closed() const noexcept { return local_closed_; }
  /// The peer broke the protocol.
  bool failed() const noexcept { return failed_; }
  /// The peer's disconnect data once peer_closed().
  std::span<const std::byte> disconnect_data() const noexcept { return close_data_; }
  /// The limits in force.
  const limits& frame_limits() const noexcept { return limits_; }

private:
  protocol_error fail(violation v, std::string description);

  limits limits_;
  std::vector<std::byte> in_;
  std::size_t consumed_ = 0; ///< bytes of in_ already turned into events
  std::vector<std::byte> close_data_;
  bool eof_ = false;
  bool peer_closed_ = false;
  bool local_closed_ = false;
  bool failed_ = false;
  bool eof_reported_ = false;
};

} // namespace sluice::proto::framing
