#include <sluice/net/endpoint.hpp>

#include "../backend/socket_ops.hpp"

#include <charconv>
#include <cstring>

namespace sluice {

endpoint endpoint::v4(std::array<std::uint8_t, 4> addr, std::uint16_t port) noexcept {
  endpoint e;
  std::memcpy(e.addr_.data(), addr.data(), 4);
  e.port_ = port;
  e.family_ = family::v4;
  return e;
}

endpoint endpoint::v6(std::array<std::uint8_t, 16> addr, std::uint16_t port,
                      std::uint32_t scope_id) noexcept {
  endpoint e;
  e.addr_ = addr;
  e.port_ = port;
  e.scope_id_ = scope_id;
  e.family_ = family::v6;
  return e;
}

endpoint endpoint::loopback_v6(std::uint16_t port) noexcept {
  std::array<std::uint8_t, 16> a{};
  a[15] = 1;
  return v6(a, port);
}

namespace {

result<std::uint16_t> parse_port(std::string_view whole, std::string_view text) {
  auto bad = [&](std::string_view why) {
    return error(errc::invalid_endpoint, fmt::format("endpoint \"{}\": {}", whole, why));
  };
  if (text.empty()) return bad("missing port after ':'");
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && value > 65535))
    return bad(fmt::format("port {} is out of range 0-65535", text));
  if (ec != std::errc() || ptr != text.data() + text.size())
    return bad(fmt::format("port \"{}\" is not a decimal number", text));
  return static_cast<std::uint16_t>(value);
}

} // namespace

result<endpoint> endpoint::parse(std::string_view host, std::uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    return error(errc::invalid_endpoint, "endpoint: empty host (expected an IP address)");
  if (host.find(':') != std::string_view::npos) {
    std::array<std::uint8_t, 16> a{};
    if (!detail::sys::parse_ipv6(host, a.data()))
      return error(errc::invalid_endpoint,
                   fmt::format("endpoint: \"{}\" is not a valid IPv6 address", host));
    return v6(a, port);
  }
  std::array<std::uint8_t, 4> a{};
  if (!detail::sys::parse_ipv4(host, a.data()))
    return error(errc::invalid_endpoint,
                 fmt::format("endpoint: \"{}\" is not a valid IPv4 address (host names are "
                             "not resolved here)",
                             host));
  return v4(a, port);
}

result<endpoint> endpoint::local(std::string_view path) {
  if (path.size() > max_local_path)
    return error(errc::invalid_endpoint,
                 fmt::format("unix socket path \"{}\" is {} bytes; the limit is {}", path,
                             path.size(), max_local_path));
  if (path.find('\0') != std::string_view::npos)
    return error(errc::invalid_endpoint,
                 fmt::format("unix socket path \"{}\" contains a NUL byte (write an abstract "
                             "name with a leading '@')",
                             path));
  if (path == "@")
    return error(errc::invalid_endpoint, "unix socket path \"@\": an abstract name is empty");
  endpoint e;
  e.family_ = family::local;
  e.path_ = std::string(path);
  return e;
}

result<endpoint> endpoint::parse(std::string_view text) {
  if (text.empty()) return error(errc::invalid_endpoint, "endpoint: empty text");
  if (text.starts_with("unix:")) {
    if (text.size() == 5)
      return error(errc::invalid_endpoint,
                   fmt::format("endpoint \"{}\": missing the path after 'unix:'", text));
    return local(text.substr(5));
  }
  std::string_view host, port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos)
      return error(errc::invalid_endpoint,
                   fmt::format("endpoint \"{}\": missing ']' after the IPv6 address", text));
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':')
      return error(errc::invalid_endpoint,
                   fmt::format("endpoint \"{}\": expected ':port' after ']'", text));
    port = rest.substr(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return error(errc::invalid_endpoint, fmt::format("endpoint \"{}\": missing ':port'", text));
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos)
      return error(errc::invalid_endpoint,
                   fmt::format("endpoint \"{}\": an IPv6 address needs brackets, as in "
                               "[::1]:8080",
                               text));
    port = text.substr(colon + 1);
  }
  auto p = parse_port(text, port);
  if (!p) return std::move(p).error();
  auto ep = parse(host, *p);
  if (!ep)
    return error(errc::invalid_endpoint,
                 fmt::format("endpoint \"{}\": {}", text,
                             ep.error().context().substr(ep.error().context().find(' ') + 1)));
  return ep;
}

std::string endpoint::address_string() const {
  if (is_local()) return path_;
  return detail::sys::format_ip(*this);
}

std::string endpoint::to_string() const {
  if (is_local()) return path_.empty() ? "unix:(unnamed)" : "unix:" + path_;
  if (is_v6()) return fmt::format("[{}]:{}", address_string(), port_);
  return fmt::format("{}:{}", address_string(), port_);
}

} // namespace sluice
