// WebSocket frames (RFC 6455), sans-io: the message layer of one end of a connection.
// docs/websocket.md has the design and what is not built yet.
//
//   websocket::connection c(websocket::role::server);
//   c.receive_data(bytes);                 // buffer what the transport delivered
//   for (;;) {
//     auto ev = c.next_event();            // need_data / message / ping / pong /
//     ...                                  // peer_close / protocol_error
//   }
//   c.send_message(opcode::text, payload, out);  // append a frame to `out`
//   c.send_close(1000, "bye", out);
//
// Everything the peer can get wrong is a protocol_error event carrying the close code
// to fail the connection with (1002 protocol, 1007 bad UTF-8, 1009 too big); misuse by
// the local side throws websocket::local_error. No sockets, no clocks, no OS headers.
#pragma once

#include <sluice/export.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::proto::websocket {

/// A frame's opcode.
enum class opcode : std::uint8_t {
  continuation = 0x0, ///< the next fragment of a message
  text = 0x1,         ///< a text message (UTF-8)
  binary = 0x2,       ///< a binary message
  close = 0x8,        ///< the close handshake
  ping = 0x9,         ///< a ping (answered with a pong)
  pong = 0xA          ///< a pong
};

/// Which end this is: a server requires masked frames and sends them unmasked; a
/// client the other way round.
enum class role : std::uint8_t { server, client };

/// Close codes (RFC 6455 section 7.4.1).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;              ///< done
inline constexpr std::uint16_t going_away = 1001;          ///< shutting down, page left
inline constexpr std::uint16_t protocol_error = 1002;      ///< the peer broke the protocol
inline constexpr std::uint16_t unsupported_data = 1003;    ///< a kind of data not accepted
inline constexpr std::uint16_t no_status = 1005;           ///< a close frame without a code
inline constexpr std::uint16_t abnormal = 1006;            ///< the connection ended without a close
inline constexpr std::uint16_t invalid_payload = 1007;     ///< text that is not UTF-8
inline constexpr std::uint16_t policy_violation = 1008;    ///< refused by policy
inline constexpr std::uint16_t message_too_big = 1009;     ///< above the limits
inline constexpr std::uint16_t mandatory_extension = 1010; ///< an extension the client needed
inline constexpr std::uint16_t internal_error = 1011;      ///< the server failed
} // namespace close_code

/// May `code` appear in a close frame? 1000-1003, 1007-1014 and 3000-4999 may; 1004,
/// 1005, 1006, 1015 and everything else may not.
SLUICE_PROTO_API bool valid_close_code(std::uint16_t code) noexcept;

/// Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing past
/// U+10FFFF): a code point may be split across calls.
class SLUICE_PROTO_API utf8_validator {
public:
  /// False as soon as `bytes` cannot continue valid UTF-8 (fail fast, mid-message).
  bool feed(std::span<const std::byte> bytes) noexcept;
  /// True if the bytes so far end on a code point boundary.
  bool complete() const noexcept { return state_ == 0; }
  /// Starts again (a new message).
  void reset() noexcept { state_ = 0; }

private:
  std::uint32_t state_ = 0; ///< bytes still expected, and the range the next must be in
  std::uint8_t lo_ = 0x80, hi_ = 0xBF;
};

/// What a connection accepts from its peer.
struct limits {
  std::size_t max_frame = 16u << 20;   ///< payload of one frame
  std::size_t max_message = 64u << 20; ///< payload of a whole (reassembled) message
};

/// The parameters of permessage-deflate agreed for one connection (RFC 7692 section 7;
/// websocket_handshake.hpp negotiates them).
struct deflate_params {
  bool server_no_context_takeover = false;  ///< the server resets its compressor per message
  bool client_no_context_takeover = false;  ///< the client resets its compressor per message
  std::uint8_t server_max_window_bits = 15; ///< the server's LZ77 window: 2^bits bytes
  std::uint8_t client_max_window_bits = 15; ///< the client's LZ77 window
  bool operator==(const deflate_params&) const = default; ///< the same parameters
};

/// permessage-deflate on a connection: what was agreed, and how this end compresses.
/// zlib's state is made on first use: a connection that never sends a message of
/// `threshold` bytes or more has no compressor, one that never receives a compressed
/// message no decompressor.
struct compression {
  deflate_params params; ///< as negotiated
  /// Messages shorter than this are sent uncompressed (RSV1 clear), which the
  /// extension allows: compressing a few bytes only makes them longer.
  std::size_t threshold = 64;
  int level = 6;     ///< zlib's level, 1 (fast) to 9 (small)
  int mem_level = 8; ///< zlib's memLevel, 1 to 9: memory of the compressor's hash
};

/// Event: nothing complete is buffered; feed more bytes.
struct need_data {};
/// Event: a whole message (its fragments joined; text validated as UTF-8).
struct message {
  opcode kind;                        ///< text or binary
  std::span<const std::byte> payload; ///< valid until the next receive_data()
};
/// Event: a ping; the connection has already queued the pong (take_pending_output()).
struct ping {
  std::span<const std::byte> payload; ///< valid until the next receive_data()
};
/// Event: a pong.
struct pong {
  std::span<const std::byte> payload; ///< valid until the next receive_data()
};
/// Event: the peer's close frame: its code (close_code::no_status if it had none) and
/// reason. When we had not sent ours, the echoing close is queued
/// (take_pending_output()).
struct peer_close {
  std::uint16_t code; ///< the close code, or close_code::no_status
  std::string reason; ///< the reason (UTF-8), possibly empty
};
/// Event: the peer broke the protocol. Send a close with `code` (fail_output() has it)
/// and stop reading.
struct protocol_error {
  std::uint16_t code;      ///< 1002, 1007 or 1009
  std::string description; ///< "a control frame of 126 bytes (the limit is 125)"
};

