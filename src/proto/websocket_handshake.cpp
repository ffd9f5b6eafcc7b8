// The WebSocket opening handshake and permessage-deflate negotiation (RFC 6455 4,
// RFC 7692 5-7), sans-io. docs/websocket.md explains the choices.
#include <sluice/proto/websocket_handshake.hpp>

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace sluice::proto::websocket {

// ------------------------------------------------------------ SHA-1, base64

namespace detail {

namespace {
constexpr std::uint32_t rotl(std::uint32_t x, int n) noexcept { return (x << n) | (x >> (32 - n)); }
} // namespace

std::array<std::byte, 20> sha1(std::span<const std::byte> data) noexcept {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const std::uint64_t bits = std::uint64_t(data.size()) * 8;
  // The message, a 0x80 byte, zeros to 56 mod 64, the bit length big-endian.
  const std::size_t padded = ((data.size() + 8) / 64 + 1) * 64;
  auto byte_at = [&](std::size_t i) -> std::uint8_t {
    if (i < data.size()) return static_cast<std::uint8_t>(data[i]);
    if (i == data.size()) return 0x80;
    if (i >= padded - 8) return static_cast<std::uint8_t>(bits >> (8 * (padded - 1 - i)));
    return 0;
  };
  for (std::size_t block = 0; block < padded; block += 64) {
    std::uint32_t w[80];
    for (int t = 0; t < 16; ++t)
      w[t] = (std::uint32_t(byte_at(block + 4 * t)) << 24) |
             (std::uint32_t(byte_at(block + 4 * t + 1)) << 16) |
             (std::uint32_t(byte_at(block + 4 * t + 2)) << 8) |
             std::uint32_t(byte_at(block + 4 * t + 3));
    for (int t = 16; t < 80; ++t)
      w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; ++t) {
      std::uint32_t f, k;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      const std::uint32_t tmp = rotl(a, 5) + f + e + k + w[t];
      e = d;
      d = c;
      c = rotl(b, 30);
      b = a;
      a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  std::array<std::byte, 20> out{};
  for (int i = 0; i < 20; ++i)
    out[static_cast<std::size_t>(i)] = std::byte((h[i / 4] >> (24 - 8 * (i % 4))) & 0xFF);
  return out;
}

namespace {
constexpr char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
int b64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
} // namespace

std::string base64(std::span<const std::byte> data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < data.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, data.size() - i);
    std::uint32_t v = std::uint32_t(data[i]) << 16;
    if (n > 1) v |= std::uint32_t(data[i + 1]) << 8;
    if (n > 2) v |= std::uint32_t(data[i + 2]);
    out += b64_alphabet[(v >> 18) & 63];
    out += b64_alphabet[(v >> 12) & 63];
    out += n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
    out += n > 2 ? b64_alphabet[v & 63] : '=';
  }
  return out;
}

std::optional<std::vector<std::byte>> unbase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<std::byte> out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = text[i + static_cast<std::size_t>(j)];
      if (c == '=' && last && j >= 2) {
        v[j] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt; // data after padding
      v[j] = b64_value(c);
      if (v[j] < 0) return std::nullopt;
    }
    const std::uint32_t x = (std::uint32_t(v[0]) << 18) | (std::uint32_t(v[1]) << 12) |
                            (std::uint32_t(v[2]) << 6) | std::uint32_t(v[3]);
    out.push_back(std::byte(x >> 16));
    if (pad < 2) out.push_back(std::byte((x >> 8) & 0xFF));
    if (pad < 1) out.push_back(std::byte(x & 0xFF));
    // Canonical form only: the bits a padded group drops must be zero.
    if ((pad == 1 && (x & 0xFF) != 0) || (pad == 2 && (x & 0xFFFF) != 0)) return std::nullopt;
  }
  return out;
}

} // namespace detail

std::string accept_key(std::string_view key) {
  static constexpr std::string_view magic = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string joined;
  joined.reserve(key.size() + magic.size());
  joined.append(key).append(magic);
  const auto digest = detail::sha1(std::as_bytes(std::span(joined.data(), joined.size())));
  return detail::base64(digest);
}

std::string make_key(std::span<const std::byte, 16> nonce) { return detail::base64(nonce); }

