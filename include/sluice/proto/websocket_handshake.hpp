// The WebSocket opening handshake (RFC 6455 section 4) and the negotiation of
// permessage-deflate (RFC 7692), sans-io: HTTP/1.1 heads in, heads and decisions out.
// docs/websocket.md has the design.
//
//   // server: a request head read by proto::http1::parser
//   auto d = websocket::server_handshake(req, options);
//   if (auto* ok = std::get_if<websocket::accepted>(&d)) ... send ok->response (101)
//   else ... send std::get<websocket::refused>(d).response (400, 405 or 426)
//
//   // client
//   auto req = websocket::client_request("example.com", "/chat", key, options);
//   ... send it, parse the response head, then
//   auto r = websocket::check_response(head, key, options); // result<negotiated>
#pragma once

#include <sluice/export.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sluice/error.hpp>
#include <sluice/proto/http1.hpp>
#include <sluice/proto/websocket.hpp>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::proto::websocket {

/// The only protocol version there is (RFC 6455): Sec-WebSocket-Version: 13.
inline constexpr int protocol_version = 13;

/// The Sec-WebSocket-Accept value that answers the client's Sec-WebSocket-Key `key`:
/// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
SLUICE_PROTO_API std::string accept_key(std::string_view key);

/// A Sec-WebSocket-Key from 16 random bytes (their base64 form). The bytes must be
/// unpredictable; proto has no entropy source, so the caller draws them.
SLUICE_PROTO_API std::string make_key(std::span<const std::byte, 16> nonce);

/// What one end offers or accepts.
struct handshake_options {
  /// Subprotocols (Sec-WebSocket-Protocol). A server takes the first of its own list
  /// that the client offered (its list is its preference); a client offers its list in
  /// order and accepts only one of them back.
  std::vector<std::string> subprotocols;
  /// Client: offer permessage-deflate (on by default, as browsers and npm's ws do).
  bool offer_deflate = true;
  /// Server: accept a client's permessage-deflate offer. Off by default, as in npm's ws:
  /// a compressor costs memory per connection (docs/websocket.md).
  bool accept_deflate = false;
  /// Ask for no context takeover on both sides: each message is compressed alone. Less
  /// memory per connection (no window kept between messages), worse compression.
  bool deflate_no_context_takeover = false;
  /// The largest LZ77 window this end compresses with, 9 to 15 (zlib cannot produce a
  /// 256-byte window, so 8 is not offered or accepted for our own compressor).
  std::uint8_t deflate_max_window_bits = 15;
};

/// Server: the handshake succeeds. Send `response` (101) and switch protocols.
struct accepted {
  http1::response_header response;       ///< 101 with Upgrade, Connection, Accept...
  std::string subprotocol;               ///< the one chosen, or empty
  std::optional<deflate_params> deflate; ///< when permessage-deflate was agreed
};

/// Server: the request is not a WebSocket handshake this server accepts. Send
/// `response` (Connection: close) and close.
struct refused {
  http1::response_header response; ///< 400, 405 or 426, with the fields RFC 6455 asks for
  std::string reason;              ///< what is wrong: "Sec-WebSocket-Version 8 (only 13...)"
};

/// Server: checks the request head `req` against RFC 6455 4.2.1 and decides.
/// - not GET: 405 with "Allow: GET";
/// - no "Upgrade: websocket" with "Connection: upgrade": 426 with
///   "Upgrade: websocket" (a plain HTTP request sent to a WebSocket endpoint);
/// - a version other than 13: 426 with "Sec-WebSocket-Version: 13";
/// - HTTP/1.0, no Host, a missing or malformed Sec-WebSocket-Key (not 16 bytes in
///   base64), a body: 400.
/// permessage-deflate offers are taken in the client's order; an offer with unknown,
/// repeated or invalid parameters is declined (RFC 7692 section 5), and so is one
/// asking for a server window of 8 bits.
SLUICE_PROTO_API std::variant<accepted, refused>
server_handshake(const http1::request& req, const handshake_options& options = {});

/// Client: the request head that opens a WebSocket to `target` on `host` ("host" or
/// "host:port", the Host field) with `key` (make_key()), offering what `options` say.
/// `extra` fields are added as they are (Origin, Authorization, cookies...).
SLUICE_PROTO_API http1::request client_request(std::string_view host, std::string_view target,
                                               std::string_view key,
                                               const handshake_options& options = {},
                                               const http1::fields& extra = {});

/// Client: what the server agreed to.
struct negotiated {
  std::string subprotocol;               ///< empty when the server chose none
  std::optional<deflate_params> deflate; ///< when permessage-deflate is on
};

/// Client: checks the server's response head to the request made with `key` and
/// `options` (RFC 6455 4.1 and RFC 7692 5-7). Any failure is errc::protocol_error
/// naming what was wrong ("the server answered 404 Not Found", "Sec-WebSocket-Accept
/// does not match the key", "subprotocol 'x' was not offered", ...).
SLUICE_PROTO_API result<negotiated> check_response(const http1::response_header& response,
                                                   std::string_view key,
                                                   const handshake_options& options = {});

/// The Sec-WebSocket-Extensions value describing `p` (what a server answers).
SLUICE_PROTO_API std::string to_string(const deflate_params& p);

/// \cond INTERNAL
namespace detail {
/// SHA-1 (FIPS 180-4) of `data`; the handshake's only use of it.
SLUICE_PROTO_API std::array<std::byte, 20> sha1(std::span<const std::byte> data) noexcept;
/// Standard base64 with padding.
SLUICE_PROTO_API std::string base64(std::span<const std::byte> data);
/// Decodes standard base64 with padding; nullopt for anything else.
SLUICE_PROTO_API std::optional<std::vector<std::byte>> unbase64(std::string_view text);
} // namespace detail
/// \endcond

} // namespace sluice::proto::websocket
