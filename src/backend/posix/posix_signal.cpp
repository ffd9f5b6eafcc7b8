// signal_set on POSIX: one pipe per set. The process-wide handler writes the signal
// number into the pipe of every set subscribed to it (async-signal-safe: a table of
// atomics, no lock); wait() is a read of one byte from the set's own pipe, started as
// an ordinary operation on the loop's backend. Two sets never see each other's
// signals; two sets of the same signal both see it.
#include <sluice/signal.hpp>

#include "../backend.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace sluice {
namespace {

constexpr int max_signal = 65;       // signal numbers 1..64
constexpr std::size_t max_sets = 32; // signal_sets per signal at a time

// Read by the handler: the write ends subscribed to each signal, as fd + 1 (0 = free,
// so that the table starts zeroed, with no constructor to run).
std::array<std::array<std::atomic<int>, max_sets>, max_signal> subscribers{};
std::atomic<int> handlers_running{0};

// Guarded by the mutex: the disposition each signal had before the first set took it.
std::mutex signal_mutex;
struct taken {
  int sets = 0;
  struct sigaction previous {};
};
std::array<taken, max_signal> dispositions;

extern "C" void on_signal(int signo) {
  const int saved = errno;
  handlers_running.fetch_add(1);
  if (signo > 0 && signo < max_signal) {
    const auto byte = static_cast<unsigned char>(signo);
    for (auto& slot : subscribers[static_cast<std::size_t>(signo)]) {
      const int fd = slot.load() - 1;
      if (fd >= 0) {
        [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
      }
    }
  }
  handlers_running.fetch_sub(1);
  errno = saved;
}

void unsubscribe(int write_end, const std::vector<int>& signals) {
  for (int s : signals) {
    if (s <= 0 || s >= max_signal) continue;
    for (auto& slot : subscribers[static_cast<std::size_t>(s)]) {
      int expected = write_end + 1;
      slot.compare_exchange_strong(expected, 0);
    }
    auto& d = dispositions[static_cast<std::size_t>(s)];
    if (d.sets > 0 && --d.sets == 0) ::sigaction(s, &d.previous, nullptr);
  }
  // A handler that read this fd before it was removed may still be writing to it:
  // wait for it before the fd can be closed (and its number reused).
  while (handlers_running.load() != 0)
    std::this_thread::yield();
}

} // namespace

signal_set::signal_set(io_context& io, std::initializer_list<int> signals)
    : io_(&io), signals_(signals) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0)
    throw std::system_error(errno, std::system_category(), "signal_set: pipe2");
  // The write end must never block a signal handler; the read end stays blocking,
  // which is what io_uring expects of a file it reads.
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  source_ = fds[0];
  write_end_ = fds[1];
  std::lock_guard lock(signal_mutex);
  std::vector<int> done;
  auto fail = [&](std::system_error e) {
    unsubscribe(write_end_, done);
    ::close(fds[0]);
    ::close(fds[1]);
    throw e;
  };
  for (int s : signals_) {
    if (s <= 0 || s >= max_signal)
      fail(std::system_error(EINVAL, std::system_category(),
                             "signal_set: no signal number " + std::to_string(s)));
    bool placed = false;
    for (auto& slot : subscribers[static_cast<std::size_t>(s)]) {
      int expected = 0;
      if (slot.compare_exchange_strong(expected, write_end_ + 1)) {
        placed = true;
        break;
      }
    }
    if (!placed)
      fail(std::system_error(EMFILE, std::system_category(),
                             "signal_set: more than " + std::to_string(max_sets) +
                                 " signal_sets for signal " + std::to_string(s)));
    auto& d = dispositions[static_cast<std::size_t>(s)];
    if (d.sets == 0) {
      struct sigaction sa {};
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      if (::sigaction(s, &sa, &d.previous) < 0) {
        const int err = errno;
        for (auto& slot : subscribers[static_cast<std::size_t>(s)]) {
          int expected = write_end_ + 1;
          slot.compare_exchange_strong(expected, 0);
        }
        fail(std::system_error(err, std::system_category(),
                               "signal_set: sigaction(" + std::to_string(s) + ")"));
      }
    }
    ++d.sets;
    done.push_back(s);
  }
}

signal_set::~signal_set() {
  {
    std::lock_guard lock(signal_mutex);
    unsubscribe(write_end_, signals_);
  }
  // Nothing may wait on the read end once it is closed (and its number reused).
  if (io_context::alive(io_->id())) io_->backend().cancel_all(source_);
  ::close(static_cast<int>(source_));
  ::close(write_end_);
}

namespace detail {

signal_awaiter::signal_awaiter(signal_set& s) {
  op_.ctx = s.io_;
  op_.code = op_code::read;
  op_.handle = s.source_;
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
