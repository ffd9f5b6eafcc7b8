// Request targets, route patterns and JSON escaping: include/sluice/proto/http_text.hpp.
#include <sluice/proto/http_text.hpp>

#include <algorithm>

namespace sluice::proto::http1 {

namespace {
int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The segments of a path without its leading '/': "/a/b" -> {"a", "b"}; "/" -> {""}.
std::vector<std::string_view> segments_of(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  for (;;) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    path.remove_prefix(slash + 1);
  }
}
} // namespace

target_parts split_target(std::string_view target) noexcept {
  target = target.substr(0, target.find('#'));
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt; // needs two more characters
      const int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::vector<query_param>> parse_query(std::string_view query) {
  std::vector<query_param> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue; // "a=1&&b=2"
    const auto eq = pair.find('=');
    auto name = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!name || !value) return std::nullopt;
    out.push_back({std::move(*name), std::move(*value)});
  }
  return out;
}

std::optional<route_pattern> route_pattern::parse(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') return std::nullopt;
  route_pattern r;
  r.text_ = std::string(pattern);
  const auto parts = segments_of(pattern);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view p = parts[i];
    segment s;
    if (!p.empty() && p.front() == '{') {
      if (p.size() < 3 || p.back() != '}') return std::nullopt;
      std::string_view name = p.substr(1, p.size() - 2);
      if (name.back() == '*') {
        if (i + 1 != parts.size()) return std::nullopt; // the rest must be last
        s.rest = true;
        name.remove_suffix(1);
      }
      if (name.empty() || name.find_first_of("{}*/") != std::string_view::npos) return std::nullopt;
      for (const auto& other : r.segments_)
        if (other.param && other.text == name) return std::nullopt;
      s.param = true;
      s.text = std::string(name);
    } else {
      if (p.find_first_of("{}") != std::string_view::npos) return std::nullopt;
      s.text = std::string(p);
    }
    r.segments_.push_back(std::move(s));
  }
  return r;
}

std::optional<std::vector<std::pair<std::string, std::string>>>
route_pattern::match(std::string_view path) const {
  const auto parts = segments_of(path);
  std::vector<std::pair<std::string, std::string>> params;
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    const segment& s = segments_[i];
    if (s.rest) { // the rest of the path, decoded as a whole
      std::string_view rest = path;
      if (!rest.empty()) rest.remove_prefix(1);
      for (std::size_t k = 0; k < i; ++k)
        rest.remove_prefix(std::min(rest.size(), parts[k].size() + 1));
      auto decoded = percent_decode(i < parts.size() ? rest : std::string_view());
      if (!decoded) return std::nullopt;
      params.emplace_back(s.text, std::move(*decoded));
      return params;
    }
    if (i >= parts.size()) return std::nullopt;
    auto decoded = percent_decode(parts[i]);
    if (!decoded) return std::nullopt;
    if (s.param) {
      if (decoded->empty()) return std::nullopt; // a parameter is never empty
      params.emplace_back(s.text, std::move(*decoded));
    } else if (*decoded != s.text) {
      return std::nullopt;
    }
  }
  if (parts.size() != segments_.size()) return std::nullopt;
  return params;
}

std::string json_escape(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 8);
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then its continuation bytes,
    // without overlong forms, surrogates or code points past U+10FFFF.
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF; // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool valid = len != 0 && i + len <= n && p[i + 1] >= lo && p[i + 1] <= hi;
    for (std::size_t k = 2; valid && k < len; ++k)
      valid = (p[i + k] & 0xC0) == 0x80;
    if (valid) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD"; // U+FFFD for the byte that cannot start a character
      ++i;
    }
  }
  return out;
}

std::optional<url_parts> parse_url(std::string_view url, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<url_parts> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  constexpr std::string_view scheme = "http://";
  if (url.size() < scheme.size() ||
      !std::equal(scheme.begin(), scheme.end(), url.begin(), [](char a, char b) {
        return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
      })) {
    if (url.substr(0, 8) == "https://" || url.substr(0, 8) == "HTTPS://")
      return fail("https is not supported (plain http:// only)");
    return fail("not an http:// URL");
  }
  std::string_view rest = url.substr(scheme.size());
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const auto path_at = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_at);
  std::string_view target = path_at == std::string_view::npos ? "" : rest.substr(path_at);
  if (authority.find('@') != std::string_view::npos)
    return fail("userinfo (user@host) is not supported");
  url_parts out;
  out.authority = std::string(authority);
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return fail("an IPv6 host without its ']'");
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && port.front() != ':') return fail("text after the IPv6 host");
    if (!port.empty()) port.remove_prefix(1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) return fail("no host");
  for (unsigned char c : host)
    if (c <= 0x20 || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '[' || c == ']')
      return fail("an invalid character in the host");
  if (!port.empty() || authority.ends_with(":")) {
    unsigned value = 0;
    if (port.empty() || port.size() > 5) return fail("an invalid port");
    for (char c : port) {
      if (c < '0' || c > '9') return fail("an invalid port");
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return fail("a port outside 1-65535");
    out.port = static_cast<std::uint16_t>(value);
  }
  for (unsigned char c : target)
    if (c <= 0x20 || c == 0x7f) return fail("a space or control character in the path");
  out.host = std::string(host);
  out.target = target.empty()
                   ? "/"
                   : (target.front() == '?' ? "/" + std::string(target) : std::string(target));
  return out;
}

} // namespace sluice::proto::http1
