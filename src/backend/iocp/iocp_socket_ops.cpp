// socket_ops for Windows (Winsock 2), used by the IOCP backend.
#include "../socket_ops.hpp"

// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
// clang-format on

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

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

result<native_handle> open_tcp(const endpoint& family_of) {
  ensure_socket_library();
  const int family = family_of.is_v6() ? AF_INET6 : AF_INET;
  SOCKET s = ::WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET)
    return error(last_error(), family_of.is_v6() ? "WSASocket(AF_INET6)" : "WSASocket(AF_INET)");
  return static_cast<native_handle>(s);
}

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
