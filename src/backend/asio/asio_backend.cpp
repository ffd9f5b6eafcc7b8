// The standalone-Asio backend: Asio's reactor (epoll on Linux) reports readiness and
// the socket calls are made here, non-blocking. For machines where io_uring is not
// allowed (Docker's default seccomp profile, kernel.io_uring_disabled, gVisor, old
// kernels).
//
// - Each handle gets an asio::posix::stream_descriptor the first time an operation
//   uses it; Asio never closes it (sluice owns the fd: it is released, not closed).
// - An operation is first attempted from a posted handler (never inline in submit()),
//   then, on EAGAIN, attempted again when the reactor reports readiness.
// - cancel(op) marks the op and cancels the descriptor's waits: the waits of other
//   operations on the same descriptor then see operation_aborted, find themselves
//   unmarked and wait again. Timers come from a pool of asio::steady_timer (the
//   timer's address is kept in the operation's scratch area).
// - wake() posts to the Asio context (thread-safe); a work guard keeps run_one()
//   blocking while sluice has nothing in flight.
#include "../backend.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sluice/io_context.hpp>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sluice::detail {
namespace {

using wait_type = asio::posix::descriptor_base::wait_type;

// scratch[0] of a connect operation: whether connect(2) was already called.
constexpr unsigned char connect_started = 1;

class asio_backend final : public backend {
public:
  explicit asio_backend(io_context& io) : io_(io), work_(asio::make_work_guard(ctx_)) {}

  ~asio_backend() override {
    for (auto& [fd, d] : descriptors_)
      release(*d);
  }

  std::string_view name() const noexcept override { return "asio"; }

  void submit(operation& op) override {
    if (op.code == op_code::timeout) {
      asio::steady_timer* t = take_timer();
      std::memcpy(op.scratch, &t, sizeof t);
      t->expires_after(std::chrono::nanoseconds(op.duration_ns));
      t->async_wait([this, &op, t](const asio::error_code& ec) {
        free_timers_.push_back(t);
        finish(op, ec == asio::error::operation_aborted ? ECANCELED : 0, 0);
      });
      return;
    }
    op.scratch[0] = 0;
    descriptor(op.handle); // register (and make non-blocking) now, on the loop thread
    asio::post(ctx_, [this, &op] { attempt(op); });
  }

  void cancel(operation& op) noexcept override {
    if (op.code == op_code::timeout) {
      asio::steady_timer* t = nullptr;
      std::memcpy(&t, op.scratch, sizeof t);
      t->cancel();
      return;
    }
    cancelled_.insert(&op);
    if (auto it = descriptors_.find(static_cast<int>(op.handle)); it != descriptors_.end()) {
      asio::error_code ignored;
      it->second->cancel(ignored);
    }
  }

  void cancel_all(native_handle h) noexcept override {
    auto it = descriptors_.find(static_cast<int>(h));
    if (it == descriptors_.end()) return;
    // Its waits complete with operation_aborted and, finding no descriptor, end.
    asio::error_code ignored;
    it->second->cancel(ignored);
    release(*it->second);
    retired_.push_back(std::move(it->second));
    descriptors_.erase(it);
  }

  void poll(bool block) override {
    if (block) ctx_.run_one();
    ctx_.poll();
    retired_.clear(); // their aborted handlers have run
  }

  void wake() noexcept override {
    asio::post(ctx_, [this] { io_.run_remote(); });
  }

  void shutdown() noexcept override {
    for (auto& t : timers_)
      t->cancel(); // idle ones too: harmless
    for (auto& [fd, d] : descriptors_) {
      asio::error_code ignored;
      d->cancel(ignored);
    }
    // Bounded: every wait was just cancelled, so this ends at once.
    for (int i = 0; i < 1000 && io_.in_flight() != 0; ++i)
      ctx_.run_one_for(std::chrono::milliseconds(5));
  }

private:
  // Timers are pooled: a sleep allocates only when more are pending than ever before.
  asio::steady_timer* take_timer() {
    if (free_timers_.empty()) {
      timers_.push_back(std::make_unique<asio::steady_timer>(ctx_));
      free_timers_.reserve(timers_.size());
      return timers_.back().get();
    }
    asio::steady_timer* t = free_timers_.back();
    free_timers_.pop_back();
    return t;
  }

