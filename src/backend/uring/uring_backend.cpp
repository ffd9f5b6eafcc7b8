// The io_uring backend: one ring per io_context, driven only by the loop thread.
//
// - Set up with SINGLE_ISSUER | DEFER_TASKRUN (+ R_DISABLED so the ring is bound to
//   the thread that first runs the loop, not the one that built the io_context) when
//   the kernel accepts them; plain setup otherwise. Only poll() — the loop thread —
//   enables the ring; before that, work is only queued in the SQ.
// - Submissions are queued in the SQ and pushed once per loop turn by
//   io_uring_submit_and_wait / submit_and_get_events; completions are reaped in
//   batches, at most the turn's budget of them.
// - user_data is the operation's address; internal SQEs use small tags below. An
//   operation with a deadline is linked (IOSQE_IO_LINK) to an IORING_OP_LINK_TIMEOUT
//   whose user_data is the address + 1; the operation completes once both CQEs have
//   come, so neither can name it after it is resumed.
// - Cross-thread wake: an eventfd with a read always armed; wake() writes to it.
// - Features are probed at start-up (io_uring_get_probe and a test cancel on a
//   scratch ring); each one has a fallback, forced with SLUICE_URING_DISABLE
//   (docs/runtime.md, "io_uring features and fallbacks").
#include "../backend.hpp"
#include "../recv_pool.hpp"
#include "../socket_ops.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <liburing.h>
#include <mutex>
#include <poll.h>
#include <sluice/detail/deadline_heap.hpp>
#include <sluice/io_context.hpp>
#include <string>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

// ThreadSanitizer does not see a ring's memory come and go: liburing maps and unmaps it
// with raw system calls. A ring mapped where another thread's destroyed ring was then
// looks like a race with that thread. The kernel orders the unmap before the new map;
// these tell TSan so (one release at every teardown, one acquire at every setup).
#if defined(__SANITIZE_THREAD__)
#define SLUICE_TSAN_RINGS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLUICE_TSAN_RINGS 1
#endif
#endif
#ifdef SLUICE_TSAN_RINGS
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace sluice::detail {
namespace {

#ifdef SLUICE_TSAN_RINGS
char ring_memory_handover;
void ring_mapped() noexcept { __tsan_acquire(&ring_memory_handover); }
void ring_unmapping() noexcept { __tsan_release(&ring_memory_handover); }
#else
void ring_mapped() noexcept {}
void ring_unmapping() noexcept {}
#endif

constexpr unsigned queue_depth = 1024;
constexpr unsigned reap_batch = 64;

// user_data of internal SQEs (never the address of an operation).
constexpr std::uint64_t tag_none = 0, tag_cancel = 1, tag_cancel_fd = 2, tag_cancel_any = 3,
                        tag_wake = 4,
                        tag_message = 5, // a MSG_RING from another loop: remote work
    tag_message_sent = 6,                // our MSG_RING to another loop went out
    tag_last = 6;                        // user_data above this names an operation

static_assert(sizeof(io_buffer) == sizeof(iovec) &&
              offsetof(io_buffer, data) == offsetof(iovec, iov_base) &&
              offsetof(io_buffer, size) == offsetof(iovec, iov_len));
// A datagram received by multishot recvmsg begins with the kernel's header, which is
// laid out as sluice's own (the other backends write that one themselves).
static_assert(sizeof(io_uring_recvmsg_out) == sizeof(datagram_header) &&
              offsetof(io_uring_recvmsg_out, namelen) == offsetof(datagram_header, name_length) &&
              offsetof(io_uring_recvmsg_out, payloadlen) == offsetof(datagram_header, whole_size));
// What the backend keeps in operation::scratch.
// Not zeroed when an operation starts (submit() sets cqes_left and polling; each use of
// msg, ts and deadline fills it first): a send or a receive writes two bytes here.
struct op_data {
  union {
    msghdr msg;           // sendmsg, send_message, recv_message
    __kernel_timespec ts; // timeout
  };
  __kernel_timespec deadline; // the linked timeout (absolute, CLOCK_MONOTONIC)
  std::uint8_t cqes_left;     // CQEs still to come: 1, or 2 with a linked timeout
  bool polling;               // recv_lent without a buffer ring: waiting for POLLIN
};
constexpr int buffer_group = 0;

// The receive pool; with a provided-buffer ring, the kernel picks the buffers: every
// buffer not lent out is in the ring, and giving one back puts it there again.
class uring_pool final : public recv_pool {
public:
  using recv_pool::recv_pool;
  ~uring_pool() override {
    if (ring_mem_ != nullptr) ::munmap(ring_mem_, ring_bytes_);
  }

  bool ring_mode() const noexcept { return br_ != nullptr; }

  // Registers the ring (on the thread the ring belongs to) and puts every buffer in it.
  bool attach(io_uring& ring) {
    std::uint32_t entries = 1;
    while (entries < max_)
      entries <<= 1;
    entries = std::min<std::uint32_t>(entries, 32768);
    max_ = std::min(max_, entries);
    ring_bytes_ = entries * sizeof(io_uring_buf);
    ring_mem_ =
        ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring_mem_ == MAP_FAILED) {
      ring_mem_ = nullptr;
      return false;
    }
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_mem_);
    reg.ring_entries = entries;
    reg.bgid = buffer_group;
    if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) {
      ::munmap(ring_mem_, ring_bytes_);
      ring_mem_ = nullptr;
      return false;
    }
    br_ = static_cast<io_uring_buf_ring*>(ring_mem_);
    mask_ = io_uring_buf_ring_mask(entries);
    io_uring_buf_ring_init(br_);
    show_ring();                   // buffer_pool::give_back writes it inline from now on
    for (std::uint32_t id : free_) // what the free list held goes to the kernel
      put_in_ring(id);
    free_.clear();
    return true;
  }

  // Ids of small blocks outside the ring (spare_block) have this bit set.
  static constexpr std::uint32_t spare_bit = 0x8000'0000u;

  // An empty datagram that a single-shot recvmsg received with no ring buffer (the
  // kernel takes none for 0 bytes): a block of its own for its header and sender, lent
  // like a buffer and reused once given back. False only when out of memory.
  bool spare_block(std::uint32_t& id, std::byte*& at) noexcept {
    try {
      if (free_spares_.empty()) {
        spares_.push_back(std::make_unique<std::byte[]>(datagram_payload_offset));
        free_spares_.reserve(spares_.size()); // give_back() never allocates
        free_spares_.push_back(static_cast<std::uint32_t>(spares_.size() - 1));
      }
    } catch (...) {
      return false;
    }
    const std::uint32_t i = free_spares_.back();
    free_spares_.pop_back();
    ++in_use_;
    id = i | spare_bit;
    at = spares_[i].get();
    return true;
  }

  std::uint32_t grow() override {
    if (!ring_mode()) return recv_pool::grow();
    const added a = allocate(std::min(count(), max_ - count()));
    show_ring(); // the new buffers too (addr_ may have moved)
    for (std::uint32_t i = 0; i < a.n; ++i)
      put_in_ring(a.first + i);
    return a.n;
  }

