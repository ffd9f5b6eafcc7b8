// WebSocket (RFC 6455, with permessage-deflate of RFC 7692) over a tcp::stream, on any
// backend: the handshake, messages, pings, and the close handshake as disconnect data.
// docs/websocket.md has the design.
//
//   auto ws = co_await websocket::accept(std::move(tcp_stream));   // server
//   auto ws = co_await websocket::connect(io, "ws://127.0.0.1:8080/chat"); // client
//   co_await ws->send_text("hello");
//   auto m = co_await ws->receive();        // optional<message>: nullopt once the
//                                           // peer's close frame came
//   co_await ws->send_disconnect(1000, "bye"); // close frame, then FIN
//   auto c = ws->peer_close();              // {code, reason} the peer closed with
#pragma once

#include <sluice/export.hpp>

#include <chrono>
#include <optional>
#include <sluice/net/tcp.hpp>
#include <sluice/proto/websocket_handshake.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::websocket {

using proto::websocket::opcode;
namespace close_code = proto::websocket::close_code;

/// How one end handshakes, what it accepts, how it compresses.
struct options {
  proto::websocket::limits limits;                     ///< largest frame and message accepted
  proto::websocket::handshake_options handshake;       ///< subprotocols, permessage-deflate
  proto::http1::limits http_limits;                    ///< the handshake's HTTP head
  std::chrono::milliseconds handshake_timeout{10'000}; ///< the whole opening handshake
  std::size_t compress_threshold = 64;                 ///< smaller messages are sent uncompressed
  int compress_level = 6;                              ///< zlib level, 1 to 9
  proto::http1::fields request_fields; ///< added to a client's handshake (Origin, cookies...)
};

/// One message, its fragments joined (text has been validated as UTF-8).
struct message {
  opcode kind = opcode::binary; ///< text or binary
  std::vector<std::byte> data;  ///< the payload, inflated if it came compressed
  /// A text message?
  bool is_text() const noexcept { return kind == opcode::text; }
  /// The payload as text.
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
  }
};

/// The peer's close frame: the disconnect data of this transport.
struct close_info {
  std::uint16_t code = close_code::no_status; ///< 1005 when the frame had no code
  std::string reason;                         ///< UTF-8, possibly empty
};

/// A WebSocket connection over a tcp::stream, after the handshake. Receiving answers
/// pings by itself; a close frame from the peer is echoed and ends the message stream.
/// Sends may run while a receive waits (the stream's sender queue keeps frames whole).
/// Move-only.
class SLUICE_API stream {
public:
  /// \cond INTERNAL
  stream(tcp::stream s, proto::websocket::role r, const options& o, std::string subprotocol,
         std::optional<proto::websocket::deflate_params> deflate, std::span<const std::byte> early);
  /// \endcond
  stream(stream&&) noexcept;            ///< takes over the connection
  stream& operator=(stream&&) noexcept; ///< takes over the connection
  ~stream();

  /// The next message, or std::nullopt once the peer's close frame has arrived (its
  /// code and reason are then in peer_close(); our echoing close frame has been sent,
  /// followed by a FIN). A peer that breaks the protocol is sent a close frame with the
  /// code for it (1002, 1007, 1009) and the call fails with errc::protocol_error or
  /// errc::message_too_large naming the violation; a TCP stream that ends without a
  /// close frame fails with errc::connection_aborted (the 1006 of RFC 6455). After
  /// recv_disconnect(): errc::shut_down.
  task<result<std::optional<message>>> receive();

  /// Sends one text message (UTF-8: errc::protocol_error otherwise, nothing sent).
  task<result<void>> send_text(std::string_view text);
  /// Sends one binary message.
  task<result<void>> send_binary(std::span<const std::byte> data);
  /// Sends a ping (at most 125 bytes); its pong arrives through receive(), unreported.
  task<result<void>> ping(std::span<const std::byte> data = {});

  /// Sends the close frame with `code` and `reason` (at most 123 bytes of UTF-8), then
  /// half-closes the send side (FIN). Messages may still be received until the peer's
  /// close frame. errc::shut_down if our close frame was already sent (then only the FIN
  /// is retried).
  task<result<void>> send_disconnect(std::uint16_t code = close_code::normal,
                                     std::string_view reason = {});