  static void release(asio::posix::stream_descriptor& d) noexcept {
    if (d.is_open()) (void)d.release();
  }

  asio::posix::stream_descriptor* descriptor(native_handle h) {
    const int fd = static_cast<int>(h);
    auto it = descriptors_.find(fd);
    if (it != descriptors_.end()) return it->second.get();
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK) == 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    auto d = std::make_unique<asio::posix::stream_descriptor>(ctx_);
    asio::error_code ignored;
    d->assign(fd, ignored);
    auto* p = d.get();
    descriptors_.emplace(fd, std::move(d));
    return p;
  }

  void finish(operation& op, int err, std::int64_t res) {
    cancelled_.erase(&op);
    op.res = err == 0 ? res : 0;
    op.error = err == 0 ? std::error_code() : std::error_code(err, std::system_category());
    io_.complete(op);
  }

  // Tries the operation once; completes it, or waits for readiness to try again.
  void attempt(operation& op) {
    if (cancelled_.count(&op) != 0) return finish(op, ECANCELED, 0);
    const int fd = static_cast<int>(op.handle);
    if (descriptors_.count(fd) == 0) return finish(op, ECANCELED, 0); // closed meanwhile
    long r = 0;
    wait_type wait = wait_type::wait_read;
    switch (op.code) {
    case op_code::recv: r = ::recv(fd, op.buffer, op.length, 0); break;
    case op_code::read: r = ::read(fd, op.buffer, op.length); break;
    case op_code::send:
      r = ::send(fd, op.buffer, op.length, MSG_NOSIGNAL);
      wait = wait_type::wait_write;
      break;
    case op_code::accept: {
      socklen_t len = sizeof op.address->bytes;
      r = ::accept4(fd, reinterpret_cast<sockaddr*>(op.address->bytes), &len, SOCK_CLOEXEC);
      op.address->length = len;
      break;
    }
    case op_code::connect:
      wait = wait_type::wait_write;
      if (op.scratch[0] == connect_started) {
        // Woken for writing: the outcome is in SO_ERROR, unless the handshake is in
        // fact still going on. Asio completes the first wait on a fresh descriptor
        // speculatively, before epoll said anything: then wait again.
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) return finish(op, err, 0);
        sockaddr_storage peer{};
        socklen_t plen = sizeof peer;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0)
          return finish(op, 0, 0);
        return arm(op, wait);
      }
      op.scratch[0] = connect_started;
      r = ::connect(fd, reinterpret_cast<const sockaddr*>(op.address->bytes), op.address->length);
      if (r < 0 && errno == EINPROGRESS) errno = EAGAIN;
      break;
    case op_code::shutdown: {
      const int how = op.flags == shutdown_receive ? SHUT_RD
                      : op.flags == shutdown_send  ? SHUT_WR
                                                   : SHUT_RDWR;
      r = ::shutdown(fd, how);
      break;
    }
    case op_code::timeout: return; // handled by submit()
    }
    if (r >= 0) return finish(op, 0, r);
    if (errno == EINTR) return attempt(op);
    if (errno != EAGAIN && errno != EWOULDBLOCK) return finish(op, errno, 0);
    arm(op, wait);
  }

  void arm(operation& op, wait_type wait) {
    auto* d = descriptor(op.handle);
    d->async_wait(wait, [this, &op, wait](const asio::error_code& ec) {
      if (ec == asio::error::operation_aborted) {
        // This op was cancelled, or its handle closed: done. Otherwise another op on
        // the same descriptor was cancelled: wait again.
        if (cancelled_.count(&op) != 0 || descriptors_.count(static_cast<int>(op.handle)) == 0)
          return finish(op, ECANCELED, 0);
        return arm(op, wait);
      }
      attempt(op);
    });
  }

  io_context& io_;
  asio::io_context ctx_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unordered_map<int, std::unique_ptr<asio::posix::stream_descriptor>> descriptors_;
  std::vector<std::unique_ptr<asio::posix::stream_descriptor>> retired_;
  std::vector<std::unique_ptr<asio::steady_timer>> timers_;
  std::vector<asio::steady_timer*> free_timers_;
  std::unordered_set<operation*> cancelled_;
};

} // namespace

result<std::unique_ptr<backend>> make_asio_backend(io_context& io) {
  return std::unique_ptr<backend>(std::make_unique<asio_backend>(io));
}

} // namespace sluice::detail
