// socket_ops for Windows (Winsock 2), used by the IOCP backend.
#include "../socket_ops.hpp"

// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <afunix.h>
// clang-format on

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

#include <fmt/format.h>

namespace sluice::detail::sys {
namespace {

SOCKET sock(native_handle h) { return static_cast<SOCKET>(h); }

} // namespace

// Winsock must be started before the first socket call, whichever comes first; the
// IOCP backend also owns a WSAStartup/WSACleanup pair per io_context.
void ensure_socket_library() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    WSADATA d;
    WSAStartup(MAKEWORD(2, 2), &d);
  });
}

namespace {

result<void> check(int r, const char* what) {
  if (r == SOCKET_ERROR) return error(last_error(), what);
  return {};
}

template <class T>
result<void> set_opt(native_handle h, int level, int name, T value, const char* what) {
  return check(
      ::setsockopt(sock(h), level, name, reinterpret_cast<const char*>(&value), sizeof value),
      what);
}

} // namespace

std::error_code last_error() noexcept { return {WSAGetLastError(), std::system_category()}; }

// No service manager passes sockets this way on Windows.
result<std::vector<std::pair<native_handle, std::string>>> inherited_sockets(bool) {
  return std::vector<std::pair<native_handle, std::string>>{};
}

result<native_handle> open_stream(const endpoint& family_of) {
  ensure_socket_library();
  const int family = family_of.is_local() ? AF_UNIX : family_of.is_v6() ? AF_INET6 : AF_INET;
  SOCKET s = ::WSASocketW(family, SOCK_STREAM, family == AF_UNIX ? 0 : IPPROTO_TCP, nullptr, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET)
    return error(last_error(), family == AF_UNIX    ? "WSASocket(AF_UNIX)"
                               : family == AF_INET6 ? "WSASocket(AF_INET6)"
                                                    : "WSASocket(AF_INET)");
  return static_cast<native_handle>(s);
}

result<native_handle> open_datagram(const endpoint& family_of) {
  ensure_socket_library();
  const int family = family_of.is_v6() ? AF_INET6 : AF_INET;
  SOCKET s = ::WSASocketW(family, SOCK_DGRAM, IPPROTO_UDP, nullptr, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET)
    return error(last_error(), family == AF_INET6 ? "WSASocket(AF_INET6, SOCK_DGRAM)"
                                                  : "WSASocket(AF_INET, SOCK_DGRAM)");
  // SIO_UDP_CONNRESET off: an ICMP port-unreachable would otherwise fail the next
  // receive with WSAECONNRESET, whoever it came from.
  BOOL off = FALSE;
  DWORD ignored = 0;
  ::WSAIoctl(s, _WSAIOW(IOC_VENDOR, 12), &off, sizeof off, nullptr, 0, &ignored, nullptr, nullptr);
  return static_cast<native_handle>(s);
}

result<void> connect_now(native_handle h, const endpoint& ep) {
  address_storage s;
  to_storage(ep, s);
  if (::connect(sock(h), reinterpret_cast<const sockaddr*>(s.bytes), static_cast<int>(s.length)) ==
      SOCKET_ERROR)
    return error(last_error(), "connect to " + ep.to_string());
  return {};
}

result<std::pair<native_handle, native_handle>> socket_pair() {
  return error(std::make_error_code(std::errc::operation_not_supported),
               "socketpair(AF_UNIX): Windows has no socket pairs");
}

result<void> remove_stale_socket(const endpoint& ep) {
  // Windows marks an AF_UNIX socket file with its own reparse tag: anything else is
  // not ours to remove.
  WIN32_FIND_DATAA found{};
  HANDLE f = ::FindFirstFileA(ep.path().c_str(), &found);
  if (f == INVALID_HANDLE_VALUE) return {}; // gone meanwhile: bind again
  ::FindClose(f);
  constexpr DWORD af_unix_tag = 0x80000023; // IO_REPARSE_TAG_AF_UNIX
  if ((found.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) == 0 ||
      found.dwReserved0 != af_unix_tag)
    return error(errc::address_in_use,
                 fmt::format("bind {}: the path exists and is not a socket (left as it is)", ep));
  SOCKET probe = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (probe == INVALID_SOCKET)
    return error(last_error(), fmt::format("bind {}: probing the socket file", ep));
  address_storage s;
  to_storage(ep, s);
  const int r =
      ::connect(probe, reinterpret_cast<const sockaddr*>(s.bytes), static_cast<int>(s.length));
  const int err = r == 0 ? 0 : WSAGetLastError();
  ::closesocket(probe);
  if (r == 0)
    return error(errc::address_in_use,
                 fmt::format("bind {}: a server is accepting on this socket", ep));
  if (err != WSAECONNREFUSED)
    return error(std::error_code(err, std::system_category()),
                 fmt::format("bind {}: probing the socket file", ep));
  if (!::DeleteFileA(ep.path().c_str()))
    return error(std::error_code(static_cast<int>(::GetLastError()), std::system_category()),
                 fmt::format("bind {}: removing the stale socket file", ep));
  return {};
}

