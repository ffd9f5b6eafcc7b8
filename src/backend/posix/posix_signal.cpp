// signal_set on POSIX: a self-pipe. The handler writes the signal number into a pipe
// (async-signal-safe); wait() is a read of one byte on its other end, started as an
// ordinary operation on the loop's backend.
#include <sluice/signal.hpp>

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <unistd.h>
#include <unordered_map>

namespace sluice {
namespace {

int pipe_fds[2] = {-1, -1};
std::mutex signal_mutex;
std::unordered_map<int, struct sigaction> previous;

extern "C" void on_signal(int signo) {
  const int saved = errno;
  const auto byte = static_cast<unsigned char>(signo);
  [[maybe_unused]] ssize_t n = ::write(pipe_fds[1], &byte, 1);
  errno = saved;
}

void ensure_pipe() {
  if (pipe_fds[0] >= 0) return;
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
    throw std::system_error(errno, std::system_category(), "signal_set: pipe2");
  // The write end must never block a signal handler; the read end stays blocking,
  // which is what io_uring expects of a file it reads.
  ::fcntl(pipe_fds[1], F_SETFL, ::fcntl(pipe_fds[1], F_GETFL) | O_NONBLOCK);
}

} // namespace

signal_set::signal_set(io_context& io, std::initializer_list<int> signals)
    : io_(&io), signals_(signals) {
  std::lock_guard lock(signal_mutex);
  ensure_pipe();
  for (int s : signals_) {
    if (previous.count(s) != 0)
      throw std::logic_error("signal_set: signal " + std::to_string(s) + " is already caught");
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old {};
    if (::sigaction(s, &sa, &old) < 0)
      throw std::system_error(errno, std::system_category(),
                              "signal_set: sigaction(" + std::to_string(s) + ")");
    previous.emplace(s, old);
  }
}

signal_set::~signal_set() {
  std::lock_guard lock(signal_mutex);
  for (int s : signals_) {
    auto it = previous.find(s);
    if (it == previous.end()) continue;
    ::sigaction(s, &it->second, nullptr);
    previous.erase(it);
  }
}

namespace detail {

signal_awaiter::signal_awaiter(signal_set& s) {
  op_.ctx = s.io_;
  op_.code = op_code::read;
  op_.handle = pipe_fds[0];
  op_.length = 1;
}

result<int> signal_awaiter::await_resume() {
  finish();
  if (op_.error) return error(op_.error, "signal_set::wait");
  if (op_.res != 1) return error(errc::operation_aborted, "signal_set::wait: pipe closed");
  return static_cast<int>(signo_);
}

} // namespace detail
} // namespace sluice
