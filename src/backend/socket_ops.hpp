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
#include <utility>
#include <vector>

namespace sluice::detail::sys {

// A close-on-exec stream socket of the endpoint's family: TCP for IP, AF_UNIX for local.
result<native_handle> open_stream(const endpoint& family_of);
// A close-on-exec UDP socket of the endpoint's family (Windows: ICMP port-unreachable
// reports, SIO_UDP_CONNRESET, turned off so that one unreachable peer cannot fail the
// receives of a socket serving many).
result<native_handle> open_datagram(const endpoint& family_of);
// connect(2) for a datagram socket: sets its peer at once. Errors name the endpoint.
result<void> connect_now(native_handle h, const endpoint& ep);
// A connected pair of AF_UNIX stream sockets (socketpair; not on Windows).
result<std::pair<native_handle, native_handle>> socket_pair();
// bind() found `ep` (a Unix-domain path) in use: removes the file if it is a socket
// nobody accepts on (a crashed server's leftover). Errors say why it was kept: a server
// is accepting on it, or it is not a socket.
result<void> remove_stale_socket(const endpoint& ep);

// SCM_RIGHTS descriptor passing over AF_UNIX (POSIX only; Windows fails with
// operation_not_supported). The control buffer's size for `n` descriptors:
std::size_t control_space(std::size_t n) noexcept;
// Writes an SCM_RIGHTS message carrying `fds` into `control`; returns the bytes used.
std::size_t pack_fds(const native_handle* fds, std::size_t n, void* control) noexcept;
// Appends the descriptors of every SCM_RIGHTS message in `control` to `out`.
void unpack_fds(const void* control, std::size_t length, std::vector<native_handle>& out);
// Closes the descriptors of a received control buffer nobody will take.
void close_fds(const void* control, std::size_t length) noexcept;
// One datagram, without waiting, into a pool buffer of `size` bytes at `buf` in the
// layout of a recv_lent of a datagram (datagram_header, the sender, the bytes). Returns
// the bytes used (op.res), or -errno (-EAGAIN: none there). POSIX only.
std::int64_t recv_datagram_now(native_handle h, std::byte* buf, std::size_t size) noexcept;
// The same layout's header, written after a receive put the sender and `stored` bytes in
// place; `whole` is the datagram's size as the OS told it.
void finish_datagram(std::byte* buf, std::size_t size, std::uint32_t name_length, std::size_t whole,
                     bool truncated) noexcept;
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
// SO_ACCEPTCONN: whether `h` is a listening socket.
result<bool> is_listening(native_handle h);
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
std::string format_ip(const endpoint& ep); // IP addresses only

// getaddrinfo (blocks): the distinct addresses of `host` with the port of `service`,
// in the system's order. family: 0 any, 4 IPv4 only, 6 IPv6 only. An error's context
// is the resolver's reason (the caller names the host and service).
result<std::vector<endpoint>> lookup(const std::string& host, const std::string& service,
                                     int family);

// systemd socket activation: the descriptors LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES pass to
// this process (from 3 on), made close-on-exec, with their names; empty when none. With
// `unset`, the variables are removed. Windows: empty.
result<std::vector<std::pair<native_handle, std::string>>> inherited_sockets(bool unset);

// Starts the platform socket library where one must be started (Winsock); idempotent.
void ensure_socket_library() noexcept;

// The last OS error as an error_code (errno / WSAGetLastError()).
std::error_code last_error() noexcept;

} // namespace sluice::detail::sys
