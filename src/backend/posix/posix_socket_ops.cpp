// socket_ops for POSIX systems (the uring and asio backends on Linux).
#include "../socket_ops.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

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

result<native_handle> open_stream(const endpoint& family_of) {
  const int domain = family_of.is_local() ? AF_UNIX : family_of.is_v6() ? AF_INET6 : AF_INET;
  // Blocking mode: io_uring waits for readiness itself; a backend that needs
  // O_NONBLOCK (a reactor) sets it.
  const int fd = ::socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return error(last_error(), domain == AF_UNIX    ? "socket(AF_UNIX, SOCK_STREAM)"
                               : domain == AF_INET6 ? "socket(AF_INET6, SOCK_STREAM)"
                                                    : "socket(AF_INET, SOCK_STREAM)");
  return static_cast<native_handle>(fd);
}

result<native_handle> open_datagram(const endpoint& family_of) {
  const int domain = family_of.is_v6() ? AF_INET6 : AF_INET;
  const int fd = ::socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return error(last_error(), domain == AF_INET6 ? "socket(AF_INET6, SOCK_DGRAM)"
                                                  : "socket(AF_INET, SOCK_DGRAM)");
  return static_cast<native_handle>(fd);
}

result<void> connect_now(native_handle h, const endpoint& ep) {
  address_storage s;
  to_storage(ep, s);
  if (::connect(fd_of(h), reinterpret_cast<const sockaddr*>(s.bytes), s.length) < 0)
    return error(last_error(), "connect to " + ep.to_string());
  return {};
}

result<std::pair<native_handle, native_handle>> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
    return error(last_error(), "socketpair(AF_UNIX, SOCK_STREAM)");
  return std::pair<native_handle, native_handle>(fds[0], fds[1]);
}

result<void> remove_stale_socket(const endpoint& ep) {
  const std::string& path = ep.path();
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) return {}; // gone meanwhile: bind again
  if (!S_ISSOCK(st.st_mode))
    return error(errc::address_in_use,
                 fmt::format("bind {}: the path exists and is not a socket (left as it is)", ep));
  // A socket file: is anyone accepting on it? Connecting tells (at once, on AF_UNIX).
  // A listener whose process just died may still accept for a few milliseconds (io_uring
  // releases a dead process's files from a kernel worker): ask again for up to 200 ms
  // before calling it live.
  address_storage s;
  to_storage(ep, s);
  int err = 0;
  for (int attempt = 0;; ++attempt) {
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return error(last_error(), fmt::format("bind {}: probing the socket file", ep));
    const int r = ::connect(probe, reinterpret_cast<const sockaddr*>(s.bytes), s.length);
    err = r == 0 ? 0 : errno;
    ::close(probe);
    if (err != 0 && err != EAGAIN) break;
    if (attempt == 20)
      return error(errc::address_in_use,
                   fmt::format("bind {}: a server is accepting on this socket", ep));
    ::usleep(10'000);
  }
  if (err != ECONNREFUSED)
    return error(std::error_code(err, std::system_category()),
                 fmt::format("bind {}: probing the socket file", ep));
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    return error(last_error(), fmt::format("bind {}: removing the stale socket file", ep));
  return {};
}

std::size_t control_space(std::size_t n) noexcept { return CMSG_SPACE(n * sizeof(int)); }

std::size_t pack_fds(const native_handle* fds, std::size_t n, void* control) noexcept {
  const std::size_t space = control_space(n);
  std::memset(control, 0, space);
  msghdr m{};
  m.msg_control = control;
  m.msg_controllen = space;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(n * sizeof(int));
  for (std::size_t i = 0; i < n; ++i) {
    const int fd = static_cast<int>(fds[i]);
    std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
  }
  return space;
}

namespace {
template <class F> void each_fd(const void* control, std::size_t length, F&& f) {
  if (control == nullptr || length == 0) return;
  msghdr m{};
  m.msg_control = const_cast<void*>(control);
  m.msg_controllen = length;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      f(fd);
    }
  }
}
} // namespace

void unpack_fds(const void* control, std::size_t length, std::vector<native_handle>& out) {
  each_fd(control, length, [&](int fd) { out.push_back(fd); });
}