protected:
  // What the inline path of give_back() leaves here: a spare block, a buffer without a
  // ring, or any buffer while a receiver waits for one (the io_context is told).
  void return_buffer(std::uint32_t id) noexcept override {
    if ((id & spare_bit) != 0) {
      --in_use_;
      free_spares_.push_back(id & ~spare_bit); // reserved room: cannot fail
      io_.buffers_came_back();
      return;
    }
    if (!ring_mode()) return recv_pool::return_buffer(id);
    --in_use_;
    put_in_ring(id);
    io_.buffers_came_back();
  }

private:
  // The buffers put_in_ring() and the inline path may put back: all of them.
  void show_ring() noexcept {
    buffer_pool::show_ring(reinterpret_cast<ring_entry*>(br_), static_cast<std::uint32_t>(mask_),
                           addr_.data(), count(), static_cast<std::uint32_t>(size_));
  }

  std::vector<std::unique_ptr<std::byte[]>> spares_; // spare_block()s, by index
  std::vector<std::uint32_t> free_spares_;
  io_uring_buf_ring* br_ = nullptr;
  void* ring_mem_ = nullptr;
  std::size_t ring_bytes_ = 0;
  int mask_ = 0;
};

// buffer_pool::put_in_ring's view of a ring entry is the kernel's (the tail too, which
// io_uring_buf_ring_init zeroes: the last field of entry 0).
static_assert(sizeof(ring_entry) == sizeof(io_uring_buf));
static_assert(offsetof(ring_entry, addr) == offsetof(io_uring_buf, addr));
static_assert(offsetof(ring_entry, len) == offsetof(io_uring_buf, len));
static_assert(offsetof(ring_entry, bid) == offsetof(io_uring_buf, bid));
static_assert(offsetof(ring_entry, tail) == offsetof(io_uring_buf_ring, tail));

static_assert(sizeof(op_data) <= sizeof(operation::scratch));
static_assert(alignof(op_data) <= 8);
op_data& data(operation& op) noexcept {
  return *std::launder(reinterpret_cast<op_data*>(op.scratch));
}
constexpr std::uint64_t link_bit = 1; // user_data of an operation's linked timeout
// IORING_ACCEPT_DONTWAIT (sqe->ioprio of an accept, Linux 6.10): not in liburing 2.3's
// headers.
constexpr std::uint16_t accept_dontwait_flag = 1U << 1;

// What the kernel offers (probed) and what sluice uses (probed and not disabled).
struct features {
  bool op_shutdown = true;      // IORING_OP_SHUTDOWN, Linux 5.11
  bool cancel_fd = true;        // IORING_ASYNC_CANCEL_FD | ALL, Linux 5.19
  bool cancel_any = true;       // IORING_ASYNC_CANCEL_ANY, Linux 5.19
  bool single_issuer = true;    // IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN, Linux 6.1
  bool buf_ring = true;         // provided-buffer rings, Linux 5.19
  bool recv_multishot = true;   // IORING_RECV_MULTISHOT, Linux 6.0
  bool accept_multishot = true; // IORING_ACCEPT_MULTISHOT, Linux 5.19
  bool accept_dontwait = true;  // IORING_ACCEPT_DONTWAIT, Linux 6.10
  // io_uring_enter by registered index (IORING_REGISTER_RING_FDS, Linux 5.18): no file
  // lookup per call. Per thread, so only with SINGLE_ISSUER (one thread enters).
  bool ring_fd = true;
  // IORING_OP_MSG_RING (Linux 5.18): a loop wakes another uring loop with an SQE of its
  // own ring, submitted with its next batch, instead of an eventfd write.
  bool msg_ring = true;
};

// What io_uring_get_probe cannot show (flags, not opcodes) is tried on a scratch ring,
// once per process: -EINVAL means the kernel does not know it.
struct kernel_probe {
  bool cancel_fd = false, cancel_any = false, buf_ring = false, recv_multishot = false;
  bool accept_multishot = false, accept_dontwait = false;
};
kernel_probe probe_kernel() {
  static std::once_flag once;
  static kernel_probe result;
  std::call_once(once, [] {
    io_uring ring{};
    if (io_uring_queue_init(8, &ring, 0) < 0) return;
    ring_mapped();
    auto run = [&](auto prep, unsigned* flags = nullptr) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      prep(sqe);
      io_uring_sqe_set_data64(sqe, 7);
      io_uring_cqe* cqe = nullptr;
      if (io_uring_submit_and_wait(&ring, 1) < 0 || io_uring_peek_cqe(&ring, &cqe) != 0)
        return -EINVAL;
      const int res = cqe->res;
      if (flags != nullptr) *flags = cqe->flags;
      io_uring_cqe_seen(&ring, cqe);
      return res;
    };
    result.cancel_fd = run([&](io_uring_sqe* s) {
                         io_uring_prep_cancel_fd(s, ring.ring_fd, IORING_ASYNC_CANCEL_ALL);
                       }) != -EINVAL;
    result.cancel_any = run([](io_uring_sqe* s) {
                          io_uring_prep_cancel(s, nullptr, IORING_ASYNC_CANCEL_ANY);
                        }) != -EINVAL;
    // A multishot accept on a listening Unix socket (abstract, autobound) with a
    // connection waiting: an older kernel rejects the flag with -EINVAL.
    if (const int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); l >= 0) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      socklen_t len = sizeof(sa_family_t);
      if (::bind(l, reinterpret_cast<sockaddr*>(&addr), len) == 0 && ::listen(l, 1) == 0 &&
          (len = sizeof addr, ::getsockname(l, reinterpret_cast<sockaddr*>(&addr), &len) == 0)) {
        const int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c >= 0 && ::connect(c, reinterpret_cast<sockaddr*>(&addr), len) == 0) {
          unsigned flags = 0;
          const int res = run(
              [&](io_uring_sqe* s) {
                io_uring_prep_multishot_accept(s, l, nullptr, nullptr, SOCK_CLOEXEC);
              },
              &flags);
          result.accept_multishot = res >= 0 && (flags & IORING_CQE_F_MORE) != 0;
          if (res >= 0) ::close(res);
          // Nothing waits any more: an accept that must not wait says EAGAIN (an older
          // kernel rejects the flag with -EINVAL).
          result.accept_dontwait = run([&](io_uring_sqe* s) {
                                     io_uring_prep_accept(s, l, nullptr, nullptr, SOCK_CLOEXEC);
                                     s->ioprio |= accept_dontwait_flag;
                                   }) == -EAGAIN;
        }
        if (c >= 0) ::close(c);
      }
      // The multishot still armed on `l` ends with the ring (io_uring_queue_exit below).
      ::close(l);
    }
    // A one-buffer ring, and a multishot recv on a socketpair with a byte waiting.
    void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem != MAP_FAILED) {
      auto* br = static_cast<io_uring_buf_ring*>(mem);
      io_uring_buf_reg reg{};
      reg.ring_addr = reinterpret_cast<std::uintptr_t>(br);
      reg.ring_entries = 1;
      reg.bgid = 0;
      if (io_uring_register_buf_ring(&ring, &reg, 0) == 0) {
        result.buf_ring = true;
        static char byte_buffer[64];
        io_uring_buf_ring_init(br);
        io_uring_buf_ring_add(br, byte_buffer, sizeof byte_buffer, 0, io_uring_buf_ring_mask(1), 0);
        io_uring_buf_ring_advance(br, 1);
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
          const char one = 'x';
          [[maybe_unused]] ssize_t w = ::write(sv[1], &one, 1);
          unsigned flags = 0;
          const int res = run(
              [&](io_uring_sqe* s) {
                io_uring_prep_recv_multishot(s, sv[0], nullptr, 0, 0);
                s->flags |= IOSQE_BUFFER_SELECT;
                s->buf_group = 0;
              },
              &flags);
          result.recv_multishot = res == 1 && (flags & IORING_CQE_F_MORE) != 0;
          ::close(sv[0]);
          ::close(sv[1]);
        }
      }
      ring_unmapping();
      io_uring_queue_exit(&ring); // before the ring memory goes
      ::munmap(mem, 4096);
      return;
    }
    ring_unmapping();
    io_uring_queue_exit(&ring);
  });
  return result;
}

