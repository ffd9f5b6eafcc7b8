// The io_uring backend: one ring per io_context, driven only by the loop thread.
//
// - Set up with SINGLE_ISSUER | DEFER_TASKRUN (+ R_DISABLED so the ring is bound to
//   the thread that first runs the loop, not the one that built the io_context) when
//   the kernel accepts them; plain setup otherwise.
// - Submissions are queued in the SQ and pushed once per loop turn by
//   io_uring_submit_and_wait / submit_and_get_events.
// - user_data is the operation's address; internal SQEs (cancels) use 0, the wake
//   eventfd read uses &wake_op_.
// - Cross-thread wake: an eventfd with a read always armed; wake() writes to it.
#include "../backend.hpp"

#include <cerrno>
#include <cstring>
#include <liburing.h>
#include <sluice/io_context.hpp>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>

namespace sluice::detail {
namespace {

constexpr unsigned queue_depth = 1024;

class uring_backend final : public backend {
public:
  explicit uring_backend(io_context& io) : io_(io) {}

  std::error_code init() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
    int r = io_uring_queue_init_params(queue_depth, &ring_, &p);
    if (r == -EINVAL) {
      // Older kernel (before 6.1): no SINGLE_ISSUER / DEFER_TASKRUN.
      p = io_uring_params{};
      r = io_uring_queue_init_params(queue_depth, &ring_, &p);
    } else if (r == 0) {
      disabled_ = true;
    }
    if (r < 0) return {-r, std::system_category()};
    ring_ok_ = true;
    // Blocking on purpose: io_uring completes a read on an O_NONBLOCK file with
    // -EAGAIN instead of waiting for it.
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (wake_fd_ < 0) return {errno, std::system_category()};
    return {};
  }

  ~uring_backend() override {
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (ring_ok_) io_uring_queue_exit(&ring_);
  }

  std::string_view name() const noexcept override { return "uring"; }

  void submit(operation& op) override {
    io_uring_sqe* sqe = get_sqe();
    const int fd = static_cast<int>(op.handle);
    switch (op.code) {
    case op_code::accept:
      op.address->length = sizeof(op.address->bytes);
      io_uring_prep_accept(sqe, fd, reinterpret_cast<sockaddr*>(op.address->bytes),
                           reinterpret_cast<socklen_t*>(&op.address->length), SOCK_CLOEXEC);
      break;
    case op_code::connect:
      io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(op.address->bytes),
                            op.address->length);
      break;
    case op_code::recv: io_uring_prep_recv(sqe, fd, op.buffer, op.length, 0); break;
    case op_code::send:
      // MSG_NOSIGNAL: a peer that went away yields EPIPE, never SIGPIPE.
      io_uring_prep_send(sqe, fd, op.buffer, op.length, MSG_NOSIGNAL);
      break;
    case op_code::shutdown: {
      const int how = op.flags == shutdown_receive ? SHUT_RD
                      : op.flags == shutdown_send  ? SHUT_WR
                                                   : SHUT_RDWR;
      io_uring_prep_shutdown(sqe, fd, how);
      break;
    }
    case op_code::timeout: {
      auto* ts = reinterpret_cast<__kernel_timespec*>(op.scratch);
      static_assert(sizeof(__kernel_timespec) <= sizeof(op.scratch));
      ts->tv_sec = op.duration_ns / 1'000'000'000;
      ts->tv_nsec = op.duration_ns % 1'000'000'000;
      io_uring_prep_timeout(sqe, ts, 0, 0);
      break;
    }
    case op_code::read:
      io_uring_prep_read(sqe, fd, op.buffer, static_cast<unsigned>(op.length), 0);
      break;
    }
    io_uring_sqe_set_data(sqe, &op);
  }

  void cancel(operation& op) noexcept override {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data(sqe, nullptr);
  }

  void cancel_all(native_handle h) noexcept override {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel_fd(sqe, static_cast<int>(h), IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, nullptr);
    // Pushed now: the caller closes the fd right after, and must not race the cancel.
    flush();
  }

  void poll(bool block) override {
    enable_if_needed();
    arm_wake();
    int r = block ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit_and_get_events(&ring_);
    if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY && r != -EAGAIN)
      throw std::system_error(-r, std::system_category(), "io_uring_submit_and_wait");
    drain();
  }

  void wake() noexcept override {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  void shutdown() noexcept override {
    if (disabled_) return; // never submitted anything
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data(sqe, nullptr);
    // Bounded: every operation sluice starts is cancellable, so this ends at once.
    for (int i = 0; i < 100 && io_.in_flight() != 0; ++i) {
      __kernel_timespec ts{0, 50'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      drain();
    }
  }

private:
  // Debian's liburing 2.3 declares io_uring_enable_rings() but does not export it.
  int enable_rings() noexcept {
    const long r =
        ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
    return r < 0 ? -errno : 0;
  }

  void enable_if_needed() {
    if (!disabled_) return;
    const int r = enable_rings();
    if (r < 0) throw std::system_error(-r, std::system_category(), "IORING_REGISTER_ENABLE_RINGS");
    disabled_ = false;
  }

  io_uring_sqe* get_sqe() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      // SQ full: push what is queued (completions stay in the CQ until poll()).
      flush();
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void flush() noexcept {
    if (disabled_) {
      if (enable_rings() == 0) disabled_ = false;
    }
    io_uring_submit(&ring_);
  }

  void arm_wake() {
    if (wake_armed_) return;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data(sqe, &wake_value_);
    wake_armed_ = true;
  }

  void drain() {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      void* data = io_uring_cqe_get_data(cqe);
      const int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      if (data == nullptr) continue; // a cancel request's own completion
      if (data == &wake_value_) {
        wake_armed_ = false;
        io_.run_remote();
        continue;
      }
      auto& op = *static_cast<operation*>(data);
      if (res >= 0) {
        op.res = res;
        op.error = {};
      } else if (op.code == op_code::timeout && res == -ETIME) {
        op.res = 0; // the timer expired: that is its success
        op.error = {};
      } else {
        op.res = 0;
        op.error = std::error_code(-res, std::system_category());
      }
      io_.complete(op); // resumes the waiting coroutine
    }
  }

  io_context& io_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool disabled_ = false;
  int wake_fd_ = -1;
  bool wake_armed_ = false;
  std::uint64_t wake_value_ = 0;
};

} // namespace

result<std::unique_ptr<backend>> make_uring_backend(io_context& io) {
  auto b = std::make_unique<uring_backend>(io);
  if (auto ec = b->init())
    return error(make_error_code(errc::backend_unavailable),
                 fmt::format("io_uring setup failed ({}), e.g. denied by seccomp or "
                             "kernel.io_uring_disabled",
                             ec.message()));
  return std::unique_ptr<backend>(std::move(b));
}

} // namespace sluice::detail
