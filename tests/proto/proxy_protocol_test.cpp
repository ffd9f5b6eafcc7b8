// The PROXY protocol without sockets: the specification's v1 examples (the longest line
// included), v2 for every address family with TLVs and CRC32C, every header split at
// every byte, and every malformed case with its message.
#include <sluice/proto/proxy_protocol.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <string>
#include <string_view>

using namespace sluice::proto::proxy;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// Every proper prefix needs more (and says how much, no more than the whole); the whole,
// followed by other bytes, is the header.
header parsed_at_every_split(std::span<const std::byte> wire) {
  for (std::size_t k = 0; k < wire.size(); ++k) {
    CAPTURE(k);
    const auto r = parse(wire.first(k));
    REQUIRE(std::holds_alternative<need_more>(r));
    CHECK(std::get<need_more>(r).total > k);
    CHECK(std::get<need_more>(r).total <= wire.size());
  }
  std::vector<std::byte> more(wire.begin(), wire.end());
  for (char c : std::string_view("GET / HTTP/1.1\r\n"))
    more.push_back(static_cast<std::byte>(c));
  const auto r = parse(more);
  if (auto* e = std::get_if<parse_error>(&r)) FAIL(e->message);
  REQUIRE(std::holds_alternative<header>(r));
  const auto h = std::get<header>(r);
  CHECK(h.size == wire.size());
  return h;
}

std::string error_of(std::span<const std::byte> wire, const limits& l = {}) {
  const auto r = parse(wire, l);
  if (auto* e = std::get_if<parse_error>(&r)) return e->message;
  return std::holds_alternative<need_more>(r) ? "need more" : "a header";
}

address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
  address x;
  x.family = address::kind::v4;
  x.ip = {a, b, c, d};
  x.port = port;
  return x;
}

} // namespace

TEST_CASE("proxy v1: TCP4 and TCP6 lines, split at every byte") {
  const std::string tcp4 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  auto h = parsed_at_every_split(bytes(tcp4));
  CHECK(h.version == 1);
  CHECK(!h.local);
  CHECK(h.source == v4(192, 168, 0, 1, 56324));
  CHECK(h.destination == v4(192, 168, 0, 11, 443));
  CHECK(to_string(h.source) == "192.168.0.1:56324");
  CHECK(format_v1(h) == tcp4);

  const std::string tcp6 = "PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 65535\r\n";
  auto h6 = parsed_at_every_split(bytes(tcp6));
  CHECK(h6.source.family == address::kind::v6);
  CHECK(to_string(h6.source) == "[2001:db8::1]:0");
  CHECK(h6.destination.ip[10] == 0xFF);
  CHECK(h6.destination.ip[12] == 192);
  CHECK(h6.destination.ip[15] == 1);
  CHECK(to_string(h6.destination) == "[::ffff:c000:201]:65535");
  CHECK(format_v1(h6) == "PROXY TCP6 2001:db8::1 ::ffff:c000:201 0 65535\r\n");
}

TEST_CASE("proxy v1: UNKNOWN, short and as long as the protocol allows") {
  auto h = parsed_at_every_split(bytes("PROXY UNKNOWN\r\n"));
  CHECK(h.local);
  CHECK(h.source.family == address::kind::none);
  CHECK(to_string(h.source) == "unknown");
  // The specification's worst case: 107 bytes with the CRLF.
  const std::string longest = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  REQUIRE(longest.size() == max_v1_length);
  auto l = parsed_at_every_split(bytes(longest));
  CHECK(l.local);
  // One byte longer has no CRLF within the 107.
  const std::string too_long = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n";
  CHECK(error_of(bytes(too_long)) ==
        "PROXY v1: no CRLF within 107 bytes (the longest header the protocol allows)");
}