// SLUICE_URING_DISABLE=op_shutdown,cancel_fd,cancel_any,single_issuer,buf_ring,
// recv_multishot,accept_multishot,accept_dontwait,ring_fd,msg_ring turns features off,
// to exercise the fallbacks on a kernel that has them.

bool disabled_by_env(std::string_view feature) {
  const char* v = std::getenv("SLUICE_URING_DISABLE");
  if (v == nullptr) return false;
  std::string_view list(v);
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (list.substr(0, comma) == feature) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// One line per process and fallback: what the kernel lacks and what sluice does instead.
void log_fallback(const char* what) {
  static std::mutex m;
  static std::string logged;
  std::lock_guard lock(m);
  if (logged.find(what) != std::string::npos) return;
  logged += what;
  fmt::print(stderr, "sluice: io_uring: {}\n", what);
}

class uring_backend final : public backend {
public:
  explicit uring_backend(io_context& io) : io_(io), pool_(io) {}

  std::error_code init(std::string& why) {
    io_uring_params p{};
    feat_.single_issuer = !disabled_by_env("single_issuer");
    int r = -EINVAL;
    if (feat_.single_issuer) {
      p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
      r = io_uring_queue_init_params(queue_depth, &ring_, &p);
    }
    if (r == -EINVAL) {
      // Older kernel (before 6.1): no SINGLE_ISSUER / DEFER_TASKRUN.
      if (feat_.single_issuer)
        log_fallback("no SINGLE_ISSUER|DEFER_TASKRUN (kernel < 6.1): plain ring");
      feat_.single_issuer = false;
      feat_.ring_fd = false; // any thread may enter a plain ring
      p = io_uring_params{};
      r = io_uring_queue_init_params(queue_depth, &ring_, &p);
    } else if (r == 0) {
      disabled_ = true;
    }
    if (r < 0) return {-r, std::system_category()};
    ring_mapped();
    ring_ok_ = true;
    if (auto ec = probe(why)) return ec;
    choose_in_flight_list();
    pool_.start();
    // A ring set up disabled belongs to the thread that enables it: register the
    // buffer ring there (enable_if_needed), before anything is submitted.
    if (!disabled_) {
      attach_buffer_ring();
      accepts_messages_.store(true, std::memory_order_release);
    }
    // Blocking on purpose: io_uring completes a read on an O_NONBLOCK file with
    // -EAGAIN instead of waiting for it.
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (wake_fd_ < 0) return {errno, std::system_category()};
    return {};
  }

  ~uring_backend() override {
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (ring_ok_) {
      ring_unmapping();
      io_uring_queue_exit(&ring_);
    }
  }

  std::string_view name() const noexcept override { return "uring"; }

  recv_pool& buffers() noexcept override { return pool_; }

  std::string description() const override {
    std::string d = "uring";
    std::string f;
    auto add = [&](const char* s) { f += f.empty() ? s : std::string(", ") + s; };
    if (!feat_.single_issuer) add("plain ring (no SINGLE_ISSUER|DEFER_TASKRUN)");
    if (!feat_.op_shutdown) add("shutdown: shutdown(2)");
    if (!feat_.cancel_fd) add("close: per-operation cancel");
    if (!feat_.cancel_any) add("teardown: per-operation cancel");
    if (!feat_.buf_ring)
      add("receive: poll, then read into a pooled buffer");
    else if (!feat_.recv_multishot)
      add("receive: one recv per buffer, no multishot");
    if (!feat_.accept_multishot) add("accept: one per connection, no multishot");
    if (!feat_.accept_dontwait) add("backlog sweep: accept, then cancel");
    if (!feat_.msg_ring) add("cross-loop wake: eventfd");
    if (!feat_.ring_fd && !disabled_) add("ring fd not registered");
    if (!f.empty()) d += " (" + f + ")";

    return d;
  }

  void submit(operation& op) override {
    auto& d = *new (op.scratch) op_data;
    d.cqes_left = 1;
    d.polling = false;
    if (op.code == op_code::send && op.deadline == 0) { // the usual case, apart
      io_uring_sqe* sqe = get_sqe();
      prep_send(sqe, op);
      io_uring_sqe_set_data(sqe, &op);
      return;
    }
    submit_rest(op, d);
  }

  static void prep_send(io_uring_sqe* sqe, const operation& op) noexcept {
    // MSG_NOSIGNAL: a peer that went away yields EPIPE, never SIGPIPE.
    io_uring_prep_send(sqe, static_cast<int>(op.handle), op.buffer, op.length, MSG_NOSIGNAL);
  }

  // Every other operation (its code apart from the usual send's: fewer register saves).
  [[gnu::noinline]] void submit_rest(operation& op, op_data& d) {
    const int fd = static_cast<int>(op.handle);
    if (op.code == op_code::shutdown && !feat_.op_shutdown) {
      // Fallback: shutdown(2) never blocks; its result is delivered next turn.
      const int how = op.flags == shutdown_receive ? SHUT_RD
                      : op.flags == shutdown_send  ? SHUT_WR
                                                   : SHUT_RDWR;
      const int r = ::shutdown(fd, how);
      op.res = 0;
      op.error = r == 0 ? std::error_code() : std::error_code(errno, std::system_category());
      io_.defer_completion(op);
      return;
    }
    io_uring_sqe* sqe = get_sqe();
    switch (op.code) {
    case op_code::accept:
      // Multishot: one SQE accepts connection after connection (the acceptor's queue
      // asks each one's peer address; there is one address buffer for them all).
      // accept_no_wait (a sweep of the backlog): single-shot, never waiting.
      op.multishot = feat_.accept_multishot && (op.flags & accept_no_wait) == 0;
      if (op.multishot) {
        io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC);
        break;
      }
      op.address->length = sizeof(op.address->bytes);
      io_uring_prep_accept(sqe, fd, reinterpret_cast<sockaddr*>(op.address->bytes),
                           reinterpret_cast<socklen_t*>(&op.address->length), SOCK_CLOEXEC);
      if ((op.flags & accept_no_wait) != 0) {
        if (feat_.accept_dontwait) {
          sqe->ioprio |= accept_dontwait_flag;
        } else {
          // Without the flag: the accept tries at once when submitted; if it has to wait,
          // the cancel right behind it ends it (-ECANCELED: nothing was waiting).
          io_uring_sqe_set_data(sqe, &op);
          io_uring_sqe* cancel = get_sqe();
          io_uring_prep_cancel(cancel, &op, 0);
          io_uring_sqe_set_data64(cancel, tag_cancel);
          return;
        }
      }
      break;
    case op_code::connect:
      io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(op.address->bytes),
                            op.address->length);
      break;
    case op_code::recv: io_uring_prep_recv(sqe, fd, op.buffer, op.length, 0); break;
    case op_code::recv_lent:
      op.more = false;
      if (pool_.ring_mode() || feat_.buf_ring) {
        // The kernel picks a buffer from the ring when data comes: none is held idle.
        op.multishot = feat_.recv_multishot;
        prep_lent(sqe, op);
      } else {
        // No buffer ring: wait for input first, holding no buffer, then read.
        op.multishot = false;
        d.polling = true;
        io_uring_prep_poll_add(sqe, fd, POLLIN);
      }
      break;
    case op_code::send: prep_send(sqe, op); break;
    case op_code::sendmsg: {
      d.msg = msghdr{};
      d.msg.msg_iov = static_cast<iovec*>(op.buffer);
      d.msg.msg_iovlen = op.length;
      io_uring_prep_sendmsg(sqe, fd, &d.msg, MSG_NOSIGNAL);
      break;
    }
    case op_code::send_message:
    case op_code::recv_message: {
      const auto& m = *static_cast<const message*>(op.buffer);
      d.msg = msghdr{};
      d.msg.msg_iov = reinterpret_cast<iovec*>(m.parts);
      d.msg.msg_iovlen = m.count;
      d.msg.msg_control = m.control;
      d.msg.msg_controllen = m.control_length;
      if (m.peer != nullptr) {
        d.msg.msg_name = m.peer->bytes;
        d.msg.msg_namelen =
            op.code == op_code::send_message ? m.peer->length : sizeof(m.peer->bytes);
      }
      if (op.code == op_code::send_message)
        io_uring_prep_sendmsg(sqe, fd, &d.msg, MSG_NOSIGNAL);
      else // received descriptors are close-on-exec from the start
        io_uring_prep_recvmsg(sqe, fd, &d.msg, MSG_CMSG_CLOEXEC | (m.datagram ? MSG_TRUNC : 0));
      break;
    }
    case op_code::shutdown: {
      const int how = op.flags == shutdown_receive ? SHUT_RD
                      : op.flags == shutdown_send  ? SHUT_WR
                                                   : SHUT_RDWR;
      io_uring_prep_shutdown(sqe, fd, how);
      break;
    }
    case op_code::timeout: {
      d.ts.tv_sec = op.duration_ns / 1'000'000'000;
      d.ts.tv_nsec = op.duration_ns % 1'000'000'000;
      io_uring_prep_timeout(sqe, &d.ts, 0, 0);
      break;
    }
    case op_code::read:
      io_uring_prep_read(sqe, fd, op.buffer, static_cast<unsigned>(op.length), 0);
      break;
    case op_code::none: break; // never here: io_context::submit refuses it
    }
    io_uring_sqe_set_data(sqe, &op);
    if (op.deadline != 0) {
      // The deadline, linked: past it the kernel cancels the operation (-ECANCELED)
      // and the timeout's own CQE says -ETIME. Steady_clock is CLOCK_MONOTONIC.
      sqe->flags |= IOSQE_IO_LINK;
      d.deadline.tv_sec = op.deadline / 1'000'000'000;
      d.deadline.tv_nsec = op.deadline % 1'000'000'000;
      io_uring_sqe* link = get_sqe();
      io_uring_prep_link_timeout(link, &d.deadline, IORING_TIMEOUT_ABS);
      io_uring_sqe_set_data64(link, reinterpret_cast<std::uintptr_t>(&op) | link_bit);
      d.cqes_left = 2;
    }
  }

  void cancel(operation& op) noexcept override {
    if (withdraw_unsubmitted(op)) { // never reached the kernel: done here
      op.res = 0;
      op.error = std::error_code(ECANCELED, std::system_category());
      io_.defer_completion(op);
      return;
    }
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data64(sqe, tag_cancel);
  }

  void cancel_all(native_handle h) noexcept override {
    if (io_.in_flight() == 0) return; // nothing of ours can refer to h
    if (disabled_) {
      // The ring never ran: what is queued for h is still in our SQ.
      for (operation* op = first_in_flight(); op != nullptr;) {
        operation* next = op->inflight_next;
        if (op->handle == h) cancel(*op);
        op = next;
      }
      return;
    }
    if (!on_issuer_thread()) {
      // Not the loop thread: the ring will not take our SQEs here. shutdown(2) makes
      // every pending operation on the socket complete by itself.
      ::shutdown(static_cast<int>(h), SHUT_RDWR);
      return;
    }
    if (feat_.cancel_fd) {
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_cancel_fd(sqe, static_cast<int>(h), IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, tag_cancel_fd);
    } else {
      for (operation* op = first_in_flight(); op != nullptr;) {
        operation* next = op->inflight_next;
        if (op->handle == h && op->state == op_state::pending) cancel(*op);
        op = next;
      }
    }
    // Pushed now: the caller closes the fd right after, and must not race the cancel.
    flush();
  }

  abandoned_at abandon(operation& op) noexcept override {
    // 1. Its SQEs are still in our SQ: they never reach the kernel.
    if (withdraw_unsubmitted(op)) return abandoned_at::not_submitted;
    const auto me = reinterpret_cast<std::uintptr_t>(&op);
    auto& d = data(op);
    bool completed = false;
    // Takes one of op's CQEs (its own, or its linked timeout's).
    auto take = [&](std::uint64_t ud, int res) {
      if (ud == me) {
        fill(op, res);
        completed = res != -ECANCELED;
      }
      --d.cqes_left;
    };
    // 2. Its completions may be in the CQ, not yet dispatched (drain() consumes each
    //    CQE just before it dispatches it).
    take_unconsumed(me, take);
    if (d.cqes_left == 0) return completed ? abandoned_at::completed : abandoned_at::in_flight;
    // 3. In the kernel: cancel it (its linked timeout goes with it) and reap until every
    //    CQE that names it has come.
    if (!on_issuer_thread()) fatal_wrong_thread("destroying an operation in flight");
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data64(sqe, tag_cancel);
    while (d.cqes_left != 0) {
      const int r = io_uring_submit_and_wait(&ring_, 1);
      if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME)
        fatal_errno("io_uring_submit_and_wait while cancelling an abandoned operation", -r);
      io_uring_cqe* cqes[reap_batch];
      const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, reap_batch);
      for (unsigned i = 0; i < n; ++i) {
        const std::uint64_t ud = cqes[i]->user_data;
        if (ud > tag_last && (ud & ~link_bit) == me)
          take(ud, cqes[i]->res);
        else
          set_aside(ud, cqes[i]->res, cqes[i]->flags);
      }
      io_uring_cq_advance(&ring_, n);
    }
    return completed ? abandoned_at::completed : abandoned_at::in_flight;
  }

  // An armed accept is an exclusive waiter on its socket: see backend.hpp.
  bool accept_sweep() const noexcept override { return true; }

  void poll(bool block, std::int64_t wake_by) override {
    // The usual turn apart: the ring running, the wake read armed, no deadline to wake
    // for, nothing set aside.
    if (!remote_pending_ && !disabled_ && wake_armed_ && wake_by == 0 && backlog_.empty()) {
      const int r =
          block ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit_and_get_events(&ring_);
      if (r < 0) check_enter(r);
      drain(true);
      return;
    }
    poll_rest(block, wake_by);
  }

  // Throws for an error of io_uring_enter other than the expected ones.
  static void check_enter(int r) {
    if (r != -EINTR && r != -ETIME && r != -EBUSY && r != -EAGAIN)
      throw std::system_error(-r, std::system_category(), "io_uring_submit_and_wait");
  }

  [[gnu::noinline]] void poll_rest(bool block, std::int64_t wake_by) {
    if (remote_pending_) { // a wake seen while an abandon reaped completions
      remote_pending_ = false;
      io_.run_remote();
      block = false;
    }
    enable_if_needed();
    arm_wake();
    int r = 0;
    if (!block) {
      r = io_uring_submit_and_get_events(&ring_);
    } else if (wake_by == 0) {
      r = io_uring_submit_and_wait(&ring_, 1);
    } else { // not past the loop's earliest deadline
      const std::int64_t left = std::max<std::int64_t>(wake_by - steady_now_ns(), 0);
      __kernel_timespec ts{left / 1'000'000'000, left % 1'000'000'000};
      io_uring_cqe* cqe = nullptr;
      r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    if (r < 0) check_enter(r);
    for (const reaped& c : backlog_) // multishot completions set aside by an abandon
      dispatch(c, false);
    backlog_.clear();
    drain(true);
  }

  void wake() noexcept override {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  bool wake_other(backend& target) noexcept override {
    auto* other = dynamic_cast<uring_backend*>(&target);
    // (The other ring must be enabled: its own thread says so, once, when it enables it.)
    if (!feat_.msg_ring || other == nullptr || disabled_ ||
        !other->accepts_messages_.load(std::memory_order_acquire))
      return false;
    if (!on_issuer_thread()) return false;
    io_uring_sqe* sqe = get_sqe();
    // A CQE in the other ring (user_data tag_message) wakes it; ours says it went out.
    io_uring_prep_msg_ring(sqe, other->ring_.ring_fd, 0, tag_message, 0);
    io_uring_sqe_set_data64(sqe, tag_message_sent);
    return true;
  }

  void shutdown() noexcept override {
    if (io_.in_flight() == 0) return;
    if (disabled_) { // never enabled: nothing reached the kernel
      while (operation* op = first_in_flight()) {
        withdraw_unsubmitted(*op);
        op->res = 0;
        op->error = std::error_code(ECANCELED, std::system_category());
        io_.complete(*op);
      }
      return;
    }
    if (!on_issuer_thread())
      fatal_wrong_thread("destroying an io_context with operations in flight");
    // What never reached the kernel is settled here (found in our SQ: the in-flight
    // list may be off); the rest is cancelled there.
    for_each_unsubmitted([&](io_uring_sqe* sqe) {
      const std::uint64_t ud = sqe->user_data;
      if (ud <= tag_last || (ud & link_bit) != 0) return false; // not an operation's own
      auto& op = *reinterpret_cast<operation*>(ud);
      withdraw_unsubmitted(op); // this SQE, its linked timeout, cancels aimed at it
      op.res = 0;
      op.error = std::error_code(ECANCELED, std::system_category());
      io_.complete(op); // shutting down: not resumed
      return false;
    });
    if (!feat_.cancel_any) { // (the list is kept then)
      for (operation* op = first_in_flight(); op != nullptr; op = op->inflight_next) {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, op, 0);
        io_uring_sqe_set_data64(sqe, tag_cancel);
      }
    }
    if (feat_.cancel_any && io_.in_flight() != 0) {
      io_uring_sqe* sqe = get_sqe();
      io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
      io_uring_sqe_set_data64(sqe, tag_cancel_any);
    }
    // Bounded: every operation sluice starts is cancellable, so this ends at once.
    for (int i = 0; i < 100 && io_.in_flight() != 0; ++i) {
      __kernel_timespec ts{0, 50'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      drain(false);
    }
    if (io_.in_flight() != 0)
      fmt::print(stderr, "sluice: io_uring teardown: {} operations did not complete in 5 s\n",
                 io_.in_flight());
  }

private:
  struct reaped {
    std::uint64_t user_data;
    int res;
    unsigned flags;
  };

  operation* first_in_flight() const noexcept { return io_.first_in_flight(); }

  bool on_issuer_thread() const noexcept {
    return !feat_.single_issuer || issuer_ == std::thread::id() ||
           issuer_ == std::this_thread::get_id();
  }

  [[noreturn]] void fatal_wrong_thread(const char* what) const noexcept {
    fmt::print(stderr,
               "sluice: {} on a thread other than the one that ran the io_context (io_uring "
               "binds its ring to that thread); do it on the loop thread\n",
               what);
    std::fflush(stderr);
    std::abort();
  }
  [[noreturn]] static void fatal_errno(const char* what, int err) noexcept {
    fmt::print(stderr, "sluice: {}: {}\n", what, std::strerror(err));
    std::fflush(stderr);
    std::abort();
  }

  std::error_code probe(std::string& why) {
    // IORING_REGISTER_PROBE, retried when interrupted (EINTR, EAGAIN), and a failure names
    // its errno. (CI once saw this probe fail right after another ring of the same
    // thread was torn down: most likely the ring's descriptor was 0 and a destroyed wait
    // closed it, the bug op_code::none fixed; see operation.hpp.)
    io_uring_probe* pr = nullptr;
    int err = 0;
    for (int attempt = 0; attempt < 10 && pr == nullptr; ++attempt) {
      constexpr unsigned ops = 256;
      auto* p = static_cast<io_uring_probe*>(
          std::calloc(1, sizeof(io_uring_probe) + ops * sizeof(io_uring_probe_op)));
      if (p == nullptr) return std::make_error_code(std::errc::not_enough_memory);
      const int rc = io_uring_register_probe(&ring_, p, ops);
      if (rc >= 0) {
        pr = p;
        break;
      }
      std::free(p);
      err = -rc;
      if (err != EINTR && err != EAGAIN) break;
    }
    if (pr == nullptr) {
      why = fmt::format("io_uring probe (IORING_REGISTER_PROBE) failed: {}{}", std::strerror(err),
                        err == EINVAL ? " (kernel before 5.6)" : "");
      return std::make_error_code(std::errc::function_not_supported);
    }
    struct need {
      int op;
      const char* name;
      const char* key; // for SLUICE_URING_DISABLE, to exercise the fallback
    };
    static constexpr need required[] = {
        {IORING_OP_ACCEPT, "ACCEPT", "op_accept"},
        {IORING_OP_CONNECT, "CONNECT", "op_connect"},
        {IORING_OP_RECV, "RECV", "op_recv"},
        {IORING_OP_SEND, "SEND", "op_send"},
        {IORING_OP_SENDMSG, "SENDMSG", "op_sendmsg"},
        {IORING_OP_TIMEOUT, "TIMEOUT", "op_timeout"},
        {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL", "op_async_cancel"},
        {IORING_OP_READ, "READ", "op_read"},
        {IORING_OP_LINK_TIMEOUT, "LINK_TIMEOUT", "op_link_timeout"}};
    for (const auto& n : required) {
      const bool masked = disabled_by_env(n.key);
      if (masked || !io_uring_opcode_supported(pr, n.op)) {
        why = fmt::format("io_uring lacks IORING_OP_{} ({})", n.name,
                          masked ? "disabled by SLUICE_URING_DISABLE" : "kernel too old");
        io_uring_free_probe(pr);
        return std::make_error_code(std::errc::function_not_supported);
      }
    }
    const bool kernel_shutdown = io_uring_opcode_supported(pr, IORING_OP_SHUTDOWN);
    const bool kernel_msg_ring = io_uring_opcode_supported(pr, IORING_OP_MSG_RING);
    io_uring_free_probe(pr);
    const kernel_probe k = probe_kernel();
    feat_.op_shutdown = kernel_shutdown && !disabled_by_env("op_shutdown");
    feat_.cancel_fd = k.cancel_fd && !disabled_by_env("cancel_fd");
    feat_.cancel_any = k.cancel_any && !disabled_by_env("cancel_any");
    feat_.buf_ring = k.buf_ring && !disabled_by_env("buf_ring");
    feat_.recv_multishot = feat_.buf_ring && k.recv_multishot && !disabled_by_env("recv_multishot");
    feat_.accept_multishot = k.accept_multishot && !disabled_by_env("accept_multishot");
    feat_.accept_dontwait = k.accept_dontwait && !disabled_by_env("accept_dontwait");
    feat_.msg_ring = kernel_msg_ring && !disabled_by_env("msg_ring");
    if (!k.accept_multishot)
      log_fallback("no multishot accept (kernel < 5.19): one accept per connection");
    if (!k.accept_dontwait)
      log_fallback("no IORING_ACCEPT_DONTWAIT (kernel < 6.10): after a stop, the backlog is "
                   "swept with an accept cancelled at once");

    if (!kernel_shutdown) log_fallback("no IORING_OP_SHUTDOWN (kernel < 5.11): using shutdown(2)");
    if (!k.cancel_fd)
      log_fallback("no IORING_ASYNC_CANCEL_FD (kernel < 5.19): cancelling per operation");
    if (!k.cancel_any)
      log_fallback("no IORING_ASYNC_CANCEL_ANY (kernel < 5.19): cancelling per operation");
    if (!k.buf_ring)
      log_fallback("no provided-buffer rings (kernel < 5.19): receives poll, then read");
    else if (!k.recv_multishot)
      log_fallback("no multishot recv (kernel < 6.0): one receive per buffer");
    return {};
  }

  // Debian's liburing 2.3 declares io_uring_enable_rings() but does not export it.
  int enable_rings() noexcept {
    const long r =
        ::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
    return r < 0 ? -errno : 0;
  }

  // The io_context's in-flight list is walked only where the kernel cannot find our
  // operations by itself: a ring not enabled yet (everything waits in our SQ), a kernel
  // without IORING_ASYNC_CANCEL_ANY (teardown cancels one by one) or without
  // IORING_ASYNC_CANCEL_FD (close cancels one by one). Elsewhere no operation pays for it.
  void choose_in_flight_list() noexcept {
    io_.keep_in_flight_list(disabled_ || !feat_.cancel_any || !feat_.cancel_fd);
  }

  // Loop thread only (poll): the ring is bound to the thread that enables it.
  void enable_if_needed() {
    if (!disabled_) return;
    const int r = enable_rings();
    if (r < 0) throw std::system_error(-r, std::system_category(), "IORING_REGISTER_ENABLE_RINGS");
    disabled_ = false;
    choose_in_flight_list();
    issuer_ = std::this_thread::get_id();
    attach_buffer_ring();
    register_ring_fd();
    accepts_messages_.store(true, std::memory_order_release);
  }

  // On the loop thread, which is the only one that enters the ring from now on. The
  // registration belongs to this thread: liburing drops it at io_uring_queue_exit when
  // the context is destroyed here (as it should be), or the kernel when the thread ends.
  void register_ring_fd() {
    if (!feat_.ring_fd) return;
    if (disabled_by_env("ring_fd")) {
      feat_.ring_fd = false;
      return;
    }
    const int r = io_uring_register_ring_fd(&ring_);
    if (r != 1) {
      feat_.ring_fd = false;
      // Says why: an old kernel, or the kernel's bound of 16 registered rings per thread
      // (a thread that ran many loops, some destroyed on other threads).
      const std::string why =
          r == -EINVAL ? "kernel < 5.18"
          : r == -EBUSY
              ? "this thread holds 16 registered rings already, the kernel's limit per thread"
              : std::strerror(-r);
      log_fallback(
          fmt::format("registering the ring fd failed ({}): io_uring_enter by fd", why).c_str());
    }
  }

  void attach_buffer_ring() {
    if (!feat_.buf_ring || pool_.ring_mode()) return;
    if (!pool_.attach(ring_)) {
      log_fallback("registering the provided-buffer ring failed: receives poll, then read");
      feat_.buf_ring = feat_.recv_multishot = false;
    }
  }

  [[gnu::always_inline]] io_uring_sqe* get_sqe() noexcept {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    return get_sqe_when_full();
  }
  [[gnu::noinline]] io_uring_sqe* get_sqe_when_full() noexcept {
    io_uring_sqe* sqe = nullptr;
    while (sqe == nullptr) {
      // SQ full: push what is queued (completions stay in the CQ until poll()).
      flush();
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr && (disabled_ || !on_issuer_thread()))
        fatal_errno("io_uring submission queue full before the loop runs", EBUSY);
    }
    return sqe;
  }

  // Pushes the SQ to the kernel, from the thread the ring belongs to only.
  void flush() noexcept {
    if (disabled_ || !on_issuer_thread()) return;
    io_uring_submit(&ring_);
  }

  // The SQEs the kernel has not consumed yet: [*khead, sqe_tail).
  template <class F> bool for_each_unsubmitted(F&& f) noexcept {
    const unsigned head = io_uring_smp_load_acquire(ring_.sq.khead);
    for (unsigned i = head; i != ring_.sq.sqe_tail; ++i)
      if (f(&ring_.sq.sqes[i & ring_.sq.ring_mask])) return true;
    return false;
  }
  // Turns op's SQE (and cancels aimed at it) into NOPs if the kernel has not taken
  // them yet. True if op's own SQE was found.
  bool withdraw_unsubmitted(operation& op) noexcept {
    const auto me = reinterpret_cast<std::uintptr_t>(&op);
    bool found = false;
    for_each_unsubmitted([&](io_uring_sqe* sqe) {
      const bool mine = sqe->user_data == me;
      const bool timeout_of_mine = sqe->user_data == (me | link_bit);
      const bool cancel_of_mine = sqe->opcode == IORING_OP_ASYNC_CANCEL && sqe->addr == me;
      if (mine || timeout_of_mine || cancel_of_mine) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, tag_none);
      }
      found = found || mine;
      return false;
    });
    return found;
  }

  void arm_wake() {
    if (wake_armed_) return;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data64(sqe, tag_wake);
    wake_armed_ = true;
  }

  // An internal completion, or one for an operation other than the one being
  // abandoned: never resumes anything from here.
  void set_aside(std::uint64_t ud, int res, unsigned flags) {
    if (ud <= tag_last) return internal(ud, res, false);
    auto* op = reinterpret_cast<operation*>(ud & ~link_bit);
    if (op->code == op_code::recv_lent || op->multishot) { // it may have more to come
      backlog_.push_back({ud, res, flags});
      return;
    }
    if (operation* done = take_cqe(ud, res, flags)) io_.defer_completion(*done);
  }

  // Accounts for one CQE of an operation; returns it once its last CQE has come.
  // Accounts for one CQE of an operation; returns the operation when this CQE
  // completes it — for a multishot, every CQE (op.more says whether more follow).
  // (Inlined into drain(), as are dispatch() and take_receive()'s usual case: their
  // register saves are then paid once per batch, not once per CQE.)
  [[gnu::always_inline]] operation* take_cqe(std::uint64_t ud, int res, unsigned flags) {
    auto& op = *reinterpret_cast<operation*>(ud & ~link_bit);
    if ((ud & link_bit) != 0) {
      if (res == -ETIME) op.timed_out = true; // the deadline fired
      return --data(op).cqes_left == 0 ? &op : nullptr;
    }
    if (op.code == op_code::recv_lent) return take_receive(op, res, flags);
    fill(op, res);
    if (op.code == op_code::recv_message) {
      auto& m = *static_cast<message*>(op.buffer);
      const msghdr& h = data(op).msg;
      m.control_length = res >= 0 ? h.msg_controllen : 0;
      m.truncated = res >= 0 && (h.msg_flags & MSG_TRUNC) != 0;
      m.control_truncated = res >= 0 && (h.msg_flags & MSG_CTRUNC) != 0;
      if (m.peer != nullptr) m.peer->length = res >= 0 ? h.msg_namelen : 0;
    }
    if (op.multishot && (flags & IORING_CQE_F_MORE) != 0) {
      op.more = true; // a multishot accept: it stays pending
      return &op;
    }
    return last_cqe(op);
  }

  operation* last_cqe(operation& op) noexcept {
    op.more = false;
    return --data(op).cqes_left == 0 ? &op : nullptr;
  }

  // A CQE of a recv_lent: a buffer the kernel picked, the end of a multishot, or (with
  // no buffer ring) the POLLIN after which the read is made here. The usual case, bytes
  // of a stream in a ring buffer, is answered here; the others out of line (their
  // code would otherwise cost every receive its register saves).
  [[gnu::always_inline]] operation* take_receive(operation& op, int res, unsigned flags) {
    if (res > 0 && (flags & IORING_CQE_F_BUFFER) != 0 && (op.flags & recv_datagram) == 0 &&
        !data(op).polling) {
      const auto id = static_cast<std::uint32_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      pool_.lent_by_kernel();
      op.res = res;
      clear_error(op);
      op.lent_id = id;
      op.buffer = pool_.address(id);
      if ((flags & IORING_CQE_F_MORE) != 0) {
        op.more = true;
        return &op; // it stays pending
      }
      return last_cqe(op);
    }
    return take_receive_rest(op, res, flags);
  }

  [[gnu::noinline]] operation* take_receive_rest(operation& op, int res, unsigned flags) {
    auto& d = data(op);
    const int fd = static_cast<int>(op.handle);
    if (d.polling) {
      d.polling = false;
      if (res < 0) {
        fill(op, res);
        return last_cqe(op);
      }
      std::uint32_t id = 0;
      if (!pool_.take(id)) {
        fill(op, -ENOBUFS);
        return last_cqe(op);
      }
      std::int64_t n = 0;
      if ((op.flags & recv_datagram) != 0) {
        n = sys::recv_datagram_now(op.handle, pool_.address(id), pool_.buffer_size());
      } else {
        n = ::recv(fd, pool_.address(id), pool_.buffer_size(), MSG_DONTWAIT);
        if (n < 0) n = -errno;
      }
      if (n > 0) {
        op.res = n;
        op.error = {};
        op.lent_id = id;
        op.buffer = pool_.address(id);
        return last_cqe(op);
      }
      const int err = static_cast<int>(-n);
      pool_.give_back(id);
      if (err == EAGAIN || err == EWOULDBLOCK) { // woken for nothing: wait again
        d.polling = true;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_poll_add(sqe, fd, POLLIN);
        io_uring_sqe_set_data(sqe, &op);
        return nullptr;
      }
      fill(op, -err);
      return last_cqe(op);
    }
    const bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (res == -ENOBUFS && !more && !op.cancel_requested && pool_.grow() != 0) {
      // The ring ran dry and could grow: receive again, nothing was lost.
      io_uring_sqe* sqe = get_sqe();
      prep_lent(sqe, op);
      io_uring_sqe_set_data(sqe, &op);
      return nullptr;
    }
    if ((flags & IORING_CQE_F_BUFFER) != 0) {
      const auto id = static_cast<std::uint32_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      pool_.lent_by_kernel();
      const bool datagram = (op.flags & recv_datagram) != 0;
      if (res > 0 || (datagram && res == 0)) { // (0: an empty datagram, or the end)
        op.res = datagram ? lay_out_datagram(op, id, res) : res;
        op.error = {};
        op.lent_id = id;
        op.buffer = pool_.address(id);
      } else {
        pool_.give_back(id); // nothing in it
        fill(op, res);
      }
    } else if (res == 0 && (op.flags & recv_datagram) != 0 && !op.multishot) {
      // An empty datagram (single-shot recvmsg): no ring buffer was taken for it.
      std::byte* at = nullptr;
      std::uint32_t id = 0;
      if (!pool_.spare_block(id, at)) {
        fill(op, -ENOMEM);
      } else {
        std::memcpy(at + sizeof(datagram_header), op.address->bytes, datagram_name_room);
        sys::finish_datagram(at, datagram_payload_offset, data(op).msg.msg_namelen, 0, false);
        op.res = static_cast<std::int64_t>(datagram_payload_offset);
        op.error = {};
        op.lent_id = id;
        op.buffer = at;
      }
    } else {
      fill(op, res); // end of stream (0), an error, ENOBUFS past the cap
    }
    if (more) {
      op.more = true;
      return &op; // it stays pending
    }
    return last_cqe(op);
  }

  // A receive into the provided-buffer ring (op.multishot decides which): bytes of a
  // stream, or a datagram with its sender (recvmsg; see datagram_header).
  void prep_lent(io_uring_sqe* sqe, operation& op) noexcept {
    const int fd = static_cast<int>(op.handle);
    if ((op.flags & recv_datagram) != 0) {
      auto& d = data(op);
      d.msg = msghdr{};
      if (op.multishot) {
        // The kernel writes the header and the sender into the buffer itself.
        d.msg.msg_namelen = datagram_name_room;
        io_uring_prep_recvmsg_multishot(sqe, fd, &d.msg, MSG_TRUNC);
      } else {
        // No iovec: the buffer the kernel picks is the one; the sender goes to room
        // of the receiver's, and lay_out_datagram() moves both into place.
        d.msg.msg_name = op.address->bytes;
        d.msg.msg_namelen = datagram_name_room;
        io_uring_prep_recvmsg(sqe, fd, &d.msg, MSG_TRUNC);
      }
    } else if (op.multishot) {
      io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    } else {
      io_uring_prep_recv(sqe, fd, nullptr, static_cast<unsigned>(pool_.buffer_size()), 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffer_group;
  }

  // A datagram the kernel put in ring buffer `id` (`res` bytes in the CQE): brought to
  // the layout of datagram_header; returns the bytes it uses.
  std::int64_t lay_out_datagram(operation& op, std::uint32_t id, int res) noexcept {
    std::byte* buf = pool_.address(id);
    const std::size_t size = pool_.buffer_size();
    if (op.multishot) {
      // io_uring_recvmsg_out, the sender, the bytes: only the flags need translating.
      io_uring_recvmsg_out out;
      std::memcpy(&out, buf, sizeof out);
      sys::finish_datagram(buf, size, out.namelen, out.payloadlen, (out.flags & MSG_TRUNC) != 0);
      return res;
    }
    // Single-shot: the bytes are at the buffer's start and `res` is the whole size
    // (MSG_TRUNC); they move up behind the header (what does not fit is the cut part).
    const std::size_t whole = static_cast<std::size_t>(res);
    const std::size_t kept = std::min(whole, size - datagram_payload_offset);
    std::memmove(buf + datagram_payload_offset, buf, kept);
    const msghdr& h = data(op).msg;
    std::memcpy(buf + sizeof(datagram_header), op.address->bytes, datagram_name_room);
    sys::finish_datagram(buf, size, h.msg_namelen, whole, (h.msg_flags & MSG_TRUNC) != 0);
    return static_cast<std::int64_t>(datagram_payload_offset + kept);
  }

  // One CQE from the batch being dispatched.
  [[gnu::always_inline]] void dispatch(const reaped& c, bool budgeted) {
    if (c.user_data <= tag_last) return internal(c.user_data, c.res, true);
    operation* op = take_cqe(c.user_data, c.res, c.flags);
    if (op == nullptr) return; // its other CQE is still to come
    // A multishot's completion is delivered at once: the operation stays pending, so it
    // cannot wait in the ready list.
    if (!op->more && budgeted && !io_.consume_budget()) {
      io_.defer_completion(*op); // past the budget: next turn
      return;
    }
    io_.complete(*op); // resumes the waiting coroutine
  }

  void internal(std::uint64_t data, int res, bool may_run) noexcept {
    switch (data) {
    case tag_wake:
      wake_armed_ = false;
      if (may_run)
        io_.run_remote();
      else
        remote_pending_ = true;
      return;
    case tag_message: return; // it woke the loop; the turn takes the remote work
    case tag_message_sent:
      if (res < 0) {
        fmt::print(stderr, "sluice: io_uring MSG_RING to another loop failed: {}\n",
                   std::strerror(-res));
        std::fflush(stderr);
        std::abort(); // a loop would sleep on remote work: never silently
      }
      return;
    case tag_cancel:
    case tag_cancel_fd:
    case tag_cancel_any:
      // Nothing to cancel (-ENOENT) or already running (-EALREADY: it completes by
      // itself) are expected; anything else must not pass silently.
      if (res < 0 && res != -ENOENT && res != -EALREADY)
        fmt::print(stderr, "sluice: io_uring {} failed: {}\n",
                   data == tag_cancel_fd ? "cancel by descriptor" : "cancel", std::strerror(-res));
      return;
    default: return;
    }
  }

  static void fill(operation& op, int res) noexcept {
    if (res >= 0) {
      op.res = res;
      clear_error(op);
    } else if (op.code == op_code::timeout && res == -ETIME) {
      op.res = 0; // the timer expired: that is its success
      op.error = {};
    } else {
      op.res = 0;
      op.error = std::error_code(-res, std::system_category());
    }
  }

  // Dispatches what the CQ holds: at most the turn's budget when `budgeted` (the
  // rest is deferred to the next turn).
  //
  // Each CQE is read where it lies and consumed (the CQ head moved past it) before it
  // is dispatched: resuming a coroutine may abandon an operation, and the abandon
  // looks for its completions in the CQEs not yet consumed (marking them tag_none) or
  // reaps the CQ itself, moving the head on. So the head is read again after every
  // dispatch. The CQ is read directly (io_uring_peek_batch_cqe would first fill an
  // array of pointers, a call per batch); only when it looks empty is liburing's peek
  // asked, since it also flushes CQEs the kernel holds back in its overflow list.
  void drain(bool budgeted) {
    unsigned* const khead = ring_.cq.khead;
    const unsigned mask = ring_.cq.ring_mask;
    const io_uring_cqe* const cqes = ring_.cq.cqes; // (no IORING_SETUP_CQE32: 16 bytes)
    unsigned head = *khead;
    unsigned tail = io_uring_smp_load_acquire(ring_.cq.ktail);
    if (head == tail) {
      io_uring_cqe* first = nullptr;
      if (io_uring_peek_batch_cqe(&ring_, &first, 1) == 0) return;
      tail = io_uring_smp_load_acquire(ring_.cq.ktail);
    }
    for (;;) {
      while (head != tail) {
        const io_uring_cqe& c = cqes[head & mask];
        const reaped r{c.user_data, c.res, c.flags};
        io_uring_smp_store_release(khead, ++head);
        dispatch(r, budgeted);
        if (*khead != head) break; // an abandon reaped the CQ: read it again
      }
      head = *khead;
      tail = io_uring_smp_load_acquire(ring_.cq.ktail);
      if (head == tail) return;
    }
  }

  // The CQEs not yet consumed: an abandon takes its operation's from them.
  template <class Take> void take_unconsumed(std::uintptr_t me, Take&& take) noexcept {
    const unsigned mask = ring_.cq.ring_mask;
    const unsigned tail = io_uring_smp_load_acquire(ring_.cq.ktail);
    for (unsigned i = *ring_.cq.khead; i != tail; ++i) {
      io_uring_cqe& c = ring_.cq.cqes[i & mask];
      if (c.user_data > tag_last && (c.user_data & ~link_bit) == me) {
        take(c.user_data, c.res);
        c.user_data = tag_none; // dispatched as nothing
      }
    }
  }

  io_context& io_;
  io_uring ring_{};
  uring_pool pool_;
  features feat_;

  bool ring_ok_ = false;
  bool disabled_ = false;
  // Another loop may MSG_RING this ring (it is enabled); set once, by this loop.
  std::atomic<bool> accepts_messages_{false};
  std::thread::id issuer_;
  int wake_fd_ = -1;
  bool wake_armed_ = false;
  bool remote_pending_ = false;
  std::uint64_t wake_value_ = 0;
  std::vector<reaped> backlog_; // receivers' CQEs met while an abandon reaped the CQ
};

} // namespace

result<std::unique_ptr<backend>> make_uring_backend(io_context& io) {
  auto b = std::make_unique<uring_backend>(io);
  std::string why;
  if (auto ec = b->init(why))
    return error(make_error_code(errc::backend_unavailable),
                 why.empty() ? fmt::format("io_uring setup failed ({}), e.g. denied by seccomp or "
                                           "kernel.io_uring_disabled",
                                           ec.message())
                             : why);
  return std::unique_ptr<backend>(std::move(b));
}

} // namespace sluice::detail