void close_fds(const void* control, std::size_t length) noexcept {
  each_fd(control, length, [](int fd) { ::close(fd); });
}

std::int64_t recv_datagram_now(native_handle h, std::byte* buf, std::size_t size) noexcept {
  iovec part{buf + datagram_payload_offset, size - datagram_payload_offset};
  msghdr m{};
  m.msg_name = buf + sizeof(datagram_header);
  m.msg_namelen = datagram_name_room;
  m.msg_iov = &part;
  m.msg_iovlen = 1;
  // MSG_TRUNC: the result is the datagram's whole size, even when it did not fit.
  const ssize_t r = ::recvmsg(fd_of(h), &m, MSG_DONTWAIT | MSG_TRUNC);
  if (r < 0) return -errno;
  finish_datagram(buf, size, m.msg_namelen, static_cast<std::size_t>(r),
                  (m.msg_flags & MSG_TRUNC) != 0);
  return static_cast<std::int64_t>(datagram_payload_offset +
                                   std::min(static_cast<std::size_t>(r), part.iov_len));
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

result<bool> is_listening(native_handle h) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd_of(h), SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
    return error(last_error(), "getsockopt(SO_ACCEPTCONN)");
  return v != 0;
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

result<std::vector<std::pair<native_handle, std::string>>> inherited_sockets(bool unset) {
  std::vector<std::pair<native_handle, std::string>> out;
  const char* pid_text = std::getenv("LISTEN_PID");
  const char* fds_text = std::getenv("LISTEN_FDS");
  const char* names_text = std::getenv("LISTEN_FDNAMES");
  const std::string names = names_text != nullptr ? names_text : "";
  auto number = [](const char* t, long& v) {
    if (t == nullptr || *t == '\0') return false;
    char* end = nullptr;
    errno = 0;
    v = std::strtol(t, &end, 10);
    return errno == 0 && *end == '\0' && v >= 0;
  };
  auto done = [&]() -> result<std::vector<std::pair<native_handle, std::string>>> {
    if (unset) {
      ::unsetenv("LISTEN_PID");
      ::unsetenv("LISTEN_FDS");
      ::unsetenv("LISTEN_FDNAMES");
    }
    return out;
  };
  if (pid_text == nullptr && fds_text == nullptr) return done();
  long pid = 0, n = 0;
  if (!number(pid_text, pid))
    return error(std::make_error_code(std::errc::invalid_argument),
                 fmt::format("socket activation: LISTEN_PID='{}' is not a process id",
                             pid_text != nullptr ? pid_text : ""));
  if (pid != static_cast<long>(::getpid())) return done(); // meant for another process
  constexpr int first = 3;                                 // SD_LISTEN_FDS_START
  if (!number(fds_text, n) || n > 4096)
    return error(std::make_error_code(std::errc::invalid_argument),
                 fmt::format("socket activation: LISTEN_FDS='{}' is not a count of descriptors",
                             fds_text != nullptr ? fds_text : ""));
  std::vector<std::string> given;
  for (std::size_t p = 0; !names.empty();) {
    const auto colon = names.find(':', p);
    given.push_back(names.substr(p, colon == std::string::npos ? std::string::npos : colon - p));
    if (colon == std::string::npos) break;
    p = colon + 1;
  }
  for (long i = 0; i < n; ++i) {
    const int fd = first + static_cast<int>(i);
    if (::fcntl(fd, F_GETFD) < 0)
      return error(last_error(), fmt::format("socket activation: LISTEN_FDS={} but descriptor {} "
                                             "is not open",
                                             n, fd));
    // Not a socket: nothing was passed there, and something of this process's own (an
    // io_context's ring, say) took the free number.
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
      return error(std::make_error_code(std::errc::not_a_socket),
                   fmt::format("socket activation: LISTEN_FDS={} but descriptor {} is not a "
                               "socket (was it passed?)",
                               n, fd));
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    const auto k = static_cast<std::size_t>(i);
    out.emplace_back(fd, k < given.size() && !given[k].empty() ? given[k] : "unknown");
  }
  return done();
}

} // namespace sluice::detail::sys