// ------------------------------------------------------- header field lists

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Splits every field named `name` on `sep`, outside quoted strings; empty elements
// are dropped (RFC 9110 5.6.1).
std::vector<std::string_view> list_elements(const http1::fields& f, std::string_view name,
                                            char sep = ',') {
  std::vector<std::string_view> out;
  for (const auto& fl : f.all()) {
    if (!iequals(fl.name, name)) continue;
    std::string_view v = fl.value;
    bool quoted = false;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= v.size(); ++i) {
      if (i < v.size() && v[i] == '"') quoted = !quoted;
      if (i < v.size() && v[i] == '\\' && quoted) {
        ++i;
        continue;
      }
      if (i == v.size() || (v[i] == sep && !quoted)) {
        auto e = trim(v.substr(start, i - start));
        if (!e.empty()) out.push_back(e);
        start = i + 1;
      }
    }
  }
  return out;
}

bool has_token(const http1::fields& f, std::string_view name, std::string_view token) {
  for (auto e : list_elements(f, name))
    if (iequals(e, token)) return true;
  return false;
}

// One extension in a Sec-WebSocket-Extensions list: its name and parameters.
struct extension {
  std::string_view name;
  std::vector<std::pair<std::string_view, std::optional<std::string>>> params;
};

std::optional<extension> parse_extension(std::string_view element) {
  extension ext;
  std::size_t start = 0;
  bool quoted = false, first = true;
  for (std::size_t i = 0; i <= element.size(); ++i) {
    if (i < element.size() && element[i] == '"') quoted = !quoted;
    if (i < element.size() && (element[i] != ';' || quoted)) continue;
    const auto part = trim(element.substr(start, i - start));
    start = i + 1;
    if (part.empty()) return std::nullopt;
    if (first) {
      ext.name = part;
      first = false;
      continue;
    }
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      ext.params.emplace_back(part, std::nullopt);
      continue;
    }
    auto value = trim(part.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      std::string unq;
      for (std::size_t j = 1; j + 1 < value.size(); ++j) {
        if (value[j] == '\\' && j + 2 < value.size()) ++j;
        unq += value[j];
      }
      ext.params.emplace_back(trim(part.substr(0, eq)), std::move(unq));
    } else {
      ext.params.emplace_back(trim(part.substr(0, eq)), std::string(value));
    }
  }
  if (quoted) return std::nullopt;
  return ext;
}

std::optional<std::uint8_t> window_bits(const std::string& v) {
  if (v.empty() || v.size() > 2 || (v.size() == 2 && v[0] == '0')) return std::nullopt;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n < 8 || n > 15) return std::nullopt;
  return static_cast<std::uint8_t>(n);
}

// The parameters of one permessage-deflate element, as written; nullopt for unknown,
// repeated or invalid ones. `client_bits_bare`: client_max_window_bits without a
// value (allowed in an offer only).
struct deflate_element {
  deflate_params p;
  bool server_bits = false;
  bool client_bits = false;
  bool client_bits_bare = false;
};

std::optional<deflate_element> read_deflate(const extension& e) {
  deflate_element d;
  bool seen[4] = {false, false, false, false};
  for (const auto& [name, value] : e.params) {
    int which = -1;
    if (iequals(name, "server_no_context_takeover")) which = 0;
    if (iequals(name, "client_no_context_takeover")) which = 1;
    if (iequals(name, "server_max_window_bits")) which = 2;
    if (iequals(name, "client_max_window_bits")) which = 3;
    if (which < 0 || seen[which]) return std::nullopt;
    seen[which] = true;
    switch (which) {
    case 0:
      if (value) return std::nullopt;
      d.p.server_no_context_takeover = true;
      break;
    case 1:
      if (value) return std::nullopt;
      d.p.client_no_context_takeover = true;
      break;
    case 2: {
      if (!value) return std::nullopt;
      auto b = window_bits(*value);
      if (!b) return std::nullopt;
      d.p.server_max_window_bits = *b;
      d.server_bits = true;
      break;
    }
    default:
      d.client_bits = true;
      if (!value) {
        d.client_bits_bare = true;
        break;
      }
      auto b = window_bits(*value);
      if (!b) return std::nullopt;
      d.p.client_max_window_bits = *b;
      break;
    }
  }
  return d;
}

std::uint8_t clamp_bits(std::uint8_t b) noexcept { return std::clamp<std::uint8_t>(b, 9, 15); }

} // namespace

std::string to_string(const deflate_params& p) {
  std::string s = "permessage-deflate";
  if (p.server_no_context_takeover) s += "; server_no_context_takeover";
  if (p.client_no_context_takeover) s += "; client_no_context_takeover";
  if (p.server_max_window_bits != 15)
    s += fmt::format("; server_max_window_bits={}", p.server_max_window_bits);
  if (p.client_max_window_bits != 15)
    s += fmt::format("; client_max_window_bits={}", p.client_max_window_bits);
  return s;
}

