// socket_ops for Windows (Winsock 2), used by the IOCP backend.
#include "../socket_ops.hpp"

// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
// clang-format on

#include <cstring>
#include <mutex>
#include <string>

namespace sluice::detail::sys {
namespace {

SOCKET sock(native_handle h) { return static_cast<SOCKET>(h); }

// Winsock must be started before the first socket call, whichever comes first; the
// IOCP backend also owns a WSAStartup/WSACleanup pair per io_context.
void ensure_winsock() {
  static std::once_flag once;
  std::call_once(once, [] {
    WSADATA d;
    WSAStartup(MAKEWORD(2, 2), &d);
  });
}

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
  ensure_winsock();
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

result<void> set_nodelay(native_handle h, bool on) {
  return set_opt(h, IPPROTO_TCP, TCP_NODELAY, BOOL(on), "setsockopt(TCP_NODELAY)");
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

void to_storage(const endpoint& ep, address_storage& out) noexcept {
  std::memset(out.bytes, 0, sizeof out.bytes);
  if (ep.is_v4()) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(ep.port());
    std::memcpy(&sa.sin_addr, ep.bytes().data(), 4);
    std::memcpy(out.bytes, &sa, sizeof sa);
    out.length = sizeof sa;
  } else {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(ep.port());
    sa.sin6_scope_id = ep.scope_id();
    std::memcpy(&sa.sin6_addr, ep.bytes().data(), 16);
    std::memcpy(out.bytes, &sa, sizeof sa);
    out.length = sizeof sa;
  }
}

endpoint from_storage(const address_storage& in) noexcept {
  sockaddr_storage ss{};
  std::memcpy(&ss, in.bytes, sizeof ss < sizeof in.bytes ? sizeof ss : sizeof in.bytes);
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sa;
    std::memcpy(&sa, in.bytes, sizeof sa);
    std::array<std::uint8_t, 16> a;
    std::memcpy(a.data(), &sa.sin6_addr, 16);
    return endpoint::v6(a, ntohs(sa.sin6_port), sa.sin6_scope_id);
  }
  sockaddr_in sa;
  std::memcpy(&sa, in.bytes, sizeof sa);
  std::array<std::uint8_t, 4> a;
  std::memcpy(a.data(), &sa.sin_addr, 4);
  return endpoint::v4(a, ntohs(sa.sin_port));
}

bool parse_ipv4(std::string_view text, unsigned char out[4]) noexcept {
  ensure_winsock();
  if (text.size() >= INET_ADDRSTRLEN) return false;
  char buf[INET_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  return ::inet_pton(AF_INET, buf, out) == 1;
}

bool parse_ipv6(std::string_view text, unsigned char out[16]) noexcept {
  ensure_winsock();
  if (text.size() >= INET6_ADDRSTRLEN) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  return ::inet_pton(AF_INET6, buf, out) == 1;
}

std::string format_ip(const endpoint& ep) {
  ensure_winsock();
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(ep.is_v4() ? AF_INET : AF_INET6, ep.bytes().data(), buf, sizeof buf);
  return buf;
}

} // namespace sluice::detail::sys
