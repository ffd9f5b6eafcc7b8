// Listener hand-over between two processes (include/sluice/net/handover.hpp). The
// protocol, one line each way, descriptors riding on the incumbent's line:
//
//   successor -> incumbent   "sluice-handover 1 <pid>\n"
//   incumbent -> successor   "listeners <n> <pid>\n"    + n listeners, then the point
//   successor -> incumbent   "ready\n"  or  "abandon <why>\n"
//   incumbent -> successor   "draining\n"               (after "ready")
//
// Anything else ends that hand-over with an error naming what came. docs/service.md
// ("Restarting without dropping connections") has the rest.
#include <sluice/net/handover.hpp>

#include "../backend/socket_ops.hpp"

#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <sluice/timer.hpp>

#ifndef _WIN32
#include <cerrno>
#include <climits>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
extern char** environ;
#endif

namespace sluice::handover {

namespace sys = sluice::detail::sys;
using sluice::detail::native_handle;

namespace {

constexpr std::string_view hello = "sluice-handover 1 ";
constexpr std::size_t max_line = 512;

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// One line (without its newline), at most max_line bytes; with `fds`, the descriptors
// that came with it. The peer sends nothing past the line before we answer, so bytes
// after the newline are a protocol error.
task<result<std::string>> read_line(tcp::stream& s, std::vector<local::unique_fd>* fds,
                                    std::string_view who) {
  std::string line;
  std::array<std::byte, max_line> buf;
  for (;;) {
    std::size_t n = 0;
    if (fds != nullptr) {
      auto r = co_await local::recv_fds(s, buf);
      if (!r) co_return std::move(r).error();
      n = r->bytes;
      for (auto& fd : r->fds)
        fds->push_back(std::move(fd));
    } else {
      auto r = co_await s.recv(buf);
      if (!r) co_return std::move(r).error();
      n = *r;
    }
    if (n == 0)
      co_return error(
          errc::end_of_stream,
          line.empty() ? fmt::format("{} closed the connection", who)
                       : fmt::format("{} closed the connection within a line ({:?})", who, line));
    line.append(reinterpret_cast<const char*>(buf.data()), n);
    if (const auto nl = line.find('\n'); nl != std::string::npos) {
      if (nl + 1 != line.size())
        co_return error(errc::protocol_error,
                        fmt::format("{} sent more than one line: {:?}", who, line));
      line.pop_back();
      co_return line;
    }
    if (line.size() > max_line)
      co_return error(errc::protocol_error,
                      fmt::format("{} sent a line longer than {} bytes", who, max_line));
  }
}

task<result<void>> write_line(tcp::stream& s, std::string line) {
  auto w = co_await s.send_all(as_bytes(line));
  if (!w) co_return std::move(w).error();
  co_return result<void>();
}

// "<prefix><number> <number>" → the two numbers.
[[maybe_unused]] std::optional<std::pair<long, long>> two_numbers(std::string_view rest) {
  long a = 0, b = 0;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), a);
  if (ec != std::errc() || p == rest.data() + rest.size() || *p != ' ') return std::nullopt;
  auto [q, ec2] = std::from_chars(p + 1, rest.data() + rest.size(), b);
  if (ec2 != std::errc() || q != rest.data() + rest.size()) return std::nullopt;
  return std::pair(a, b);
}

#ifndef _WIN32
// The peer's process id and whether it runs as our user (Linux: SO_PEERCRED).
struct peer_identity {
  long pid = 0;
  bool same_user = true;
};
peer_identity identify(native_handle h) {
  peer_identity id;
#ifdef SO_PEERCRED
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(h, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    id.pid = cred.pid;
    id.same_user = cred.uid == ::geteuid();
  }
#else
  (void)h;
#endif
  return id;
}
#endif

} // namespace

session::~session() = default;

task<result<session>> session::open(io_context& io, std::string path) {
  return open(io, std::move(path), options());
}

