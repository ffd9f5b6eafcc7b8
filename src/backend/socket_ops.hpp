// Synchronous socket calls shared by the backends of one platform (socket, bind,
// listen, options, addresses, close). Declared here without OS types; defined in
// src/backend/posix/ (Linux) or src/backend/iocp/ (Windows).
#pragma once

#include <cstdint>
#include <sluice/detail/operation.hpp>
#include <sluice/error.hpp>
#include <sluice/net/endpoint.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::detail::sys {

// A close-on-exec TCP socket of the endpoint's family.
result<native_handle> open_tcp(const endpoint& family_of);
result<void> bind(native_handle h, const endpoint& ep);
result<void> listen(native_handle h, int backlog);
result<void> set_reuse_address(native_handle h, bool on);
// SO_REUSEPORT: several sockets listen on one port, the kernel spreads connections
// over them. Fails with errc::no_protocol_option where the OS has no such option.
result<void> set_reuse_port(native_handle h, bool on);
result<void> set_nodelay(native_handle h, bool on);
result<bool> nodelay(native_handle h);

result<void> set_linger(native_handle h, bool on, int seconds);
result<endpoint> local_endpoint(native_handle h);
result<endpoint> remote_endpoint(native_handle h);
// Closes a handle without touching any event loop.
void close(native_handle h) noexcept;
// Closes with an RST instead of a FIN (SO_LINGER on, zero timeout).
void abort(native_handle h) noexcept;

void to_storage(const endpoint& ep, address_storage& out) noexcept;
endpoint from_storage(const address_storage& in) noexcept;

// Text <-> binary address (inet_pton / inet_ntop).
bool parse_ipv4(std::string_view text, unsigned char out[4]) noexcept;
bool parse_ipv6(std::string_view text, unsigned char out[16]) noexcept;
std::string format_ip(const endpoint& ep);

// getaddrinfo (blocks): the distinct addresses of `host` with the port of `service`,
// in the system's order. family: 0 any, 4 IPv4 only, 6 IPv6 only. An error's context
// is the resolver's reason (the caller names the host and service).
result<std::vector<endpoint>> lookup(const std::string& host, const std::string& service,
                                     int family);

// Starts the platform socket library where one must be started (Winsock); idempotent.
void ensure_socket_library() noexcept;

// The last OS error as an error_code (errno / WSAGetLastError()).
std::error_code last_error() noexcept;

} // namespace sluice::detail::sys
