// The PROXY protocol, versions 1 and 2: see proxy_protocol.hpp and docs/proxy_protocol.md.
#include <sluice/proto/proxy_protocol.hpp>

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace sluice::proto::proxy {

namespace {

constexpr std::array<std::uint8_t, 12> v2_signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view v1_prefix = "PROXY ";
constexpr std::size_t v2_fixed = 16;

std::uint8_t at(std::span<const std::byte> in, std::size_t i) {
  return static_cast<std::uint8_t>(in[i]);
}

// The first bytes, printable, for an error message.
std::string shown(std::span<const std::byte> in, std::size_t n = 16) {
  std::string out;
  for (std::size_t i = 0; i < std::min(n, in.size()); ++i) {
    const auto c = at(in, i);
    if (c >= 0x20 && c < 0x7F && c != '\\')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

parse_result fail(std::string message) { return parse_error{std::move(message)}; }

// ------------------------------------------------------------------ text addresses

bool parse_port(std::string_view t, std::uint16_t& out) {
  if (t.empty() || t.size() > 5 || (t.size() > 1 && t[0] == '0')) return false;
  unsigned v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

bool parse_v4(std::string_view t, std::uint8_t* out) {
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (t.empty() || t[0] != '.') return false;
      t.remove_prefix(1);
    }
    std::size_t n = 0;
    unsigned v = 0;
    while (n < t.size() && n < 4 && t[n] >= '0' && t[n] <= '9')
      v = v * 10 + static_cast<unsigned>(t[n++] - '0');
    if (n == 0 || n > 3 || v > 255 || (n > 1 && t[0] == '0')) return false;
    out[part] = static_cast<std::uint8_t>(v);
    t.remove_prefix(n);
  }
  return t.empty();
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 4291 text: groups of 1-4 hex digits, one "::" at most, an IPv4 tail allowed.
bool parse_v6(std::string_view t, std::uint8_t* out) {
  std::array<std::uint16_t, 8> groups{};
  int n = 0, gap = -1;
  if (t.starts_with("::")) {
    gap = 0;
    t.remove_prefix(2);
  } else if (t.starts_with(":")) {
    return false;
  }
  while (!t.empty()) {
    if (n == 8) return false;
    // An IPv4 tail takes the last two groups.
    const auto colon = t.find(':');
    if (colon == std::string_view::npos && t.find('.') != std::string_view::npos) {
      std::uint8_t v4[4];
      if (n > 6 || !parse_v4(t, v4)) return false;
      groups[static_cast<std::size_t>(n++)] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      groups[static_cast<std::size_t>(n++)] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      t = {};
      break;
    }
    std::size_t len = 0;
    unsigned v = 0;
    while (len < t.size() && hex_digit(t[len]) >= 0) {
      v = v << 4 | static_cast<unsigned>(hex_digit(t[len]));
      if (++len > 4) return false;
    }
    if (len == 0) return false;
    groups[static_cast<std::size_t>(n++)] = static_cast<std::uint16_t>(v);
    t.remove_prefix(len);
    if (t.empty()) break;
    if (t[0] != ':') return false;
    t.remove_prefix(1);
    if (!t.empty() && t[0] == ':') {
      if (gap >= 0) return false; // a second "::"
      gap = n;
      t.remove_prefix(1);
    } else if (t.empty()) {
      return false; // a trailing single ':'
    }
  }
  if (gap < 0 && n != 8) return false;
  if (gap >= 0 && n == 8) return false; // "::" must stand for one group at least
  std::array<std::uint16_t, 8> full{};
  if (gap < 0) {
    full = groups;
  } else {
    const int tail = n - gap;
    for (int i = 0; i < gap; ++i)
      full[static_cast<std::size_t>(i)] = groups[static_cast<std::size_t>(i)];
    for (int i = 0; i < tail; ++i)
      full[static_cast<std::size_t>(8 - tail + i)] = groups[static_cast<std::size_t>(gap + i)];
  }
  for (std::size_t i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<std::uint8_t>(full[i] >> 8);
    out[2 * i + 1] = static_cast<std::uint8_t>(full[i] & 0xFF);
  }
  return true;
}

// RFC 5952: lowercase, the longest run (2+) of zero groups as "::", first on a tie.
std::string format_v6(const std::array<std::uint8_t, 16>& ip) {
  std::array<unsigned, 8> g{};
  for (std::size_t i = 0; i < 8; ++i)
    g[i] = static_cast<unsigned>(ip[2 * i] << 8 | ip[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[static_cast<std::size_t>(i)] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[static_cast<std::size_t>(j)] == 0)
      ++j;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    out += fmt::format("{:x}", g[static_cast<std::size_t>(i)]);
  }
  return out;
}

std::string ip_text(const address& a) {
  if (a.family == address::kind::v4)
    return fmt::format("{}.{}.{}.{}", a.ip[0], a.ip[1], a.ip[2], a.ip[3]);
  return format_v6(a.ip);
}

// -------------------------------------------------------------------------- v1

parse_result parse_v1(std::span<const std::byte> in) {
  // The line ends at the first CRLF, within 107 bytes: the CR at index 105 at the most.
  const std::size_t window = std::min(in.size(), max_v1_length - 1);
  std::size_t end = std::string_view::npos;
  for (std::size_t i = 0; i < window; ++i) {
    const auto c = at(in, i);
    if (c == '\r') {
      if (i + 1 >= in.size()) return need_more{i + 2};
      if (at(in, i + 1) != '\n')
        return fail(fmt::format("PROXY v1: a CR not followed by LF at byte {}", i));
      end = i;
      break;
    }
    if (c == '\n') return fail(fmt::format("PROXY v1: a bare LF at byte {}", i));
    if (c < 0x20 || c > 0x7E)
      return fail(fmt::format("PROXY v1: a control or non-ASCII byte 0x{:02x} at byte {}", c, i));
  }
  if (end == std::string_view::npos) {
    if (in.size() < max_v1_length - 1) return need_more{in.size() + 1};
    return fail(fmt::format("PROXY v1: no CRLF within {} bytes (the longest header the "
                            "protocol allows)",
                            max_v1_length));
  }
  const std::string_view line(reinterpret_cast<const char*>(in.data()), end);
  header h;
  h.version = 1;
  h.size = end + 2;
  std::vector<std::string_view> f;
  for (std::size_t p = 0;;) {
    const auto sp = line.find(' ', p);
    f.push_back(line.substr(p, sp == std::string_view::npos ? std::string_view::npos : sp - p));
    if (sp == std::string_view::npos) break;
    p = sp + 1;
  }
  if (f.size() >= 2 && f[1] == "UNKNOWN") { // the rest of the line is to be ignored
    h.local = true;
    return h;
  }
  if (f.size() < 2 || (f[1] != "TCP4" && f[1] != "TCP6"))
    return fail(fmt::format("PROXY v1: protocol '{}' (TCP4, TCP6 or UNKNOWN)",
                            f.size() < 2 ? std::string_view() : f[1]));
  if (f.size() != 6)
    return fail(fmt::format("PROXY v1: {} fields after PROXY where {} takes 5 (protocol, source "
                            "and destination addresses, source and destination ports, one "
                            "space apart)",
                            f.size() - 1, f[1]));
  const bool v4 = f[1] == "TCP4";
  const char* names[] = {"source address", "destination address"};
  address* ends[] = {&h.source, &h.destination};
  for (int i = 0; i < 2; ++i) {
    address& a = *ends[i];
    a.family = v4 ? address::kind::v4 : address::kind::v6;
    const bool ok = v4 ? parse_v4(f[2 + static_cast<std::size_t>(i)], a.ip.data())
                       : parse_v6(f[2 + static_cast<std::size_t>(i)], a.ip.data());
    if (!ok)
      return fail(fmt::format("PROXY v1: {} '{}' is not an {} address", names[i],
                              f[2 + static_cast<std::size_t>(i)], v4 ? "IPv4" : "IPv6"));
    if (!parse_port(f[4 + static_cast<std::size_t>(i)], a.port))
      return fail(fmt::format("PROXY v1: {} port '{}' is not a number 0..65535",
                              i == 0 ? "source" : "destination",
                              f[4 + static_cast<std::size_t>(i)]));
  }
  return h;
}

// -------------------------------------------------------------------------- v2

std::uint16_t be16(std::span<const std::byte> in, std::size_t i) {
  return static_cast<std::uint16_t>(at(in, i) << 8 | at(in, i + 1));
}

parse_result parse_v2(std::span<const std::byte> in, const limits& l) {
  if (in.size() < v2_fixed) return need_more{v2_fixed};
  const auto ver_cmd = at(in, 12);
  if ((ver_cmd >> 4) != 2)
    return fail(fmt::format("PROXY v2: version {} (only 2 has this signature)", ver_cmd >> 4));
  const unsigned command = ver_cmd & 0x0F;
  if (command > 1)
    return fail(fmt::format("PROXY v2: command 0x{:x} (0 LOCAL or 1 PROXY)", command));
  const auto fam = at(in, 13);
  const unsigned family = fam >> 4, transport = fam & 0x0F;
  if (family > 3)
    return fail(
        fmt::format("PROXY v2: address family 0x{:x} (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX)", family));
  if (transport > 2)
    return fail(fmt::format("PROXY v2: transport 0x{:x} (0 UNSPEC, 1 STREAM, 2 DGRAM)", transport));
  const std::size_t length = be16(in, 14);
  if (length > l.max_v2_length)
    return fail(fmt::format("PROXY v2: {} bytes of addresses and TLVs, above the limit of {} "
                            "(proxy::limits::max_v2_length)",
                            length, l.max_v2_length));
  const std::size_t total = v2_fixed + length;
  if (in.size() < total) return need_more{total};

  header h;
  h.version = 2;
  h.size = total;
  h.datagram = transport == 2;
  const std::size_t need[] = {0, 12, 36, 216};
  if (length < need[family])
    return fail(fmt::format("PROXY v2: the {} address block takes {} bytes, the header has {}",
                            family == 1   ? "INET"
                            : family == 2 ? "INET6"
                                          : "UNIX",
                            need[family], length));
  const auto body = in.subspan(v2_fixed, length);
  if (family == 1 || family == 2) {
    const std::size_t n = family == 1 ? 4 : 16;
    for (address* a : {&h.source, &h.destination}) {
      a->family = family == 1 ? address::kind::v4 : address::kind::v6;
      const std::size_t off = a == &h.source ? 0 : n;
      for (std::size_t i = 0; i < n; ++i)
        a->ip[i] = at(body, off + i);
      a->port = be16(body, 2 * n + (a == &h.source ? 0 : 2));
    }
  } else if (family == 3) {
    for (address* a : {&h.source, &h.destination}) {
      a->family = address::kind::unix_path;
      const auto p = body.subspan(a == &h.source ? 0 : 108, 108);
      // A path ends at its first NUL; an abstract name (leading NUL) runs to the end
      // less its trailing NULs.
      std::size_t len = 0;
      if (at(p, 0) == 0) {
        len = p.size();
        while (len > 1 && at(p, len - 1) == 0)
          --len;
      } else {
        while (len < p.size() && at(p, len) != 0)
          ++len;
      }
      a->path.assign(reinterpret_cast<const char*>(p.data()), len);
    }
  }
  // LOCAL (a health check) or UNSPEC: no client to report.
  h.local = command == 0 || family == 0;
  if (h.local) h.source = h.destination = address{};

  // TLVs fill the rest.
  std::size_t crc_at = 0;
  std::uint32_t crc_sent = 0;
  bool has_crc = false;
  for (std::size_t p = need[family]; p < length;) {
    if (length - p < 3)
      return fail(fmt::format("PROXY v2: {} stray bytes after the last TLV", length - p));
    tlv t;
    t.type = at(body, p);
    const std::size_t n = be16(body, p + 1);
    if (n > length - p - 3)
      return fail(fmt::format("PROXY v2: TLV 0x{:02x} of {} bytes runs past the header's end "
                              "({} bytes left)",
                              t.type, n, length - p - 3));
    const auto v = body.subspan(p + 3, n);
    if (t.type == tlv_type::crc32c) {
      if (n != 4) return fail(fmt::format("PROXY v2: a CRC32C TLV of {} bytes (it takes 4)", n));
      if (has_crc) return fail("PROXY v2: two CRC32C TLVs");
      has_crc = true;
      crc_at = v2_fixed + p + 3;
      crc_sent = static_cast<std::uint32_t>(at(v, 0)) << 24 |
                 static_cast<std::uint32_t>(at(v, 1)) << 16 |
                 static_cast<std::uint32_t>(at(v, 2)) << 8 | at(v, 3);
    }
    t.value.assign(v.begin(), v.end());
    h.tlvs.push_back(std::move(t));
    p += 3 + n;
  }
  if (has_crc) {
    // Computed over the whole header with the checksum's own bytes taken as zero.
    constexpr std::array<std::byte, 4> zero{};
    std::uint32_t c = crc32c(in.first(crc_at));
    c = crc32c(zero, c);
    c = crc32c(in.subspan(crc_at + 4, total - crc_at - 4), c);
    if (c != crc_sent)
      return fail(fmt::format("PROXY v2: the CRC32C TLV says 0x{:08x}, the header's checksum is "
                              "0x{:08x}",
                              crc_sent, c));
  }
  return h;
}

} // namespace

std::string to_string(const address& a) {
  switch (a.family) {
  case address::kind::v4: return fmt::format("{}:{}", ip_text(a), a.port);
  case address::kind::v6: return fmt::format("[{}]:{}", ip_text(a), a.port);
  case address::kind::unix_path: {
    std::string p = a.path;
    if (!p.empty() && p[0] == '\0') p[0] = '@';
    return "unix:" + p;
  }
  case address::kind::none: break;
  }
  return "unknown";
}

const tlv* header::find(std::uint8_t t) const noexcept {
  for (const tlv& x : tlvs)
    if (x.type == t) return &x;
  return nullptr;
}

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc) noexcept {
  // Bitwise, reflected polynomial 0x82F63B78: headers are small.
  std::uint32_t c = ~crc;
  for (std::byte b : data) {
    c ^= static_cast<std::uint8_t>(b);
    for (int k = 0; k < 8; ++k)
      c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

parse_result parse(std::span<const std::byte> in, const limits& l) {
  // Which version: the first bytes decide, as soon as one differs from both.
  const std::size_t n1 = std::min(in.size(), v1_prefix.size());
  const bool maybe_v1 =
      std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n1), v1_prefix.begin(),
                 [](std::byte b, char c) { return static_cast<char>(b) == c; });
  const std::size_t n2 = std::min(in.size(), v2_signature.size());
  const bool maybe_v2 =
      std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n2), v2_signature.begin(),
                 [](std::byte b, std::uint8_t c) { return static_cast<std::uint8_t>(b) == c; });
  if (in.empty()) return need_more{1};
  if (maybe_v1)
    return n1 < v1_prefix.size() ? parse_result(need_more{v1_prefix.size()}) : parse_v1(in);
  if (maybe_v2)
    return n2 < v2_signature.size() ? parse_result(need_more{v2_fixed}) : parse_v2(in, l);
  return fail(fmt::format("not a PROXY protocol header (v1 begins 'PROXY ', v2 with its 12-byte "
                          "signature): the connection begins '{}'",
                          shown(in)));
}