  /// Half-closes the receive side and copies the peer's disconnect data, its close
  /// frame's payload (the code, big-endian, then the reason; empty if the frame has
  /// not arrived or had no code), into `buffer`; returns its size. A buffer too small
  /// fails with errc::buffer_too_small and keeps the data for a retry. Otherwise the
  /// recv_disconnect contract of tcp::stream, which this calls.
  task<result<std::size_t>> recv_disconnect(std::span<std::byte> buffer);

  /// What graceful_close() saw.
  struct close_report {
    bool peer_close_seen = false;       ///< the peer's close frame arrived
    std::size_t messages_discarded = 0; ///< messages read and dropped meanwhile
    bool timed_out = false;             ///< the deadline was hit
    bool aborted = false;               ///< the connection was reset
  };
  /// The close handshake: sends our close frame (and a FIN), then reads and drops
  /// messages until the peer's close frame, all bounded by `o.deadline` and
  /// `o.max_discard` (past them the connection is reset). The TCP stream stays open for
  /// recv_disconnect(); close() ends it.
  task<close_report> graceful_close(std::uint16_t code = close_code::normal,
                                    std::string_view reason = {},
                                    tcp::graceful_close_options o = {});

  /// The peer's close frame, once it has arrived.
  const std::optional<close_info>& peer_close() const noexcept { return peer_close_; }
  /// The subprotocol agreed in the handshake, or empty.
  const std::string& subprotocol() const noexcept { return subprotocol_; }
  /// permessage-deflate's parameters, when it was agreed.
  const std::optional<proto::websocket::deflate_params>& deflate() const noexcept {
    return deflate_;
  }
  /// This transport carries disconnect data (the close frame's code and reason).
  static constexpr bool carries_disconnect_data() noexcept { return true; }
  /// The TCP stream underneath.
  tcp::stream& next_layer() noexcept { return s_; }
  /// Closes the TCP stream at once (no close frame: graceful_close() sends one).
  void close() noexcept { s_.close(); }

private:
  task<result<void>> send_frames(std::vector<std::byte> frames);
  task<result<void>> flush_pending();

  tcp::stream s_;
  proto::websocket::connection conn_;
  std::vector<std::byte> in_;
  std::string subprotocol_;
  std::optional<proto::websocket::deflate_params> deflate_;
  std::optional<close_info> peer_close_; ///< its code and reason: the disconnect data
  bool disconnect_delivered_ = false;
  bool fin_sent_ = false;
};

/// Server: reads the handshake request from `s`, answers it and returns the
/// WebSocket. A request that is not a WebSocket handshake this end accepts is answered
/// with its status (400, 405, 426; or the HTTP parser's 4xx) and a body saying why, the
/// connection closes, and the call fails with errc::protocol_error naming the peer and
/// the reason. The whole handshake is bounded by options.handshake_timeout.
SLUICE_API task<result<stream>> accept(tcp::stream s, options o = {});

/// Server: the same for a request head already read (by an HTTP server that routes
/// on the target, say); `early` holds bytes received after the head.
SLUICE_API task<result<stream>> accept(tcp::stream s, const proto::http1::request& request,
                                       std::span<const std::byte> early, options o = {});

/// Client: opens "ws://host[:port]/path" (resolving the host; wss:// is not spoken),
/// handshakes and returns the WebSocket. Failures name the URL: the connection's
/// error, or errc::protocol_error with what the server answered wrong
/// (proto::websocket::check_response).
SLUICE_API task<result<stream>> connect(io_context& io, std::string_view url, options o = {});

/// Client: handshakes on `s`, already connected, for `target` on `host` (the Host
/// field).
SLUICE_API task<result<stream>> connect(tcp::stream s, std::string_view host,
                                        std::string_view target, options o = {});

} // namespace sluice::websocket

/// \cond SPECIALIZATIONS
template <>
struct fmt::formatter<sluice::websocket::stream::close_report> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(const sluice::websocket::stream::close_report& r, Ctx& ctx) const {
    const char* how = r.aborted           ? (r.timed_out ? "aborted at the deadline" : "aborted")
                      : r.peer_close_seen ? "peer close frame seen"
                                          : "closed";
    return fmt::formatter<std::string_view>::format(
        fmt::format("{}, {} messages discarded", how, r.messages_discarded), ctx);
  }
};
/// \endcond
