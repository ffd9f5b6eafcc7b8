// The PROXY protocol (HAProxy's specification, versions 1 and 2), sans-io: the header a
// load balancer (HAProxy send-proxy / send-proxy-v2, Envoy, nginx stream's
// proxy_protocol) writes at the start of a connection to say who the client was.
//
//   auto r = proto::proxy::parse(bytes_received_so_far);
//   if (auto* h = std::get_if<proto::proxy::header>(&r)) ...   // h->size bytes were it
//   else if (std::holds_alternative<proto::proxy::need_more>(r)) ... // read more, retry
//   else ... std::get<proto::proxy::parse_error>(r).message          // close, log
//
// parse() is a pure function of the bytes so far: call it again with more bytes until
// it decides. Both versions are recognised by their first bytes; anything else is an
// error as soon as a byte shows it. A header is bounded (v1: 107 bytes with its CRLF;
// v2: limits::max_v2_length after its 16 fixed bytes), and a CRC32C TLV, when present,
// is checked. docs/proxy_protocol.md has the design.
#pragma once

#include <sluice/export.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::proto::proxy {

/// One end of the proxied connection.
struct address {
  /// Which kind of address it is.
  enum class kind : std::uint8_t {
    none,     ///< not told (v1 UNKNOWN, v2 LOCAL or UNSPEC)
    v4,       ///< ip[0..3], port
    v6,       ///< ip[0..15], port
    unix_path ///< v2 AF_UNIX: path (abstract names begin with '\0')
  };
  kind family = kind::none;          ///< which of the fields below hold it
  std::array<std::uint8_t, 16> ip{}; ///< network order; IPv4 in the first 4 bytes
  std::uint16_t port = 0;            ///< v4 and v6
  std::string path;                  ///< unix_path

  bool operator==(const address&) const = default; ///< field by field
};

/// "192.0.2.1:5000", "[2001:db8::1]:443", "unix:/run/x.sock", or "unknown".
SLUICE_PROTO_API std::string to_string(const address& a);

/// v2 TLV types of the specification.
namespace tlv_type {
inline constexpr std::uint8_t alpn = 0x01;      ///< the client's ALPN protocol
inline constexpr std::uint8_t authority = 0x02; ///< the host name the client asked for (SNI)
inline constexpr std::uint8_t crc32c = 0x03;    ///< a checksum of the header (checked)
inline constexpr std::uint8_t noop = 0x04;      ///< padding
inline constexpr std::uint8_t unique_id = 0x05; ///< the balancer's id of the connection
inline constexpr std::uint8_t ssl = 0x20;       ///< TLS details, with sub-TLVs
inline constexpr std::uint8_t netns = 0x30;     ///< the balancer's network namespace
} // namespace tlv_type

/// A v2 type-length-value extension.
struct tlv {
  std::uint8_t type = 0;                       ///< one of tlv_type, or another
  std::vector<std::byte> value;                ///< its bytes
  bool operator==(const tlv&) const = default; ///< type and value
};

/// What a header said.
struct header {
  int version = 0; ///< 1 (text) or 2 (binary)
  /// True when the header carries no client (v2 LOCAL, as in a balancer's health
  /// check; v1 UNKNOWN; v2 UNSPEC): keep the connection's own addresses.
  bool local = false;
  bool datagram = false; ///< v2 DGRAM transport (UDP); false for STREAM and v1
  address source;        ///< the client
  address destination;   ///< where the client connected (the balancer's address)
  std::vector<tlv> tlvs; ///< v2 extensions, in order (CRC32C already checked)
  std::size_t size = 0;  ///< bytes the header took at the start of the input

  /// The first TLV of type `t`, if any.
  const tlv* find(std::uint8_t t) const noexcept;
  bool operator==(const header&) const = default; ///< field by field
};

/// Bounds on what parse() accepts.
struct limits {
  /// The most bytes a v2 header may have after its 16 fixed bytes (addresses and TLVs).
  /// The protocol allows 65,535; HAProxy's own buffers hold far less.
  std::size_t max_v2_length = 2048;
};

/// parse() cannot decide yet: the header needs at least `total` bytes in all.
struct need_more {
  std::size_t total = 0; ///< bytes needed in all, from the input's start
};
/// Not a valid PROXY header; `message` says what was wrong, where.
struct parse_error {
  std::string message; ///< e.g. "PROXY v1: source port '99999' is not a number 0..65535"
};

using parse_result = std::variant<need_more, header, parse_error>;

/// Parses the PROXY header at the start of `in` (see the top of this header).
SLUICE_PROTO_API parse_result parse(std::span<const std::byte> in, const limits& l = {});

/// The longest v1 header, CRLF included.
inline constexpr std::size_t max_v1_length = 107;

/// Writes `h` as a v1 line ("PROXY TCP4 ... \r\n", or "PROXY UNKNOWN\r\n" when local or
/// not IP). Families of the two ends must match.
SLUICE_PROTO_API std::string format_v1(const header& h);
/// Writes `h` as a v2 header, its TLVs in order; `with_crc32c` appends a CRC32C TLV.
SLUICE_PROTO_API std::vector<std::byte> format_v2(const header& h, bool with_crc32c = false);

/// CRC-32C (Castagnoli), as the v2 CRC32C TLV uses it.
SLUICE_PROTO_API std::uint32_t crc32c(std::span<const std::byte> data,
                                      std::uint32_t crc = 0) noexcept;

} // namespace sluice::proto::proxy