task<result<session>> session::open(io_context& io, std::string path, options o) {
#ifdef _WIN32
  (void)io;
  (void)o;
  co_return error(
      std::make_error_code(std::errc::operation_not_supported),
      fmt::format("hand-over point {}: Windows has no descriptor passing (SCM_RIGHTS)", path));
#else
  session s;
  s.path_ = path;
  s.options_ = o;
  auto failed = [&path](const error& e) {
    return error(e.code(), fmt::format("hand-over point {}: {}", path, e.context()));
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
    co_return error(std::make_error_code(std::errc::file_exists),
                    fmt::format("hand-over point {}: the path is taken by a file that is not a "
                                "socket (remove it, or choose another path)",
                                path));
  auto c = co_await with_timeout(local::connect(io, path), o.step_timeout);
  if (!c && (c.error() == std::errc::no_such_file_or_directory ||
             c.error() == errc::connection_refused)) {
    // Nobody serves there: this process is the first; the point is its own.
    auto point = local::bind(io, path);
    if (!point) co_return failed(point.error());
    s.point_.reset(point->release());
    co_return std::move(s);
  }
  if (!c) co_return failed(c.error());
  // A server is there: ask for its listeners.
  auto exchange = [&](tcp::stream& ch) -> task<result<void>> {
    auto w = co_await write_line(ch, fmt::format("{}{}\n", hello, process_id()));
    if (!w) co_return std::move(w).error();
    std::vector<local::unique_fd> fds;
    auto line = co_await read_line(ch, &fds, "the server there");
    if (!line) co_return std::move(line).error();
    constexpr std::string_view head = "listeners ";
    if (line->starts_with("refused ")) {
      co_return error(errc::connection_refused,
                      fmt::format("the server there refused: {}", line->substr(8)));
    }
    const auto numbers = line->starts_with(head)
                             ? two_numbers(std::string_view(*line).substr(head.size()))
                             : std::nullopt;
    if (!numbers)
      co_return error(errc::protocol_error,
                      fmt::format("the process there did not answer as a sluice server (it "
                                  "said {:?})",
                                  *line));
    const auto [n, pid] = *numbers;
    if (n < 1 || static_cast<std::size_t>(n) + 1 != fds.size())
      co_return error(errc::protocol_error,
                      fmt::format("the server there (pid {}) announced {} listening sockets "
                                  "and the point, and sent {} descriptors",
                                  pid, n, fds.size()));
    s.point_ = std::move(fds.back());
    fds.pop_back();
    s.listeners_ = std::move(fds);
    s.predecessor_ = pid;
    co_return result<void>();
  };
  auto r = co_await with_timeout(exchange(*c), o.step_timeout);
  if (!r) {
    if (r.error() == errc::timed_out)
      co_return error(errc::timed_out,
                      fmt::format("hand-over point {}: the process there did not answer as a "
                                  "sluice server within {} ms",
                                  path, o.step_timeout.count()));
    co_return failed(r.error());
  }
  s.took_over_ = true;
  s.channel_.reset(c->release());
  co_return std::move(s);
#endif
}

std::vector<native_handle> session::take_listeners() {
  std::vector<native_handle> out;
  for (auto& fd : listeners_)
    out.push_back(fd.release());
  listeners_.clear();
  return out;
}

task<result<void>> session::confirm(io_context& io) {
  if (!channel_)
    co_return error(std::make_error_code(std::errc::invalid_argument),
                    fmt::format("hand-over point {}: nothing was taken over to confirm", path_));
  auto ch = tcp::stream::adopt(io, channel_.release());
  if (!ch) co_return std::move(ch).error();
  auto step = [&]() -> task<result<void>> {
    auto w = co_await write_line(*ch, "ready\n");
    if (!w) co_return std::move(w).error();
    auto line = co_await read_line(*ch, nullptr, "the old server");
    if (!line) co_return std::move(line).error();
    if (*line != "draining")
      co_return error(errc::protocol_error,
                      fmt::format("the old server answered {:?} to ready", *line));
    co_return result<void>();
  };
  auto r = co_await with_timeout(step(), options_.step_timeout);
  if (!r)
    co_return error(r.error().code(), fmt::format("hand-over point {}: telling pid {} to drain: {}",
                                                  path_, predecessor_, r.error().context()));
  co_return result<void>();
}

task<void> session::abandon(io_context& io, std::string why) {
  listeners_.clear();
  point_.reset();
  if (!channel_) co_return;
  auto ch = tcp::stream::adopt(io, channel_.release());
  if (!ch) co_return;
  for (char& ch_ : why)
    if (ch_ == '\n' || ch_ == '\r') ch_ = ' ';
  if (why.size() > max_line - 16) why.resize(max_line - 16);
  (void)co_await with_timeout(write_line(*ch, fmt::format("abandon {}\n", why)),
                              options_.step_timeout);
}

// One successor on `c`: its hello, the descriptors, its verdict. Its pid once ready.
task<result<long>> session::hand_over(tcp::stream& c, const std::vector<native_handle>& l) {
#ifdef _WIN32
  (void)c;
  (void)l;
  co_return error(std::make_error_code(std::errc::operation_not_supported), "hand-over");
#else
  const peer_identity id = identify(c.native_handle());
  auto line = co_await read_line(c, nullptr, "the new process");
  if (!line) co_return std::move(line).error();
  if (!line->starts_with(hello))
    co_return error(errc::protocol_error,
                    fmt::format("a client spoke no hand-over protocol (it said {:?})", *line));
  long pid = id.pid;
  if (pid == 0) {
    const std::string_view rest = std::string_view(*line).substr(hello.size());
    (void)std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  }
  if (!id.same_user) {
    (void)co_await write_line(c, "refused it runs as another user\n");
    co_return error(std::make_error_code(std::errc::permission_denied),
                    fmt::format("the new process (pid {}) runs as another user: refused", pid));
  }
  std::vector<native_handle> fds = l;
  fds.push_back(accepting_->native_handle());
  const std::string announce = fmt::format("listeners {} {}\n", l.size(), process_id());
  auto sent = co_await local::send_fds(c, as_bytes(announce), fds);
  if (!sent) co_return std::move(sent).error();
  auto verdict = co_await read_line(c, nullptr, fmt::format("the new process (pid {})", pid));
  if (!verdict) {
    if (verdict.error() == errc::end_of_stream || verdict.error() == errc::connection_reset)
      co_return error(verdict.error().code(),
                      fmt::format("the new process (pid {}) went away before it was ready", pid));
    co_return std::move(verdict).error();
  }
  if (verdict->starts_with("abandon "))
    co_return error(errc::operation_aborted,
                    fmt::format("the new process (pid {}) gave up before it was ready: {}", pid,
                                verdict->substr(8)));
  if (*verdict != "ready")
    co_return error(
        errc::protocol_error,
        fmt::format("the new process (pid {}) said {:?} instead of ready", pid, *verdict));
  auto w = co_await write_line(c, "draining\n");
  (void)w; // it is ready and serving: whether it hears this or not, we drain
  co_return pid;
#endif
}

task<result<long>> session::offer(io_context& io, std::vector<native_handle> listeners,
                                  log_sink log) {
  const stop_token stop = co_await this_stop_token();
  if (!accepting_) {
    if (!point_)
      co_return error(std::make_error_code(std::errc::invalid_argument),
                      fmt::format("hand-over point {}: not open", path_));
    auto a = tcp::acceptor::adopt(io, point_.get());
    if (!a) co_return std::move(a).error();
    (void)point_.release();
    accepting_.emplace(std::move(*a));
  }
  for (;;) {
    auto c = co_await accepting_->accept();
    if (!c) {
      if (c.error() == errc::operation_aborted || stop.stop_requested())
        co_return std::move(c).error();
      if (log) log(fmt::format("hand-over point {}: {}", path_, c.error().message()));
      continue;
    }
    auto r = co_await with_timeout(hand_over(*c, listeners), options_.step_timeout);
    if (r) {
      accepting_->close(); // the successor holds the point now
      accepting_.reset();
      handed_over_ = true;
      co_return *r;
    }
    if (stop.stop_requested())
      co_return error(errc::operation_aborted,
                      fmt::format("hand-over point {}: stopped", path_)); // the drain
    const std::string why =
        r.error() == errc::timed_out
            ? fmt::format("a new process stalled for {} ms", options_.step_timeout.count())
            : r.error().message();
    if (log) log(fmt::format("hand-over point {}: {}; still serving", path_, why));
  }
}

result<long> spawn_process(const std::vector<std::string>& argv) {
#ifdef _WIN32
  (void)argv;
  return error(std::make_error_code(std::errc::operation_not_supported),
               "spawn_process: not on Windows");
#else
  if (argv.empty())
    return error(std::make_error_code(std::errc::invalid_argument), "spawn_process: no program");
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), nullptr, nullptr, args.data(), environ);
  if (rc != 0)
    return error(std::error_code(rc, std::generic_category()), fmt::format("start {}", argv[0]));
  return static_cast<long>(pid);
#endif
}

long process_id() {
#ifdef _WIN32
  return 0;
#else
  return static_cast<long>(::getpid());
#endif
}

std::optional<std::string> reap_process(long pid) {
#ifdef _WIN32
  (void)pid;
  return std::nullopt;
#else
  int status = 0;
  const pid_t r = ::waitpid(static_cast<pid_t>(pid), &status, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r < 0) return fmt::format("is gone ({})", std::strerror(errno));
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return std::string("ended");
#endif
}

std::string own_executable(std::string_view fallback) {
#ifdef __linux__
  std::array<char, PATH_MAX> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n > 0) return std::string(buf.data(), static_cast<std::size_t>(n));
#endif
  return std::string(fallback);
}

} // namespace sluice::handover