TEST_CASE("proxy v1: every malformed line is an error saying what is wrong") {
  const std::pair<std::string, std::string> cases[] = {
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY v1: protocol 'TCP5' (TCP4, TCP6 or UNKNOWN)"},
      {"PROXY\r\n", "not a PROXY protocol header"},
      {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol 'tcp4'"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "4 fields after PROXY where TCP4 takes 5"},
      {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "6 fields after PROXY where TCP4 takes 5"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "6 fields after PROXY where TCP4 takes 5"},
      {"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
       "PROXY v1: source address '256.2.3.4' is not an IPv4 address"},
      {"PROXY TCP4 1.2.3.4 05.6.7.8 1 2\r\n", "destination address '05.6.7.8' is not an IPv4"},
      {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "source address '1.2.3'"},
      {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "source address '::1' is not an IPv4 address"},
      {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source address '1.2.3.4' is not an IPv6 address"},
      {"PROXY TCP6 1::2::3 ::1 1 2\r\n", "is not an IPv6 address"},
      {"PROXY TCP6 12345:: ::1 1 2\r\n", "is not an IPv6 address"},
      {"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "is not an IPv6 address"},
      {"PROXY TCP6 ::1 1:2:3:4:5:6:7: 1 2\r\n", "destination address '1:2:3:4:5:6:7:'"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
       "PROXY v1: source port '65536' is not a number 0..65535"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n", "destination port '080'"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", "destination port '-2'"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY v1: a bare LF at byte 30"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "PROXY v1: a CR not followed by LF at byte 30"},
      {std::string("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
       "PROXY v1: a control or non-ASCII byte 0x09 at byte 18"},
      {"GET / HTTP/1.1\r\n",
       "not a PROXY protocol header (v1 begins 'PROXY ', v2 with its "
       "12-byte signature): the connection begins 'GET / HTTP/1.1\\x0d\\x0a'"},
      {"\r\n\r\nX", "the connection begins '\\x0d\\x0a\\x0d\\x0aX'"},
  };
  for (const auto& [wire, expected] : cases) {
    CAPTURE(wire);
    const std::string msg = error_of(bytes(wire));
    INFO(msg);
    CHECK(msg.find(expected) != std::string::npos);
  }
  // An error shows as soon as a byte proves it: no waiting for a CRLF that never comes.
  CHECK(error_of(bytes("G")).find("not a PROXY protocol header") == 0);
  CHECK(error_of(bytes("PROXY TCP4 1.2.3.4\x01")).find("0x01 at byte 18") != std::string::npos);
}

TEST_CASE("proxy v2: every family, TLVs and CRC32C round-trip, split at every byte") {
  header in;
  in.version = 2;
  in.source = v4(203, 0, 113, 7, 40000);
  in.destination = v4(10, 0, 0, 1, 8080);
  in.tlvs.push_back({tlv_type::alpn, {std::byte('h'), std::byte('2')}});
  in.tlvs.push_back({tlv_type::authority, {std::byte('e'), std::byte('x')}});
  in.tlvs.push_back({tlv_type::noop, {}});
  for (bool crc : {false, true}) {
    CAPTURE(crc);
    const auto wire = format_v2(in, crc);
    CHECK(wire.size() == 16 + 12 + (3 + 2) * 2 + 3 + (crc ? 7 : 0));
    auto h = parsed_at_every_split(wire);
    CHECK(h.version == 2);
    CHECK(!h.local);
    CHECK(!h.datagram);
    CHECK(h.source == in.source);
    CHECK(h.destination == in.destination);
    REQUIRE(h.tlvs.size() == in.tlvs.size() + (crc ? 1 : 0));
    REQUIRE(h.find(tlv_type::authority) != nullptr);
    CHECK(h.find(tlv_type::authority)->value == in.tlvs[1].value);
    CHECK((h.find(tlv_type::crc32c) != nullptr) == crc);
  }

  header six;
  six.source.family = six.destination.family = address::kind::v6;
  six.source.ip = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  six.source.port = 1;
  six.destination.ip[15] = 1;
  six.destination.port = 443;
  six.datagram = true;
  auto h6 = parsed_at_every_split(format_v2(six, true));
  CHECK(h6.source == six.source);
  CHECK(h6.datagram);
  CHECK(to_string(h6.destination) == "[::1]:443");

  header un;
  un.source.family = un.destination.family = address::kind::unix_path;
  un.source.path = "/run/client.sock";
  un.destination.path = std::string("\0abstract", 9);
  auto hu = parsed_at_every_split(format_v2(un));
  CHECK(hu.source.path == "/run/client.sock");
  CHECK(hu.destination.path == un.destination.path);
  CHECK(to_string(hu.destination) == "unix:@abstract");

  // LOCAL (a balancer's health check): no client, whatever the address block says.
  header local;
  local.local = true;
  auto hl = parsed_at_every_split(format_v2(local));
  CHECK(hl.local);
  CHECK(hl.source.family == address::kind::none);
  auto wire = format_v2(in);
  wire[12] = std::byte(0x20); // LOCAL with an INET block
  const auto r = parse(wire);
  REQUIRE(std::holds_alternative<header>(r));
  CHECK(std::get<header>(r).local);
  CHECK(std::get<header>(r).source.family == address::kind::none);
}

TEST_CASE("proxy v2: every malformed header is an error saying what is wrong") {
  header in;
  in.source = v4(1, 2, 3, 4, 5);
  in.destination = v4(6, 7, 8, 9, 10);
  in.tlvs.push_back({tlv_type::unique_id, {std::byte(1), std::byte(2), std::byte(3)}});
  const auto good = format_v2(in, true);
  auto with = [&](std::size_t i, std::uint8_t v) {
    auto w = good;
    w[i] = std::byte(v);
    return w;
  };
  CHECK(error_of(with(12, 0x31)) == "PROXY v2: version 3 (only 2 has this signature)");
  CHECK(error_of(with(12, 0x22)) == "PROXY v2: command 0x2 (0 LOCAL or 1 PROXY)");
  CHECK(error_of(with(13, 0x41)) ==
        "PROXY v2: address family 0x4 (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX)");
  CHECK(error_of(with(13, 0x13)) == "PROXY v2: transport 0x3 (0 UNSPEC, 1 STREAM, 2 DGRAM)");
  // INET6 in a block sized for INET.
  CHECK(error_of(with(13, 0x21)) ==
        "PROXY v2: the INET6 address block takes 36 bytes, the header has 25");
  // A checksum that does not match (a byte of an address flipped).
  CHECK(error_of(with(17, 0x99)).find("PROXY v2: the CRC32C TLV says 0x") == 0);
  // Longer than the limit: refused from the fixed part alone.
  limits small;
  small.max_v2_length = 16;
  CHECK(error_of(std::span(good).first(16), small) ==
        "PROXY v2: 25 bytes of addresses and TLVs, above the limit of 16 "
        "(proxy::limits::max_v2_length)");
  // A TLV whose length runs past the end.
  auto overrun = format_v2(in);
  overrun[16 + 12 + 2] = std::byte(9);
  CHECK(error_of(overrun) ==
        "PROXY v2: TLV 0x05 of 9 bytes runs past the header's end (3 bytes left)");
  // Two bytes left over after the last TLV.
  auto stray = format_v2(in);
  stray[15] = std::byte(static_cast<std::uint8_t>(stray[15]) + 2);
  stray.push_back(std::byte(0));
  stray.push_back(std::byte(0));
  CHECK(error_of(stray) == "PROXY v2: 2 stray bytes after the last TLV");
  // A CRC32C TLV of the wrong size.
  header bad_crc = in;
  bad_crc.tlvs.push_back({tlv_type::crc32c, {std::byte(0)}});
  CHECK(error_of(format_v2(bad_crc)) == "PROXY v2: a CRC32C TLV of 1 bytes (it takes 4)");
  // A signature that goes wrong at its last byte.
  auto sig = good;
  sig[11] = std::byte(0x0B);
  CHECK(error_of(sig).find("not a PROXY protocol header") == 0);
}

TEST_CASE("proxy: CRC-32C and IPv6 text follow their standards") {
  CHECK(crc32c(bytes("123456789")) == 0xE3069283u); // the check value
  CHECK(crc32c(bytes("56789"), crc32c(bytes("1234"))) == 0xE3069283u);
  // RFC 5952 output: lowercase, the longest zero run compressed, the first on a tie,
  // a single zero group not compressed.
  const std::pair<std::string, std::string> six[] = {
      {"2001:0DB8:0:0:1:0:0:1", "[2001:db8::1:0:0:1]:1"},
      {"2001:db8:0:1:1:1:1:1", "[2001:db8:0:1:1:1:1:1]:1"},
      {"::", "[::]:1"},
      {"1::", "[1::]:1"},
      {"::ffff:1.2.3.4", "[::ffff:102:304]:1"},
      {"0:0:1:0:0:0:1:0", "[0:0:1::1:0]:1"},
  };
  for (const auto& [text, expected] : six) {
    CAPTURE(text);
    const std::string line = fmt::format("PROXY TCP6 {} ::1 1 2\r\n", text);
    const auto r = parse(bytes(line));
    REQUIRE(std::holds_alternative<header>(r));
    CHECK(to_string(std::get<header>(r).source) == expected);
  }
}