// ------------------------------------------------------------------ server

namespace {

refused refuse(int status, std::string reason) {
  refused r;
  r.response.status = status;
  r.response.keep_alive = false;
  r.reason = std::move(reason);
  return r;
}

// The first permessage-deflate offer this server can take, and the answer to it.
std::optional<deflate_params> accept_deflate(const http1::request& req,
                                             const handshake_options& o) {
  const std::uint8_t ours = clamp_bits(o.deflate_max_window_bits);
  for (auto element : list_elements(req.headers, "sec-websocket-extensions")) {
    auto ext = parse_extension(element);
    if (!ext || !iequals(ext->name, "permessage-deflate")) continue;
    auto offer = read_deflate(*ext);
    if (!offer) continue; // declined (RFC 7692 5): try the next offer
    deflate_params p;
    p.server_no_context_takeover =
        offer->p.server_no_context_takeover || o.deflate_no_context_takeover;
    // Asking the client not to take its context over is always allowed.
    p.client_no_context_takeover =
        offer->p.client_no_context_takeover || o.deflate_no_context_takeover;
    // Our window: at most what the client allows, and zlib needs 9 at least.
    if (offer->server_bits && offer->p.server_max_window_bits < 9) continue;
    p.server_max_window_bits =
        offer->server_bits ? std::min(ours, offer->p.server_max_window_bits) : ours;
    // The client's window may only be limited if it said it can be
    // (client_max_window_bits in its offer); otherwise it is 15.
    p.client_max_window_bits = offer->client_bits ? offer->p.client_max_window_bits : 15;
    return p;
  }
  return std::nullopt;
}

} // namespace

std::variant<accepted, refused> server_handshake(const http1::request& req,
                                                 const handshake_options& o) {
  const bool upgrade = has_token(req.headers, "upgrade", "websocket") &&
                       has_token(req.headers, "connection", "upgrade");
  if (req.method != "GET") {
    auto r = refuse(405, fmt::format("a WebSocket handshake must be GET, not {}", req.method));
    r.response.headers.add("Allow", "GET");
    return r;
  }
  if (!upgrade) {
    auto r = refuse(426, "not a WebSocket handshake (no \"Upgrade: websocket\" with "
                         "\"Connection: upgrade\")");
    r.response.headers.add("Upgrade", "websocket");
    r.response.headers.add("Connection", "Upgrade, close");
    return r;
  }
  if (req.minor_version < 1) return refuse(400, "a WebSocket handshake needs HTTP/1.1");
  if (!req.headers.find("host")) return refuse(400, "a WebSocket handshake without Host");
  if (req.chunked || req.content_length > 0)
    return refuse(400, "a WebSocket handshake with a body");
  const std::string* version = req.headers.find("sec-websocket-version");
  if (!version || req.headers.count("sec-websocket-version") != 1 || *version != "13") {
    auto r =
        refuse(426, version ? fmt::format("Sec-WebSocket-Version {} (only 13 is spoken)", *version)
                            : std::string("no Sec-WebSocket-Version (13 is spoken)"));
    r.response.headers.add("Sec-WebSocket-Version", "13");
    return r;
  }
  const std::string* key = req.headers.find("sec-websocket-key");
  if (!key || req.headers.count("sec-websocket-key") != 1)
    return refuse(400, key ? "more than one Sec-WebSocket-Key" : "no Sec-WebSocket-Key");
  const auto nonce = detail::unbase64(*key);
  if (!nonce || nonce->size() != 16)
    return refuse(
        400, fmt::format("Sec-WebSocket-Key '{}' is not 16 bytes in base64", key->substr(0, 64)));

  accepted a;
  a.response.status = 101;
  a.response.headers.add("Upgrade", "websocket");
  a.response.headers.add("Connection", "Upgrade");
  a.response.headers.add("Sec-WebSocket-Accept", accept_key(*key));
  const auto offered = list_elements(req.headers, "sec-websocket-protocol");
  for (const auto& mine : o.subprotocols) {
    if (std::find(offered.begin(), offered.end(), std::string_view(mine)) != offered.end()) {
      a.subprotocol = mine;
      a.response.headers.add("Sec-WebSocket-Protocol", mine);
      break;
    }
  }
  if (o.accept_deflate) {
    a.deflate = accept_deflate(req, o);
    if (a.deflate) a.response.headers.add("Sec-WebSocket-Extensions", to_string(*a.deflate));
  }
  return a;
}

