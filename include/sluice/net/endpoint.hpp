// endpoint: an IPv4 or IPv6 address and a port, or a Unix-domain socket address.
// Parsed from and formatted as "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock" and
// "unix:@name" (an abstract name); formattable with fmt ("{}").
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

/// An IPv4 or IPv6 address and a port (no name resolution: IP literals only), or the
/// address of a Unix-domain socket (docs/local_sockets.md).
class SLUICE_API endpoint {
public:
  /// The address family.
  enum class family : std::uint8_t {
    v4,   ///< IPv4
    v6,   ///< IPv6
    local ///< a Unix-domain socket (AF_UNIX): a path or an abstract name
  };

  /// The longest path or abstract name a Unix-domain address holds (sun_path less its
  /// terminating NUL).
  static constexpr std::size_t max_local_path = 107;

  endpoint() = default; ///< 0.0.0.0:0

  /// `addr` (network order) and `port`.
  static endpoint v4(std::array<std::uint8_t, 4> addr, std::uint16_t port) noexcept;
  /// `addr` (network order), `port` and the interface of a link-local address.
  static endpoint v6(std::array<std::uint8_t, 16> addr, std::uint16_t port,
                     std::uint32_t scope_id = 0) noexcept;
  /// 127.0.0.1:`port`.
  static endpoint loopback_v4(std::uint16_t port) noexcept { return v4({127, 0, 0, 1}, port); }
  /// The IPv6 loopback address (::1) and `port`.
  static endpoint loopback_v6(std::uint16_t port) noexcept;

  /// A Unix-domain socket address: a file system path ("/run/app.sock"), or on Linux an
  /// abstract name written with a leading '@' ("@app": no file, gone with its last
  /// socket). Empty: unnamed (the address of a connecting socket). Errors name the path
  /// and the limit (max_local_path bytes, no NUL byte inside).
  static result<endpoint> local(std::string_view path);

  /// "a.b.c.d:port", "[v6]:port" or "unix:PATH". Errors name the text and what is wrong
  /// with it.
  static result<endpoint> parse(std::string_view text);
  /// An IP literal (IPv4, or IPv6 with or without brackets) and a port.
  static result<endpoint> parse(std::string_view host, std::uint16_t port);

  family address_family() const noexcept { return family_; }    ///< v4 or v6
  bool is_v4() const noexcept { return family_ == family::v4; } ///< an IPv4 address
  bool is_v6() const noexcept { return family_ == family::v6; } ///< an IPv6 address
  /// A Unix-domain socket address.
  bool is_local() const noexcept { return family_ == family::local; }
  /// The path of a Unix-domain address ("@name" for an abstract one; empty if unnamed,
  /// and for IP addresses).
  const std::string& path() const noexcept { return path_; }
  /// A Unix-domain address in the abstract namespace (Linux): no file behind it.
  bool is_abstract() const noexcept { return is_local() && !path_.empty() && path_[0] == '@'; }
  std::uint16_t port() const noexcept { return port_; }         ///< the port (host order)
  std::uint32_t scope_id() const noexcept { return scope_id_; } ///< IPv6 interface, or 0
  /// 4 meaningful bytes for IPv4, 16 for IPv6 (network order).
  const std::array<std::uint8_t, 16>& bytes() const noexcept { return addr_; }
  /// The same address with port `p`.
  endpoint with_port(std::uint16_t p) const noexcept {
    endpoint e = *this;
    e.port_ = p;
    return e;
  }

  std::string address_string() const; ///< "127.0.0.1", "::1", or the path
  /// "127.0.0.1:80", "[::1]:80", "unix:/run/app.sock", "unix:@app", "unix:(unnamed)".
  std::string to_string() const;

  /// Same family, address, port and scope (or path).
  friend bool operator==(const endpoint&, const endpoint&) = default;

private:
  std::array<std::uint8_t, 16> addr_{};
  std::uint16_t port_ = 0;
  std::uint32_t scope_id_ = 0;
  family family_ = family::v4;
  std::string path_; ///< family::local only
};

} // namespace sluice

/// \cond SPECIALIZATIONS
template <> struct fmt::formatter<sluice::endpoint> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::endpoint& ep, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(ep.to_string(), ctx);
  }
};
/// \endcond
