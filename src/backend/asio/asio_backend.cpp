// The standalone-Asio backend: Asio's reactor (epoll on Linux) reports readiness and
// the socket calls are made here, non-blocking. For machines where io_uring is not
// allowed (Docker's default seccomp profile, kernel.io_uring_disabled, gVisor, old
// kernels).
//
// - Each handle gets a descriptor record (an asio::posix::stream_descriptor) the
//   first time an operation uses it; Asio never closes the fd (sluice owns it: it is
//   released, not closed). close() retires the record; handlers still naming it find
//   it retired — a new descriptor with the same number gets a new record.
// - Handlers name their operation by slot and generation, never by address: a
//   handler that runs after its operation was abandoned (its frame destroyed) or
//   settled by shutdown() finds a newer generation and does nothing.
// - An operation is first attempted from a posted handler (never inline in submit()),
//   then, on EAGAIN, attempted again when the reactor reports readiness. Every attempt
//   and re-arm checks operation::cancel_requested first.
// - cancel(op) cancels the descriptor's waits: the waits of other operations on the
//   same descriptor then see operation_aborted, find themselves not cancelled and wait
//   again. Timers come from a pool of asio::steady_timer.
// - Deadlines: a per-context heap (deadline_heap.hpp) and one steady_timer set to the
//   earliest; when it fires, the expired operations are marked timed_out and cancelled.
// - poll() runs at most the turn's budget of handlers, so one busy connection (whose
//   handlers keep posting more) cannot keep the loop from its other coroutines.
// - wake() posts to the Asio context (thread-safe); a work guard keeps run_one()
//   blocking while sluice has nothing in flight.
#include "../backend.hpp"
#include "../recv_pool.hpp"
#include "../socket_ops.hpp"
#include <sluice/detail/deadline_heap.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <new>
#include <sluice/io_context.hpp>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace sluice::detail {
namespace {

using wait_type = asio::posix::descriptor_base::wait_type;

class asio_backend final : public backend {
public:
  explicit asio_backend(io_context& io)
      : io_(io), pool_(io), work_(asio::make_work_guard(ctx_)), deadline_timer_(ctx_) {
    pool_.start();
    io_.keep_in_flight_list(false); // every operation is reachable through Asio itself
  }

  ~asio_backend() override {
    for (auto& d : all_)
      release(d->d);
  }

  std::string_view name() const noexcept override { return "asio"; }

  recv_pool& buffers() noexcept override { return pool_; }

  void submit(operation& op) override {
    auto& st = *new (op.scratch) op_data{};
    bind_slot(op, st);
    if (op.deadline != 0) add_deadline(op);
    if (op.code == op_code::timeout) {
      st.timer = take_timer();
      st.timer->expires_after(std::chrono::nanoseconds(op.duration_ns));
      st.timer->async_wait([r = ref_of(st, nullptr), t = st.timer](const asio::error_code& ec) {
        r.self->free_timers_.push_back(t);
        if (operation* o = r.self->lookup(r))
          r.self->finish(*o, ec == asio::error::operation_aborted ? ECANCELED : 0, 0);
      });
      return;
    }
    st.desc = descriptor(op.handle); // registered (and non-blocking) now, on the loop thread
    ++st.desc->refs;
    asio::post(ctx_, [r = ref_of(st, st.desc)] {
      if (operation* o = r.self->lookup(r)) r.self->attempt(*o);
      r.self->unref(r.desc);
    });
  }

  void cancel(operation& op) noexcept override {
    auto& st = data(op);
    if (st.timer != nullptr) {
      st.timer->cancel();
      return;
    }
    // A posted attempt sees cancel_requested by itself; a wait must be woken.
    if (st.waiting && !st.desc->closed) {
      asio::error_code ignored;
      st.desc->d.cancel(ignored);
    }
  }

  void cancel_all(native_handle h) noexcept override {
    const auto fd = static_cast<std::size_t>(h);
    if (fd >= live_.size() || live_[fd] == nullptr) return;
    desc_state& d = *live_[fd];
    live_[fd] = nullptr;
    // Its waits complete with operation_aborted and, finding it closed, end; posted
    // attempts find it closed too.
    d.closed = true;
    asio::error_code ignored;
    d.d.cancel(ignored);
    release(d.d);
    retired_.push_back(&d);
  }

