// socket_ops for POSIX systems (the uring and asio backends on Linux).
#include "../socket_ops.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
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

result<void> set_nodelay(native_handle h, bool on) {
  return set_opt(h, IPPROTO_TCP, TCP_NODELAY, int(on), "setsockopt(TCP_NODELAY)");
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
  if (text.size() >= INET_ADDRSTRLEN) return false;
  char buf[INET_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  return ::inet_pton(AF_INET, buf, out) == 1;
}

bool parse_ipv6(std::string_view text, unsigned char out[16]) noexcept {
  if (text.size() >= INET6_ADDRSTRLEN) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  return ::inet_pton(AF_INET6, buf, out) == 1;
}

std::string format_ip(const endpoint& ep) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(ep.is_v4() ? AF_INET : AF_INET6, ep.bytes().data(), buf, sizeof buf);
  return buf;
}

} // namespace sluice::detail::sys