using event = std::variant<need_data, message, ping, pong, peer_close, protocol_error>;

/// Local misuse: sending after close, an invalid close code, a control frame > 125.
class SLUICE_PROTO_API local_error : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

/// One end of a WebSocket connection after the handshake, sans-io.
class SLUICE_PROTO_API connection {
public:
  /// Where masking keys come from on a client (RFC 6455 wants them unpredictable).
  using mask_source = std::function<std::array<std::byte, 4>()>;

  /// A connection of role `r` enforcing `l`. A client draws its masking keys from
  /// `masks`, which must be given (local_error otherwise): they must be unpredictable,
  /// and proto has no entropy source of its own. With `deflate`, permessage-deflate is
  /// on: compressed messages (RSV1) are accepted and inflated within `l.max_message`,
  /// and messages of `deflate->threshold` bytes or more are sent compressed.
  explicit connection(role r, limits l = {}, mask_source masks = {},
                      std::optional<compression> deflate = std::nullopt);
  ~connection();
  connection(connection&&) noexcept;            ///< moves the whole state
  connection& operator=(connection&&) noexcept; ///< moves the whole state

  // --- inputs
  /// Buffers bytes received from the transport.
  void receive_data(std::span<const std::byte> bytes);

  // --- outputs
  /// The next event.
  event next_event();
  /// Frames the connection queued itself (pongs, the echoing close), to send first.
  std::vector<std::byte> take_pending_output();

  /// Appends one frame with a whole message (text must be UTF-8: local_error if not).
  void send_message(opcode kind, std::span<const std::byte> payload, std::vector<std::byte>& out);
  /// Appends one fragment: `first` says text or binary, the rest are continuations;
  /// `fin` ends the message.
  void send_fragment(opcode kind, std::span<const std::byte> payload, bool fin,
                     std::vector<std::byte>& out);
  /// Appends a ping (at most 125 bytes).
  void send_ping(std::span<const std::byte> payload, std::vector<std::byte>& out);
  /// Appends a pong (at most 125 bytes).
  void send_pong(std::span<const std::byte> payload, std::vector<std::byte>& out);
  /// Appends the close frame: `code` must be valid_close_code() (or no_status: an empty
  /// close), `reason` UTF-8 and at most 123 bytes. Nothing may be sent afterwards.
  void send_close(std::uint16_t code, std::string_view reason, std::vector<std::byte>& out);

  // --- state
  bool peer_closed() const noexcept { return peer_closed_; }   ///< its close was read
  bool local_closed() const noexcept { return local_closed_; } ///< ours was written
  bool failed() const noexcept { return failed_; }             ///< the peer broke the protocol
  role side() const noexcept { return role_; }                 ///< server or client
  /// permessage-deflate, when on.
  const std::optional<compression>& deflate() const noexcept { return deflate_; }

private:
  protocol_error fail(std::uint16_t code, std::string description);
  event step(bool& more); ///< one frame; `more`: a fragment went into message_, go on
  /// A ping or pong (`what` names it in errors).
  void send_control(opcode op, const char* what, std::span<const std::byte> payload,
                    std::vector<std::byte>& out);
  void frame(opcode op, bool fin, std::span<const std::byte> payload, std::vector<std::byte>& out,
             bool rsv1 = false);
  void compact();
  event finish_compressed(opcode kind); ///< inflates message_ into inflated_
  /// Deflates one fragment of an outgoing message (the tail 00 00 FF FF cut at its end).
  std::span<const std::byte> compress(std::span<const std::byte> payload, bool fin);
  struct zlib_state; ///< zlib's streams (websocket_deflate.cpp)
  struct zlib_free {
    void operator()(zlib_state* z) const noexcept;
  };

  role role_;
  limits limits_;
  mask_source masks_;
  std::vector<std::byte> in_;
  std::size_t consumed_ = 0;
  std::vector<std::byte> message_;             ///< fragments of the message being reassembled
  opcode message_kind_ = opcode::continuation; ///< continuation: none in progress
  bool clear_message_ = false;                 ///< message_ was reported: empty it before the next
  utf8_validator utf8_;                        ///< incoming text, across fragments
  utf8_validator out_utf8_;                    ///< outgoing fragmented text
  // The frame being received: its header is parsed as soon as it is whole, its payload
  // unmasked (and text validated) as it arrives, in place in in_.
  bool have_header_ = false;
  opcode op_ = opcode::continuation;
  bool fin_ = false;
  bool masked_ = false;
  std::array<std::byte, 4> mask_{};
  std::size_t header_len_ = 0;
  std::uint64_t len_ = 0;
  std::size_t processed_ = 0;
  std::vector<std::byte> pending_;
  opcode sending_ = opcode::continuation; ///< a fragmented message we are sending
  std::optional<compression> deflate_;
  std::unique_ptr<zlib_state, zlib_free> zlib_;
  bool compressed_ = false;         ///< the message being received has RSV1
  bool sending_compressed_ = false; ///< the fragmented message being sent is compressed
  std::vector<std::byte> inflated_; ///< the last compressed message, inflated
  bool peer_closed_ = false;
  bool local_closed_ = false;
  bool failed_ = false;
};

} // namespace sluice::proto::websocket
