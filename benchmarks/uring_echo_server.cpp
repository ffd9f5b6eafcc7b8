// A hand-written liburing echo server: the practical limit sluice is measured against.
//
//   uring_echo_server --host 127.0.0.1 --port 0      (prints "listening on HOST:PORT")
//   uring_echo_server ... --zerocopy 16384            (sends of 16 KiB and up: SEND_ZC)
//   uring_echo_server ... --coro                      (a coroutine per connection)
//
// What a careful C programmer would write for echo on io_uring, and nothing more:
// SINGLE_ISSUER | DEFER_TASKRUN, one submit-and-wait per loop turn, CQEs reaped in
// batches, multishot accept, multishot recv into a provided buffer ring, and the
// received buffer sent back as it is (returned to the ring when its send completes).
// One send in flight per connection keeps the echo in order. No coroutines, no
// cancellation, no error reporting beyond closing the connection: not a framework.
//
// With --coro, the same ring and the same system calls, but each connection is a C++20
// coroutine that awaits a receive, awaits the send of what came, and gives the buffer
// back: the least a coroutine per connection costs on this interface (two suspensions
// and two resumptions per message), with nothing of a framework around it (no
// cancellation, deadlines, sender queue or half-close rules). It is the floor that the
// coroutine layers of sluice are compared with (docs/performance.md).
#include <liburing.h>

#include <arpa/inet.h>
#include <cerrno>
#include <coroutine>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

constexpr unsigned entries = 4096;
constexpr unsigned buf_count = 4096; // power of two
constexpr unsigned buf_size = 16384;
constexpr int group = 0;

enum kind : std::uint64_t { k_accept = 1, k_recv = 2, k_send = 3 };
std::uint64_t tag(kind k, int fd) { return (static_cast<std::uint64_t>(fd) << 8) | k; }

struct pending_send {
  unsigned bid;
  unsigned off;
  unsigned len;
};
struct connection {
  bool open = false;
  bool sending = false;
  std::deque<pending_send> queue; // received, not yet sent back
  int zc_res = 0;                 // a SEND_ZC's result, held until its notification
  // --coro: the coroutine waiting for a receive or for its send, the send's result,
  // and whether the receive has ended (end of stream or an error).
  std::coroutine_handle<> reader;
  std::coroutine_handle<> writer;
  int send_res = 0;
  bool recv_ended = false;
};

io_uring ring;
io_uring_buf_ring* br = nullptr;
unsigned char* bufs = nullptr;
std::vector<connection> conns;
int listener = -1;
volatile std::sig_atomic_t stopping = 0;
unsigned zc_min = 0; // --zerocopy N: sends of N bytes and up use IORING_OP_SEND_ZC
bool coro = false;   // --coro: a coroutine per connection

connection& conn(int fd) { return conns[static_cast<std::size_t>(fd)]; }

io_uring_sqe* sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  while (s == nullptr) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

void arm_accept() {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, tag(k_accept, listener));
}

void arm_recv(int fd) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = group;
  io_uring_sqe_set_data64(s, tag(k_recv, fd));
}

void give_back(unsigned bid) {
  io_uring_buf_ring_add(br, bufs + static_cast<std::size_t>(bid) * buf_size, buf_size,
                        static_cast<unsigned short>(bid), io_uring_buf_ring_mask(buf_count), 0);
  io_uring_buf_ring_advance(br, 1);
}

void send_next(int fd) {
  connection& c = conn(fd);
  if (c.sending || c.queue.empty()) return;
  const pending_send& p = c.queue.front();
  io_uring_sqe* s = sqe();
  unsigned char* from = bufs + static_cast<std::size_t>(p.bid) * buf_size + p.off;
  if (zc_min != 0 && p.len >= zc_min)
    io_uring_prep_send_zc(s, fd, from, p.len, MSG_NOSIGNAL, 0);
  else
    io_uring_prep_send(s, fd, from, p.len, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(k_send, fd));
  c.sending = true;
}

void close_conn(int fd) {
  connection& c = conn(fd);
  if (!c.open) return;
  c.open = false;
  for (const auto& p : c.queue)
    give_back(p.bid);
  c.queue.clear();
  ::close(fd); // a multishot recv still armed ends with its own CQE
}

// A receive's CQE, in both modes: its bytes queued on the connection (the buffer given
// back if the connection is closed). False when the receive has ended (end of stream or
// an error); a multishot that stopped for another reason (ENOBUFS, the end of a batch)
// is armed again.
bool received(int fd, int res, unsigned flags) {
  connection& c = conn(fd);
  if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
    const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    if (!c.open)
      give_back(bid);
    else
      c.queue.push_back({bid, 0, static_cast<unsigned>(res)});
  }
  if (res == 0 || (res < 0 && res != -ENOBUFS)) return false;
  if (!(flags & IORING_CQE_F_MORE) && c.open) arm_recv(fd);
  return true;
}

// --coro: a coroutine per connection. Its frame is allocated once, when the connection
// is accepted, and freed when the coroutine ends.
struct echo_task {
  struct promise_type {
    echo_task get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::abort(); }
  };
};

// The next received buffer ({bid, 0, len}), or len 0 once the receive has ended.
struct next_receive {
  int fd;
  bool await_ready() const noexcept { return !conn(fd).queue.empty() || conn(fd).recv_ended; }
  void await_suspend(std::coroutine_handle<> h) noexcept { conn(fd).reader = h; }
  pending_send await_resume() noexcept {
    connection& c = conn(fd);
    if (c.queue.empty()) return {0, 0, 0};
    const pending_send p = c.queue.front();
    c.queue.pop_front();
    return p;
  }
};