std::string format_v1(const header& h) {
  const bool ip = !h.local && h.source.family == h.destination.family &&
                  (h.source.family == address::kind::v4 || h.source.family == address::kind::v6);
  if (!ip) return "PROXY UNKNOWN\r\n";
  return fmt::format("PROXY {} {} {} {} {}\r\n",
                     h.source.family == address::kind::v4 ? "TCP4" : "TCP6", ip_text(h.source),
                     ip_text(h.destination), h.source.port, h.destination.port);
}

std::vector<std::byte> format_v2(const header& h, bool with_crc32c) {
  std::vector<std::byte> out;
  auto put = [&](std::uint8_t b) { out.push_back(static_cast<std::byte>(b)); };
  auto put16 = [&](std::size_t v) {
    put(static_cast<std::uint8_t>(v >> 8));
    put(static_cast<std::uint8_t>(v & 0xFF));
  };
  for (auto b : v2_signature)
    put(b);
  const auto f = h.local ? address::kind::none : h.source.family;
  const unsigned family = f == address::kind::v4          ? 1
                          : f == address::kind::v6        ? 2
                          : f == address::kind::unix_path ? 3
                                                          : 0;
  put(static_cast<std::uint8_t>(0x20 | (h.local ? 0 : 1)));
  put(static_cast<std::uint8_t>(family << 4 | (family == 0 ? 0 : h.datagram ? 2 : 1)));
  put16(0); // the length, filled in below
  if (family == 1 || family == 2) {
    const std::size_t n = family == 1 ? 4 : 16;
    for (std::size_t i = 0; i < n; ++i)
      put(h.source.ip[i]);
    for (std::size_t i = 0; i < n; ++i)
      put(h.destination.ip[i]);
    put16(h.source.port);
    put16(h.destination.port);
  } else if (family == 3) {
    for (const address* a : {&h.source, &h.destination}) {
      for (std::size_t i = 0; i < 108; ++i)
        put(i < a->path.size() ? static_cast<std::uint8_t>(a->path[i]) : 0);
    }
  }
  for (const tlv& t : h.tlvs) {
    put(t.type);
    put16(t.value.size());
    out.insert(out.end(), t.value.begin(), t.value.end());
  }
  std::size_t crc_at = 0;
  if (with_crc32c) {
    put(tlv_type::crc32c);
    put16(4);
    crc_at = out.size();
    for (int i = 0; i < 4; ++i)
      put(0);
  }
  const std::size_t length = out.size() - v2_fixed;
  out[14] = static_cast<std::byte>(length >> 8);
  out[15] = static_cast<std::byte>(length & 0xFF);
  if (with_crc32c) {
    const std::uint32_t c = crc32c(out);
    for (int i = 0; i < 4; ++i)
      out[crc_at + static_cast<std::size_t>(i)] = static_cast<std::byte>(c >> (24 - 8 * i));
  }
  return out;
}

} // namespace sluice::proto::proxy
