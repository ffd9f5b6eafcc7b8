// socket_ops for POSIX systems (the uring and asio backends on Linux).
#include "../socket_ops.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice::detail::sys {
namespace {

int fd_of(native_handle h) { return static_cast<int>(h); }

result<void> check(int r, const char* what) {
  if (r < 0) return error(last_error(), what);
  return {};
}

template <class T>
result<void> set_opt(native_handle h, int level, int name, T value, const char* what) {
  return check(::setsockopt(fd_of(h), level, name, &value, sizeof value), what);
}

} // namespace

// POSIX sockets need no start-up.
void ensure_socket_library() noexcept {}

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

result<native_handle> open_tcp(const endpoint& family_of) {
  const int domain = family_of.is_v6() ? AF_INET6 : AF_INET;
  // Blocking mode: io_uring waits for readiness itself; a backend that needs
  // O_NONBLOCK (a reactor) sets it.
  const int fd = ::socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return error(last_error(), family_of.is_v6() ? "socket(AF_INET6, SOCK_STREAM)"
                                                 : "socket(AF_INET, SOCK_STREAM)");
  return static_cast<native_handle>(fd);
}

result<void> bind(native_handle h, const endpoint& ep) {
  address_storage s;
  to_storage(ep, s);
  if (::bind(fd_of(h), reinterpret_cast<const sockaddr*>(s.bytes), s.length) < 0)
    return error(last_error(), "bind " + ep.to_string());
  return {};
}

result<void> listen(native_handle h, int backlog) {
  return check(::listen(fd_of(h), backlog), "listen");
}

result<void> set_reuse_address(native_handle h, bool on) {
  return set_opt(h, SOL_SOCKET, SO_REUSEADDR, int(on), "setsockopt(SO_REUSEADDR)");
}

result<void> set_reuse_port(native_handle h, bool on) {
  return set_opt(h, SOL_SOCKET, SO_REUSEPORT, int(on), "setsockopt(SO_REUSEPORT)");
}

result<void> set_nodelay(native_handle h, bool on) {
  return set_opt(h, IPPROTO_TCP, TCP_NODELAY, int(on), "setsockopt(TCP_NODELAY)");
}

result<bool> nodelay(native_handle h) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd_of(h), IPPROTO_TCP, TCP_NODELAY, &v, &len) < 0)
    return error(last_error(), "getsockopt(TCP_NODELAY)");
  return v != 0;
}

result<void> set_linger(native_handle h, bool on, int seconds) {
  ::linger l{};
  l.l_onoff = on ? 1 : 0;
  l.l_linger = seconds;
  return set_opt(h, SOL_SOCKET, SO_LINGER, l, "setsockopt(SO_LINGER)");
}

result<endpoint> local_endpoint(native_handle h) {
  address_storage s;
  socklen_t len = sizeof s.bytes;
  if (::getsockname(fd_of(h), reinterpret_cast<sockaddr*>(s.bytes), &len) < 0)
    return error(last_error(), "getsockname");
  s.length = len;
  return from_storage(s);
}

result<endpoint> remote_endpoint(native_handle h) {
  address_storage s;
  socklen_t len = sizeof s.bytes;
  if (::getpeername(fd_of(h), reinterpret_cast<sockaddr*>(s.bytes), &len) < 0)
    return error(last_error(), "getpeername");
  s.length = len;
  return from_storage(s);
}

void close(native_handle h) noexcept {
  if (h != invalid_handle) ::close(fd_of(h));
}

void abort(native_handle h) noexcept {
  if (h == invalid_handle) return;
  (void)set_linger(h, true, 0);
  ::close(fd_of(h));
}

#include "../sockaddr_conversions.inc"

} // namespace sluice::detail::sys