// One send of `len` bytes of buffer `bid` from `off`; its result.
struct send_some {
  int fd;
  pending_send what;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept {
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, fd, bufs + static_cast<std::size_t>(what.bid) * buf_size + what.off,
                       what.len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, tag(k_send, fd));
    conn(fd).writer = h;
  }
  int await_resume() const noexcept { return conn(fd).send_res; }
};

echo_task echo_connection(int fd) {
  for (;;) {
    pending_send in = co_await next_receive{fd};
    if (in.len == 0) break;
    while (in.len != 0) {
      const int n = co_await send_some{fd, in};
      if (n <= 0) {
        give_back(in.bid);
        close_conn(fd);
        co_return;
      }
      in.off += static_cast<unsigned>(n);
      in.len -= static_cast<unsigned>(n);
    }
    give_back(in.bid);
  }
  close_conn(fd);
}

// --coro's completions: they resume the connection's coroutine.
void on_coro_cqe(kind k, int fd, int res, unsigned flags) {
  connection& c = conn(fd);
  if (k == k_recv) {
    if (!received(fd, res, flags)) c.recv_ended = true;
    if (c.reader) std::exchange(c.reader, nullptr).resume();
    return;
  }
  c.send_res = res; // k_send
  std::exchange(c.writer, nullptr).resume();
}

void on_cqe(std::uint64_t data, int res, unsigned flags) {
  const auto k = static_cast<kind>(data & 0xff);
  const int fd = static_cast<int>(data >> 8);
  if (coro && k != k_accept) return on_coro_cqe(k, fd, res, flags);
  switch (k) {
  case k_accept:
    if (res >= 0) {
      if (static_cast<std::size_t>(res) >= conns.size())
        conns.resize(static_cast<std::size_t>(res) + 1024);
      int one = 1;
      setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      conns[static_cast<std::size_t>(res)] = connection{};
      conns[static_cast<std::size_t>(res)].open = true;
      arm_recv(res);
      if (coro) echo_connection(res);
    }
    if (!(flags & IORING_CQE_F_MORE) && !stopping) arm_accept();
    return;
  case k_recv:
    if (received(fd, res, flags))
      send_next(fd); // (nothing to send on a closed connection: its queue is empty)
    else
      close_conn(fd);
    return;
  case k_send: {
    connection& c = conn(fd);
    // SEND_ZC: the result says a notification follows (F_MORE); the buffer is free, and
    // the send done, only when it comes.
    if ((flags & IORING_CQE_F_MORE) != 0) {
      c.zc_res = res;
      return;
    }
    if ((flags & IORING_CQE_F_NOTIF) != 0) res = c.zc_res;
    c.sending = false;
    if (!c.open) return;
    if (res <= 0) {
      close_conn(fd);
      return;
    }
    pending_send& p = c.queue.front();
    p.off += static_cast<unsigned>(res);
    p.len -= static_cast<unsigned>(res);
    if (p.len == 0) {
      give_back(p.bid);
      c.queue.pop_front();
    }
    send_next(fd);
    return;
  }
  }
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--coro") == 0) {
      coro = true;
    } else if (has_value && std::strcmp(argv[i], "--host") == 0) {
      host = argv[++i];
    } else if (has_value && std::strcmp(argv[i], "--port") == 0) {
      port = std::atoi(argv[++i]);
    } else if (has_value && std::strcmp(argv[i], "--zerocopy") == 0) {
      zc_min = static_cast<unsigned>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "uring_echo_server: unknown or incomplete option %s\n", argv[i]);
      return 2;
    }
  }
  if (coro && zc_min != 0) {
    std::fprintf(stderr, "uring_echo_server: --coro sends with plain sends (drop --zerocopy)\n");
    return 2;
  }
  // Without SA_RESTART, so that a blocked io_uring_enter returns EINTR and the loop ends
  // (valgrind then writes its counts).
  struct sigaction sa {};
  sa.sa_handler = [](int) { stopping = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = entries * 4;
  if (int r = io_uring_queue_init_params(entries, &ring, &p); r < 0) {
    std::fprintf(stderr, "io_uring_queue_init_params: %s\n", std::strerror(-r));
    return 1;
  }
  // The provided buffer ring (liburing 2.3 has no io_uring_setup_buf_ring).
  const std::size_t ring_bytes = buf_count * sizeof(io_uring_buf);
  br = static_cast<io_uring_buf_ring*>(
      mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0));
  bufs = static_cast<unsigned char*>(std::malloc(static_cast<std::size_t>(buf_count) * buf_size));
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br);
  reg.ring_entries = buf_count;
  reg.bgid = group;
  if (int r = io_uring_register_buf_ring(&ring, &reg, 0); r < 0) {
    std::fprintf(stderr, "io_uring_register_buf_ring: %s\n", std::strerror(-r));
    return 1;
  }
  io_uring_buf_ring_init(br);
  for (unsigned i = 0; i < buf_count; ++i)
    io_uring_buf_ring_add(br, bufs + static_cast<std::size_t>(i) * buf_size, buf_size,
                          static_cast<unsigned short>(i), io_uring_buf_ring_mask(buf_count),
                          static_cast<int>(i));
  io_uring_buf_ring_advance(br, static_cast<int>(buf_count));

  listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      listen(listener, 1024) < 0) {
    std::perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("listening on %s:%d\n", host.c_str(), ntohs(addr.sin_port));
  std::fflush(stdout);
  conns.resize(4096);
  arm_accept();

  io_uring_cqe* cqes[256];
  while (!stopping) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) break;
    const unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 256);
    for (unsigned i = 0; i < n; ++i)
      on_cqe(cqes[i]->user_data, cqes[i]->res, cqes[i]->flags);
    io_uring_cq_advance(&ring, n);
  }
  io_uring_queue_exit(&ring);
  return 0;
}