  abandoned_at abandon(operation& op) noexcept override {
    auto& st = data(op);
    deadlines_.remove(op);
    free_slot(st.slot); // its handlers now find a newer generation

    if (st.timer != nullptr) st.timer->cancel(); // its handler returns it to the pool
    // The syscalls are made here, synchronously: no OS call still holds op's buffer.
    return st.timer != nullptr || st.attempted ? abandoned_at::in_flight
                                               : abandoned_at::not_submitted;
  }

  void poll(bool block, std::int64_t wake_by) override {
    if (block && wake_by != 0) // not past the loop's earliest deadline
      ctx_.run_one_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(wake_by)));
    else if (block)
      ctx_.run_one();
    while (io_.consume_budget() && ctx_.poll_one() != 0) {
    }
    // Retired descriptor records are reused once no handler names them.
    for (std::size_t i = 0; i < retired_.size();) {
      if (retired_[i]->refs == 0) {
        free_.push_back(retired_[i]);
        retired_[i] = retired_.back();
        retired_.pop_back();
      } else {
        ++i;
      }
    }
  }

  void wake() noexcept override {
    asio::post(ctx_, [this] { io_.run_remote(); });
  }

  void shutdown() noexcept override {
    // Nothing in the OS refers to an operation here (every syscall is synchronous):
    // settle each one as cancelled. Their handlers, if they ever run, find newer
    // generations; destroying ctx_ destroys them unrun.
    for (std::uint32_t i = 0; i < slots_.size(); ++i)
      if (operation* op = slots_[i].op) {
        free_slot(i);
        op->res = 0;
        op->error = std::error_code(ECANCELED, std::system_category());
        io_.complete(*op); // shutting down: not resumed, results discarded
      }
    deadlines_.clear();
    deadline_timer_.cancel();
    for (auto& t : timers_)
      t->cancel();
  }