// Windows passes sockets with WSADuplicateSocket, not SCM_RIGHTS: nothing to pack.
std::size_t control_space(std::size_t) noexcept { return 0; }
std::size_t pack_fds(const native_handle*, std::size_t, void*) noexcept { return 0; }
void unpack_fds(const void*, std::size_t, std::vector<native_handle>&) {}
void close_fds(const void*, std::size_t) noexcept {}

result<void> bind(native_handle h, const endpoint& ep) {
  address_storage s;
  to_storage(ep, s);
  if (::bind(sock(h), reinterpret_cast<const sockaddr*>(s.bytes), static_cast<int>(s.length)) ==
      SOCKET_ERROR)
    return error(last_error(), "bind " + ep.to_string());
  return {};
}

result<void> listen(native_handle h, int backlog) {
  return check(::listen(sock(h), backlog), "listen");
}

result<void> set_reuse_address(native_handle h, bool on) {
  // On Windows SO_REUSEADDR lets another socket steal the port; exclusive use is the
  // analog of the POSIX default, and binding after a close works without it.
  (void)on;
  return set_opt(h, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, BOOL(TRUE), "setsockopt(SO_EXCLUSIVEADDRUSE)");
}

result<void> set_reuse_port(native_handle, bool) {
  // Windows has no SO_REUSEPORT (its SO_REUSEADDR lets a socket steal a port instead of
  // sharing it): a runtime shares a port by hand-off there.
  return error(errc::no_protocol_option, "SO_REUSEPORT: not available on Windows");
}

result<void> set_nodelay(native_handle h, bool on) {
  return set_opt(h, IPPROTO_TCP, TCP_NODELAY, BOOL(on), "setsockopt(TCP_NODELAY)");
}

result<bool> nodelay(native_handle h) {
  BOOL v = FALSE;
  int len = sizeof v;
  if (::getsockopt(sock(h), IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<char*>(&v), &len) != 0)
    return error(last_error(), "getsockopt(TCP_NODELAY)");
  return v != FALSE;
}

result<void> set_linger(native_handle h, bool on, int seconds) {
  ::linger l{};
  l.l_onoff = on ? 1 : 0;
  l.l_linger = static_cast<u_short>(seconds);
  return set_opt(h, SOL_SOCKET, SO_LINGER, l, "setsockopt(SO_LINGER)");
}

result<bool> is_listening(native_handle h) {
  BOOL v = FALSE;
  int len = sizeof v;
  if (::getsockopt(sock(h), SOL_SOCKET, SO_ACCEPTCONN, reinterpret_cast<char*>(&v), &len) ==
      SOCKET_ERROR)
    return error(last_error(), "getsockopt(SO_ACCEPTCONN)");
  return v != FALSE;
}

result<endpoint> local_endpoint(native_handle h) {
  address_storage s;
  int len = sizeof s.bytes;
  if (::getsockname(sock(h), reinterpret_cast<sockaddr*>(s.bytes), &len) == SOCKET_ERROR)
    return error(last_error(), "getsockname");
  s.length = static_cast<std::uint32_t>(len);
  return from_storage(s);
}

result<endpoint> remote_endpoint(native_handle h) {
  address_storage s;
  int len = sizeof s.bytes;
  if (::getpeername(sock(h), reinterpret_cast<sockaddr*>(s.bytes), &len) == SOCKET_ERROR)
    return error(last_error(), "getpeername");
  s.length = static_cast<std::uint32_t>(len);
  return from_storage(s);
}

void close(native_handle h) noexcept {
  if (h != invalid_handle) ::closesocket(sock(h));
}

void abort(native_handle h) noexcept {
  if (h == invalid_handle) return;
  (void)set_linger(h, true, 0);
  ::closesocket(sock(h));
}

#include "../sockaddr_conversions.inc"

} // namespace sluice::detail::sys