// ------------------------------------------------------------------ client

http1::request client_request(std::string_view host, std::string_view target, std::string_view key,
                              const handshake_options& o, const http1::fields& extra) {
  http1::request r;
  r.method = "GET";
  r.target = std::string(target.empty() ? "/" : target);
  r.headers.add("Host", std::string(host));
  r.headers.add("Upgrade", "websocket");
  r.headers.add("Connection", "Upgrade");
  r.headers.add("Sec-WebSocket-Key", std::string(key));
  r.headers.add("Sec-WebSocket-Version", "13");
  if (!o.subprotocols.empty()) {
    std::string list;
    for (const auto& p : o.subprotocols)
      list += (list.empty() ? "" : ", ") + p;
    r.headers.add("Sec-WebSocket-Protocol", std::move(list));
  }
  if (o.offer_deflate) {
    std::string offer = "permessage-deflate";
    if (o.deflate_no_context_takeover)
      offer += "; client_no_context_takeover; server_no_context_takeover";
    const std::uint8_t bits = clamp_bits(o.deflate_max_window_bits);
    offer += bits == 15 ? std::string("; client_max_window_bits")
                        : fmt::format("; client_max_window_bits={}", bits);
    r.headers.add("Sec-WebSocket-Extensions", std::move(offer));
  }
  for (const auto& f : extra.all())
    r.headers.add(f.name, f.value);
  return r;
}

result<negotiated> check_response(const http1::response_header& resp, std::string_view key,
                                  const handshake_options& o) {
  auto fail = [](std::string what) {
    return error(errc::protocol_error, fmt::format("websocket handshake: {}", what));
  };
  if (resp.status != 101)
    return fail(fmt::format("the server answered {} {}", resp.status,
                            resp.reason.empty() ? http1::reason_phrase(resp.status)
                                                : std::string_view(resp.reason)));
  if (!has_token(resp.headers, "upgrade", "websocket"))
    return fail("the 101 response has no \"Upgrade: websocket\"");
  if (!has_token(resp.headers, "connection", "upgrade"))
    return fail("the 101 response has no \"Connection: upgrade\"");
  const std::string* accept = resp.headers.find("sec-websocket-accept");
  if (!accept) return fail("the 101 response has no Sec-WebSocket-Accept");
  if (*accept != accept_key(key))
    return fail(fmt::format("Sec-WebSocket-Accept '{}' does not match the key (expected '{}')",
                            accept->substr(0, 64), accept_key(key)));

  negotiated n;
  const auto protocols = list_elements(resp.headers, "sec-websocket-protocol");
  if (protocols.size() > 1) return fail("the server chose more than one subprotocol");
  if (protocols.size() == 1) {
    const auto chosen = protocols.front();
    if (std::find(o.subprotocols.begin(), o.subprotocols.end(), chosen) == o.subprotocols.end())
      return fail(fmt::format("the server chose subprotocol '{}', which was not offered",
                              chosen.substr(0, 64)));
    n.subprotocol = std::string(chosen);
  }

  for (auto element : list_elements(resp.headers, "sec-websocket-extensions")) {
    auto ext = parse_extension(element);
    if (!ext) return fail(fmt::format("a malformed extension '{}'", element.substr(0, 64)));
    if (!iequals(ext->name, "permessage-deflate") || !o.offer_deflate)
      return fail(fmt::format("the server chose extension '{}', which was not offered",
                              ext->name.substr(0, 64)));
    if (n.deflate) return fail("the server chose permessage-deflate twice");
    auto d = read_deflate(*ext);
    if (!d || d->client_bits_bare)
      return fail(fmt::format("invalid permessage-deflate parameters '{}'", element.substr(0, 64)));
    const std::uint8_t ours = clamp_bits(o.deflate_max_window_bits);
    if (d->client_bits && d->p.client_max_window_bits > ours)
      return fail(fmt::format("client_max_window_bits={} is above the {} offered",
                              d->p.client_max_window_bits, ours));
    if (d->client_bits && d->p.client_max_window_bits < 9)
      return fail("client_max_window_bits=8, which zlib cannot compress with");
    if (!d->client_bits) d->p.client_max_window_bits = ours;
    if (o.deflate_no_context_takeover && !d->p.server_no_context_takeover)
      return fail("the server refused server_no_context_takeover, which was asked for");
    n.deflate = d->p;
  }
  return n;
}

} // namespace sluice::proto::websocket