private:
  struct desc_state {
    explicit desc_state(asio::io_context& c) : d(c) {}
    asio::posix::stream_descriptor d;
    bool closed = false;
    unsigned refs = 0; // handlers (posted attempts, waits) that still name it
  };

  // What the backend keeps in operation::scratch.
  struct op_data {
    std::uint32_t slot = 0;
    std::uint32_t gen = 0;
    desc_state* desc = nullptr;
    asio::steady_timer* timer = nullptr;
    bool connect_started = false;
    bool waiting = false;   // a readiness wait is armed
    bool attempted = false; // the syscall was tried at least once
  };
  static_assert(sizeof(op_data) <= sizeof(operation::scratch));
  static op_data& data(operation& op) noexcept {
    return *std::launder(reinterpret_cast<op_data*>(op.scratch));
  }

  struct slot {
    operation* op = nullptr;
    std::uint32_t gen = 0;
    std::uint32_t next_free = 0;
  };
  // What a handler holds: small enough for Asio's recycled handler memory.
  struct op_ref {
    asio_backend* self;
    std::uint32_t slot;
    std::uint32_t gen;
    desc_state* desc;
  };
  op_ref ref_of(const op_data& st, desc_state* d) noexcept { return {this, st.slot, st.gen, d}; }

  static constexpr std::uint32_t no_slot = static_cast<std::uint32_t>(-1);

  void bind_slot(operation& op, op_data& st) {
    if (free_head_ == no_slot) {
      slots_.push_back({});
      free_head_ = static_cast<std::uint32_t>(slots_.size() - 1);
      slots_.back().next_free = no_slot;
    }
    const std::uint32_t i = free_head_;
    free_head_ = slots_[i].next_free;
    slots_[i].op = &op;
    st.slot = i;
    st.gen = slots_[i].gen;
  }
  void free_slot(std::uint32_t i) noexcept {
    slots_[i].op = nullptr;
    ++slots_[i].gen;
    slots_[i].next_free = free_head_;
    free_head_ = i;
  }
  operation* lookup(const op_ref& r) noexcept {
    const slot& s = slots_[r.slot];
    return s.gen == r.gen ? s.op : nullptr;
  }
  void unref(desc_state* d) noexcept {
    if (d != nullptr) --d->refs;
  }

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

  // The record of a descriptor, made on its first operation: indexed by number while
  // it is open, recycled after close — no allocation per connection in steady state.
  desc_state* descriptor(native_handle h) {
    const auto fd = static_cast<std::size_t>(h);
    if (fd < live_.size() && live_[fd] != nullptr) return live_[fd];
    if (fd >= live_.size()) live_.resize(std::max<std::size_t>(fd + 1, live_.size() * 2), nullptr);
    const int flags = ::fcntl(static_cast<int>(fd), F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK) == 0)
      ::fcntl(static_cast<int>(fd), F_SETFL, flags | O_NONBLOCK);
    desc_state* d = nullptr;
    if (!free_.empty()) {
      d = free_.back();
      free_.pop_back();
      d->closed = false;
    } else {
      all_.push_back(std::make_unique<desc_state>(ctx_));
      d = all_.back().get();
      retired_.reserve(all_.size());
      free_.reserve(all_.size());
    }
    asio::error_code ignored;
    d->d.assign(static_cast<int>(fd), ignored);
    live_[fd] = d;
    return d;
  }

  // Keeps the timer set to the earliest deadline.
  void add_deadline(operation& op) {
    const bool earliest = deadlines_.empty() || op.deadline < deadlines_.earliest();
    deadlines_.insert(op);
    if (earliest) arm_deadline_timer();
  }
  void arm_deadline_timer() {
    if (deadlines_.empty()) return;
    deadline_timer_.expires_at(
        asio::steady_timer::time_point(std::chrono::nanoseconds(deadlines_.earliest())));
    deadline_timer_.async_wait([this](const asio::error_code& ec) {
      if (ec == asio::error::operation_aborted) return; // re-set, or shut down
      const std::int64_t now = steady_now_ns();
      while (operation* op = deadlines_.pop_expired(now)) {
        op->timed_out = true;
        op->cancel_requested = true;
        cancel(*op);
      }
      arm_deadline_timer();
    });
  }

  void finish(operation& op, int err, std::int64_t res) {
    deadlines_.remove(op);
    free_slot(data(op).slot);
    op.res = err == 0 ? res : 0;
    op.error = err == 0 ? std::error_code() : std::error_code(err, std::system_category());
    io_.complete(op);
  }

  // Tries the operation once; completes it, or waits for readiness to try again.
  void attempt(operation& op) {
    auto& st = data(op);
    st.waiting = false;
    if (op.cancel_requested || st.desc->closed) return finish(op, ECANCELED, 0);
    st.attempted = true;
    const int fd = static_cast<int>(op.handle);
    long r = 0;
    wait_type wait = wait_type::wait_read;
    switch (op.code) {
    case op_code::recv: r = ::recv(fd, op.buffer, op.length, 0); break;
    case op_code::recv_lent: {
      // Readable (or the first try): only now is a buffer taken from the pool.
      std::uint32_t id = 0;
      if (!pool_.take(id)) return finish(op, ENOBUFS, 0);
      if ((op.flags & recv_datagram) != 0) { // the datagram with its sender
        const std::int64_t n =
            sys::recv_datagram_now(op.handle, pool_.address(id), pool_.buffer_size());
        r = n < 0 ? -1 : static_cast<ssize_t>(n);
        if (n < 0) errno = static_cast<int>(-n);
      } else {
        r = ::recv(fd, pool_.address(id), pool_.buffer_size(), 0);
      }
      if (r > 0) {
        op.lent_id = id;
        op.buffer = pool_.address(id);
        return finish(op, 0, r);
      }
      const int err = errno;
      pool_.give_back(id);
      errno = err;
      break;
    }
    case op_code::read: r = ::read(fd, op.buffer, op.length); break;
    case op_code::send:
      r = ::send(fd, op.buffer, op.length, MSG_NOSIGNAL);
      wait = wait_type::wait_write;
      break;
    case op_code::sendmsg: {
      msghdr m{};
      m.msg_iov = static_cast<iovec*>(op.buffer);
      m.msg_iovlen = op.length;
      r = ::sendmsg(fd, &m, MSG_NOSIGNAL);
      wait = wait_type::wait_write;
      break;
    }
    case op_code::send_message:
    case op_code::recv_message: {
      auto& msg = *static_cast<message*>(op.buffer);
      msghdr m{};
      m.msg_iov = reinterpret_cast<iovec*>(msg.parts);
      m.msg_iovlen = msg.count;
      m.msg_control = msg.control;
      m.msg_controllen = msg.control_length;
      if (msg.peer != nullptr) {
        m.msg_name = msg.peer->bytes;
        m.msg_namelen =
            op.code == op_code::send_message ? msg.peer->length : sizeof(msg.peer->bytes);
      }
      if (op.code == op_code::send_message) {
        r = ::sendmsg(fd, &m, MSG_NOSIGNAL);
        wait = wait_type::wait_write;
        break;
      }
      // Received descriptors: close-on-exec; a datagram's whole size with MSG_TRUNC.
      r = ::recvmsg(fd, &m, MSG_CMSG_CLOEXEC | (msg.datagram ? MSG_TRUNC : 0));
      if (r >= 0) {
        if (msg.peer != nullptr) msg.peer->length = m.msg_namelen;
        msg.control_length = m.msg_controllen;
        msg.truncated = (m.msg_flags & MSG_TRUNC) != 0;
        msg.control_truncated = (m.msg_flags & MSG_CTRUNC) != 0;
      }
      break;
    }
    case op_code::accept: {
      socklen_t len = sizeof op.address->bytes;
      r = ::accept4(fd, reinterpret_cast<sockaddr*>(op.address->bytes), &len, SOCK_CLOEXEC);
      op.address->length = len;
      break;
    }
    case op_code::connect:
      wait = wait_type::wait_write;
      if (st.connect_started) {
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
      st.connect_started = true;
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
    case op_code::none: return;    // never here: io_context::submit refuses it
    }
    if (r >= 0) return finish(op, 0, r);
    if (errno == EINTR) return attempt(op);
    if (errno != EAGAIN && errno != EWOULDBLOCK) return finish(op, errno, 0);
    arm(op, wait);
  }

  void arm(operation& op, wait_type wait) {
    auto& st = data(op);
    if (op.cancel_requested || st.desc->closed) return finish(op, ECANCELED, 0);
    st.waiting = true;
    ++st.desc->refs;
    st.desc->d.async_wait(wait, [r = ref_of(st, st.desc), wait](const asio::error_code& ec) {
      if (operation* o = r.self->lookup(r)) {
        if (ec == asio::error::operation_aborted) {
          // This op was cancelled, or its handle closed: done. Otherwise another op on
          // the same descriptor was cancelled: wait again.
          data(*o).waiting = false;
          if (o->cancel_requested || r.desc->closed)
            r.self->finish(*o, ECANCELED, 0);
          else
            r.self->arm(*o, wait);
        } else {
          r.self->attempt(*o);
        }
      }
      r.self->unref(r.desc);
    });
  }

  io_context& io_;
  recv_pool pool_;
  asio::io_context ctx_{1};

  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::unique_ptr<desc_state>> all_; // every record, open or not
  std::vector<desc_state*> live_;                // by descriptor number
  std::vector<desc_state*> retired_;             // closed, still named by a handler
  std::vector<desc_state*> free_;                // ready for the next descriptor
  std::vector<std::unique_ptr<asio::steady_timer>> timers_;
  std::vector<asio::steady_timer*> free_timers_;
  std::vector<slot> slots_;
  std::uint32_t free_head_ = no_slot;
  deadline_heap deadlines_;
  asio::steady_timer deadline_timer_;
};

} // namespace

result<std::unique_ptr<backend>> make_asio_backend(io_context& io) {
  return std::unique_ptr<backend>(std::make_unique<asio_backend>(io));
}

} // namespace sluice::detail
