// endpoint: an IPv4 or IPv6 address and a port. Parsed from and formatted as
// "127.0.0.1:8080" and "[::1]:8080"; formattable with fmt ("{}").
#pragma once

#include <sluice/export.hpp>

#include <array>
#include <compare>
#include <cstdint>
#include <fmt/format.h>
#include <sluice/error.hpp>
#include <string>
#include <string_view>

namespace sluice {

class SLUICE_API endpoint {
public:
  enum class family : std::uint8_t { v4, v6 };

  endpoint() = default; // 0.0.0.0:0

  static endpoint v4(std::array<std::uint8_t, 4> addr, std::uint16_t port) noexcept;
  static endpoint v6(std::array<std::uint8_t, 16> addr, std::uint16_t port,
                     std::uint32_t scope_id = 0) noexcept;
  static endpoint loopback_v4(std::uint16_t port) noexcept { return v4({127, 0, 0, 1}, port); }
  static endpoint loopback_v6(std::uint16_t port) noexcept;

  // "a.b.c.d:port" or "[v6]:port". Errors name the text and what is wrong with it.
  static result<endpoint> parse(std::string_view text);
  // An IP literal (IPv4, or IPv6 with or without brackets) and a port.
  static result<endpoint> parse(std::string_view host, std::uint16_t port);

  family address_family() const noexcept { return family_; }
  bool is_v4() const noexcept { return family_ == family::v4; }
  bool is_v6() const noexcept { return family_ == family::v6; }
  std::uint16_t port() const noexcept { return port_; }
  std::uint32_t scope_id() const noexcept { return scope_id_; }
  // 4 meaningful bytes for IPv4, 16 for IPv6 (network order).
  const std::array<std::uint8_t, 16>& bytes() const noexcept { return addr_; }
  endpoint with_port(std::uint16_t p) const noexcept {
    endpoint e = *this;
    e.port_ = p;
    return e;
  }

  std::string address_string() const; // "127.0.0.1", "::1"
  std::string to_string() const;      // "127.0.0.1:80", "[::1]:80"

  friend bool operator==(const endpoint&, const endpoint&) = default;

private:
  std::array<std::uint8_t, 16> addr_{};
  std::uint16_t port_ = 0;
  std::uint32_t scope_id_ = 0;
  family family_ = family::v4;
};

} // namespace sluice

template <> struct fmt::formatter<sluice::endpoint> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::endpoint& ep, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(ep.to_string(), ctx);
  }
};
