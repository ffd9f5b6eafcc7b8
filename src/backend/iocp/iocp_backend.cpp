// The IOCP backend (Windows; tested under Wine): one completion port per io_context.
//
// - AcceptEx / ConnectEx (loaded through WSAIoctl), WSARecv / WSASend with an
//   OVERLAPPED kept in the operation's scratch area, GetQueuedCompletionStatusEx in
//   batches, CancelIoEx for cancellation, PostQueuedCompletionStatus for wake.
// - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS where the socket accepts it: an operation that
//   finishes at once queues no packet, so its completion is deferred to the loop's
//   next turn (never inline in submit()).
// - abandon(op) takes op's packet from the batch being dispatched if it is there;
//   otherwise it cancels op's OVERLAPPED with CancelIoEx and waits for its packet (the
//   kernel writes the OVERLAPPED and the buffer until then); other packets seen
//   meanwhile become deferred completions.
// - Timers are a min-heap in a vector; poll() waits at most until the first deadline.
//   Operation deadlines are a second heap (deadline_heap.hpp): when one expires, the
//   operation is marked timed_out and cancelled (CancelIoEx).
//   Nothing here allocates per operation in steady state.
// - recv_disconnect is WSARecvDisconnect; pending receives on that socket are cancelled
//   by the backend, because Wine never completes them (docs/architecture.md); the lifecycle then
//   reports them as shut_down.
// - Console control events (Ctrl-C, close) and the C runtime's signals (raise()) are
//   delivered as SIGINT / SIGTERM / SIGBREAK to the signal_sets that asked for them,
//   each set through its own io_context's port.
#include "../backend.hpp"
#include "../recv_pool.hpp"
#include "../socket_ops.hpp"
#include <sluice/detail/deadline_heap.hpp>

// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <afunix.h>
// clang-format on

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <sluice/io_context.hpp>
#include <vector>

namespace sluice::detail {
namespace {

constexpr ULONG_PTR io_key = 0, wake_key = 1, signal_key = 2;
constexpr DWORD operation_aborted = ERROR_OPERATION_ABORTED; // 995
constexpr int address_room = sizeof(sockaddr_in6) + 16;      // per AcceptEx address
constexpr int local_address_room = sizeof(sockaddr_un) + 16; // the same for AF_UNIX
static_assert(2 * local_address_room <= sizeof(address_storage::bytes));

// The family of socket `s` (AF_UNIX listeners accept AF_UNIX sockets, with bigger addresses).
int family_of(SOCKET s) noexcept {
  sockaddr_storage local{};
  int len = sizeof local;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&local), &len);
  return local.ss_family;
}

// What the backend keeps in operation::scratch.
struct slot {
  OVERLAPPED ov; // first: a completion's OVERLAPPED* is the slot
  operation* op;
  WSABUF buf;
  SOCKET accepted;
  DWORD flags;
  std::uint32_t lent; // recv_lent: the pooled buffer of the real read
  std::uint8_t stage; // recv_lent: 0 = the zero-byte wait, 1 = the real read
  bool local;         // accept: an AF_UNIX listener (bigger AcceptEx addresses)
};
static_assert(sizeof(slot) <= sizeof(operation::scratch), "operation::scratch too small");
static_assert(alignof(slot) <= 8);

slot& slot_of(operation& op) { return *reinterpret_cast<slot*>(op.scratch); }
SOCKET sock_of(const operation& op) { return static_cast<SOCKET>(op.handle); }

// Signal sets, by id: which port and which signals. Console control events and the C
// runtime's signal handlers post one packet per set that asked for the signal.
struct signal_subscriber {
  std::uintptr_t id;
  HANDLE port;
  std::vector<int> signals;
};
std::mutex signals_mutex;
std::vector<signal_subscriber> signal_sets;
bool console_handler_installed = false;

void forward_signal(int sig) {
  std::lock_guard lock(signals_mutex);
  for (const auto& s : signal_sets)
    if (std::find(s.signals.begin(), s.signals.end(), sig) != s.signals.end())
      PostQueuedCompletionStatus(s.port, static_cast<DWORD>(sig), signal_key,
                                 reinterpret_cast<LPOVERLAPPED>(s.id));
}

BOOL WINAPI on_console_event(DWORD type) {
  forward_signal(type == CTRL_C_EVENT ? SIGINT : type == CTRL_BREAK_EVENT ? SIGBREAK : SIGTERM);
  return TRUE;
}

extern "C" void on_crt_signal(int sig) {
  std::signal(sig, on_crt_signal); // the C runtime resets the handler on each signal
  forward_signal(sig);
}

// NTSTATUS of a failed completion → Winsock error, for when the socket is already gone.
DWORD from_ntstatus(ULONG_PTR status) {
  switch (static_cast<DWORD>(status)) {
  case 0xC0000120: return operation_aborted; // STATUS_CANCELLED
  case 0xC000020D: return WSAECONNRESET;     // STATUS_CONNECTION_RESET
  case 0xC000013C: return WSAECONNRESET;     // STATUS_REMOTE_DISCONNECT
  case 0xC000013B: return WSAECONNABORTED;   // STATUS_LOCAL_DISCONNECT
  case 0xC0000236: return WSAECONNREFUSED;   // STATUS_CONNECTION_REFUSED
  case 0xC00000B5: return WSAETIMEDOUT;      // STATUS_IO_TIMEOUT
  case 0xC000023C: return WSAENETUNREACH;    // STATUS_NETWORK_UNREACHABLE
  case 0xC000023D: return WSAEHOSTUNREACH;   // STATUS_HOST_UNREACHABLE
  default: return WSAECONNABORTED;
  }
}

class iocp_backend final : public backend {
public:
  explicit iocp_backend(io_context& io) : io_(io), pool_(io) { pool_.start(); }

  std::error_code init() {
    WSADATA d;
    if (int e = WSAStartup(MAKEWORD(2, 2), &d); e != 0) return {e, std::system_category()};
    started_ = true;
    port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port_ == nullptr) return {static_cast<int>(GetLastError()), std::system_category()};
    return {};
  }

  ~iocp_backend() override {
    if (port_ != nullptr) CloseHandle(port_);
    if (started_) WSACleanup();
  }

  std::string_view name() const noexcept override { return "iocp"; }

  void submit(operation& op) override {
    if (op.deadline != 0) deadlines_.insert(op);
    switch (op.code) {
    case op_code::none: return; // never here: io_context::submit refuses it
    case op_code::timeout: {
      timers_.push_back({clock::now() + std::chrono::nanoseconds(op.duration_ns), &op});
      std::push_heap(timers_.begin(), timers_.end(), later);
      return;
    }
    case op_code::read: { // a signal_set wait: op.handle is the set's id
      auto it = std::find_if(pending_signals_.begin(), pending_signals_.end(),
                             [&](const queued_signal& q) { return q.set == op.handle; });
      if (it != pending_signals_.end()) {
        *static_cast<unsigned char*>(op.buffer) = static_cast<unsigned char>(it->sig);
        pending_signals_.erase(it);
        return done_now(op, 0, 1);
      }
      signal_waiters_.push_back(&op);
      return;
    }
    case op_code::shutdown: {
      const SOCKET s = sock_of(op);
      int r = 0;
      if (op.flags == shutdown_receive) {
        r = WSARecvDisconnect(s, nullptr);
        if (r == 0) cancel_receives(s); // Wine would leave them pending forever
      } else if (op.flags == shutdown_send) {
        r = WSASendDisconnect(s, nullptr);
      } else {
        r = ::shutdown(s, SD_BOTH);
      }
      return done_now(op, r == 0 ? 0 : static_cast<DWORD>(WSAGetLastError()), 0);
    }
    case op_code::recv:
    case op_code::recv_lent:
    case op_code::send:
    case op_code::sendmsg:
    case op_code::accept:
    case op_code::connect: start_io(op); return;
    case op_code::send_message:
    case op_code::recv_message:
      // Datagrams (WSASendTo / WSARecvFrom); no SCM_RIGHTS on Windows (the sockets
      // layer refuses descriptor passing before it gets here).
      if (static_cast<const message*>(op.buffer)->control != nullptr)
        return done_now(op, WSAEOPNOTSUPP, 0);
      start_io(op);
      return;
    }
  }

  abandoned_at abandon(operation& op) noexcept override {
    deadlines_.remove(op);
    if (op.code == op_code::timeout) {
      remove_timer(op);
      return abandoned_at::in_flight;
    }
    if (op.code == op_code::read) {
      auto it = std::find(signal_waiters_.begin(), signal_waiters_.end(), &op);
      if (it != signal_waiters_.end()) signal_waiters_.erase(it);
      return abandoned_at::in_flight;
    }
    slot& sl = slot_of(op);
    auto outcome = [&op] {
      return op.error ==
                     std::error_code(static_cast<int>(operation_aborted), std::system_category())
                 ? abandoned_at::in_flight
                 : abandoned_at::completed;
    };
    // Its packet may have been dequeued with the batch poll() is dispatching (an
    // earlier packet of that batch resumed the coroutine that destroys op): it is
    // taken from there, and the batch skips it. Waiting on the port for it would wait
    // forever, and dispatching it afterwards would reach a destroyed frame.
    for (ULONG i = batch_next_; i < batch_size_; ++i) {
      OVERLAPPED_ENTRY& e = batch_[i];
      if (e.lpCompletionKey == io_key && e.lpOverlapped == &sl.ov) {
        finish_io(op, packet_error(e), e.dwNumberOfBytesTransferred);
        e.lpOverlapped = nullptr; // dispatched as nothing
        return outcome();
      }
    }
    // The kernel owns the OVERLAPPED and the buffer until op's packet arrives: cancel
    // it and wait for that packet; other packets become deferred completions.
    CancelIoEx(reinterpret_cast<HANDLE>(sock_of(op)), &sl.ov);
    for (;;) {
      OVERLAPPED_ENTRY entries[64];
      ULONG n = 0;
      if (!GetQueuedCompletionStatusEx(port_, entries, 64, &n, INFINITE, FALSE)) continue;
      bool found = false;
      for (ULONG i = 0; i < n; ++i) {
        if (entries[i].lpCompletionKey == io_key && entries[i].lpOverlapped == &sl.ov) {
          found = true;
          // Its result stays in op for the awaiter (bytes received, an accepted socket).
          finish_io(op, packet_error(entries[i]), entries[i].dwNumberOfBytesTransferred);
          continue;
        }
        dispatch(entries[i], true);
      }
      if (found) return outcome();
    }
  }

  void cancel(operation& op) noexcept override {
    if (op.code == op_code::timeout) {
      if (remove_timer(op)) done_now(op, operation_aborted, 0);
      return;
    }
    if (op.code == op_code::read) {
      auto it = std::find(signal_waiters_.begin(), signal_waiters_.end(), &op);
      if (it != signal_waiters_.end()) {
        signal_waiters_.erase(it);
        done_now(op, operation_aborted, 0);
      }
      return;
    }
    if (op.state == op_state::pending) // CancelIoEx finds nothing if it just finished
      CancelIoEx(reinterpret_cast<HANDLE>(sock_of(op)), &slot_of(op).ov);
  }

  void cancel_all(native_handle h) noexcept override {
    const SOCKET s = static_cast<SOCKET>(h);
    CancelIoEx(reinterpret_cast<HANDLE>(s), nullptr); // every operation on the socket
    // The handle value may be reused by the next socket: forget its association.
    associated_.erase(s);
  }

  // For each pending I/O operation (an OVERLAPPED outstanding).
  template <class F> void for_each_pending_io(F&& f) {
    for (operation* op = io_.first_in_flight(); op != nullptr;) {
      operation* next = op->inflight_next;
      const bool io = op->code != op_code::timeout && op->code != op_code::read &&
                      op->code != op_code::shutdown;
      if (io && op->state == op_state::pending) f(*op);
      op = next;
    }
  }

  recv_pool& buffers() noexcept override { return pool_; }

  void poll(bool block, std::int64_t wake_by) override {
    if (remote_pending_) { // a wake seen while an abandon waited for its packet
      remote_pending_ = false;
      io_.run_remote();
      block = false;
    }
    const bool expired = expire_timers() | expire_deadlines();
    DWORD timeout = 0;
    if (block && !expired) {
      timeout = INFINITE;
      auto wait_until = [&](clock::time_point t) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - clock::now());
        const auto ms =
            static_cast<DWORD>(std::clamp<long long>(left.count(), 0, 24 * 3600 * 1000));
        timeout = std::min(timeout, ms);
      };
      if (!timers_.empty()) wait_until(timers_.front().when);
      if (!deadlines_.empty())
        wait_until(clock::time_point(std::chrono::nanoseconds(deadlines_.earliest())));
      if (wake_by != 0) wait_until(clock::time_point(std::chrono::nanoseconds(wake_by)));
    }
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(port_, batch_, batch_capacity, &n, timeout, FALSE)) n = 0;
    // (A dispatch may abandon an operation whose packet is later in the batch: see
    // abandon(). Hence the batch is a member, and each entry is copied before it runs.)
    batch_size_ = n;
    for (batch_next_ = 0; batch_next_ < batch_size_;) {
      const OVERLAPPED_ENTRY e = batch_[batch_next_++];
      dispatch(e, !io_.consume_budget()); // past the budget: next turn
    }
    batch_size_ = batch_next_ = 0;
    expire_timers();
    expire_deadlines();
  }

  void wake() noexcept override { PostQueuedCompletionStatus(port_, 0, wake_key, nullptr); }

  void shutdown() noexcept override {
    deadlines_.clear();
    for_each_pending_io(
        [](operation& op) { CancelIoEx(reinterpret_cast<HANDLE>(sock_of(op)), &slot_of(op).ov); });
    for (auto& t : timers_)
      settle(*t.op, operation_aborted, 0);
    timers_.clear();
    for (operation* op : signal_waiters_)
      settle(*op, operation_aborted, 0);
    signal_waiters_.clear();
    // Every pending OVERLAPPED was cancelled: reap their packets (bounded).
    for (int i = 0; i < 500 && io_.in_flight() != 0; ++i) {
      OVERLAPPED_ENTRY entries[64];
      ULONG n = 0;
      if (!GetQueuedCompletionStatusEx(port_, entries, 64, &n, 10, FALSE)) n = 0;
      for (ULONG k = 0; k < n; ++k)
        if (entries[k].lpCompletionKey == io_key && entries[k].lpOverlapped != nullptr)
          dispatch(entries[k], false); // shutting down: settled, not resumed
    }
  }

private:
  using clock = std::chrono::steady_clock;

  struct timer {
    clock::time_point when;
    operation* op;
  };
  static bool later(const timer& a, const timer& b) { return a.when > b.when; } // min-heap

  // The sockets associated with the port, and whether immediate successes skip it:
  // open addressing over a power-of-two table, so that once it has grown, a new
  // connection allocates nothing.
  class socket_table {
  public:
    // 0: not there; 1: there, completions always queued; 2: there, skip on success.
    int find(SOCKET s) const noexcept {
      if (slots_.empty()) return 0;
      for (std::size_t i = hash(s);; i = (i + 1) & mask()) {
        const entry& e = slots_[i];
        if (e.state == empty) return 0;
        if (e.state == used && e.s == s) return e.skip ? 2 : 1;
      }
    }
    void insert(SOCKET s, bool skip) {
      if ((used_ + deleted_ + 1) * 2 > slots_.size()) rehash();
      for (std::size_t i = hash(s);; i = (i + 1) & mask()) {
        entry& e = slots_[i];
        if (e.state != used) {
          if (e.state == deleted) --deleted_;
          e = {s, used, skip};
          ++used_;
          return;
        }
      }
    }
    void erase(SOCKET s) noexcept {
      if (slots_.empty()) return;
      for (std::size_t i = hash(s);; i = (i + 1) & mask()) {
        entry& e = slots_[i];
        if (e.state == empty) return;
        if (e.state == used && e.s == s) {
          e.state = deleted;
          --used_;
          ++deleted_;
          return;
        }
      }
    }

  private:
    enum : std::uint8_t { empty, used, deleted };
    struct entry {
      SOCKET s;
      std::uint8_t state;
      bool skip;
    };
    std::size_t mask() const noexcept { return slots_.size() - 1; }
    std::size_t hash(SOCKET s) const noexcept {
      return static_cast<std::size_t>(
                 (static_cast<std::uint64_t>(s) >> 2) * 0x9E3779B97F4A7C15ull >> 17) &
             mask();
    }
    void rehash() {
      std::vector<entry> old;
      old.swap(slots_);
      // Grow only when live entries need it; otherwise just drop the tombstones.
      const std::size_t n =
          std::max<std::size_t>(64, (used_ + 1) * 4 > old.size() ? old.size() * 2 : old.size());
      slots_.assign(n, entry{0, empty, false});
      used_ = deleted_ = 0;
      for (const entry& e : old)
        if (e.state == used) insert(e.s, e.skip);
    }
    std::vector<entry> slots_;
    std::size_t used_ = 0, deleted_ = 0;
  };

  // A completion delivered on the loop's next turn (never inline in submit()).
  void done_now(operation& op, DWORD error, std::int64_t res) {
    deadlines_.remove(op);
    fill(op, error, res);
    io_.defer_completion(op);
  }

  // A completion delivered now.
  void settle(operation& op, DWORD error, std::int64_t res) {
    deadlines_.remove(op);
    fill(op, error, res);
    io_.complete(op);
  }

  // Operations past their deadline: marked timed_out and cancelled.
  bool expire_deadlines() {
    if (deadlines_.empty()) return false;
    bool any = false;
    const std::int64_t now = steady_now_ns();
    while (operation* op = deadlines_.pop_expired(now)) {
      op->timed_out = true;
      op->cancel_requested = true;
      cancel(*op);
      any = true;
    }
    return any;
  }

  static void fill(operation& op, DWORD error, std::int64_t res) {
    op.res = error == 0 ? res : 0;
    op.error = error == 0 ? std::error_code()
                          : std::error_code(static_cast<int>(error), std::system_category());
  }

  bool remove_timer(operation& op) {
    auto it =
        std::find_if(timers_.begin(), timers_.end(), [&](const timer& t) { return t.op == &op; });
    if (it == timers_.end()) return false;
    timers_.erase(it);
    std::make_heap(timers_.begin(), timers_.end(), later);
    return true;
  }

  bool expire_timers() {
    bool any = false;
    const auto now = clock::now();
    while (!timers_.empty() && timers_.front().when <= now) {
      std::pop_heap(timers_.begin(), timers_.end(), later);
      operation* op = timers_.back().op;
      timers_.pop_back();
      if (io_.consume_budget())
        settle(*op, 0, 0);
      else
        done_now(*op, 0, 0);
      any = true;
    }
    return any;
  }

  // The receives pending on a socket (rare: recv_disconnect), found among the
  // operations in flight.
  void cancel_receives(SOCKET s) {
    for_each_pending_io([&](operation& op) {
      if ((op.code == op_code::recv || op.code == op_code::recv_lent) && sock_of(op) == s)
        CancelIoEx(reinterpret_cast<HANDLE>(s), &slot_of(op).ov);
    });
  }

  // Associates a socket with the port once; returns whether immediate successes skip
  // the port (then they are completed here).
  bool associate(SOCKET s) {
    if (const int known = associated_.find(s); known != 0) return known == 2;
    CreateIoCompletionPort(reinterpret_cast<HANDLE>(s), port_, io_key, 0);
    const bool skip = SetFileCompletionNotificationModes(reinterpret_cast<HANDLE>(s),
                                                         FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                                             FILE_SKIP_SET_EVENT_ON_HANDLE) != 0;
    associated_.insert(s, skip);
    return skip;
  }

  void load_extensions(SOCKET s) {
    if (accept_ex_ != nullptr) return;
    DWORD bytes = 0;
    GUID accept_guid = WSAID_ACCEPTEX, connect_guid = WSAID_CONNECTEX,
         addrs_guid = WSAID_GETACCEPTEXSOCKADDRS;
    WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &accept_guid, sizeof accept_guid, &accept_ex_,
             sizeof accept_ex_, &bytes, nullptr, nullptr);
    WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &connect_guid, sizeof connect_guid,
             &connect_ex_, sizeof connect_ex_, &bytes, nullptr, nullptr);
    WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &addrs_guid, sizeof addrs_guid, &get_addrs_,
             sizeof get_addrs_, &bytes, nullptr, nullptr);
  }

  // `read_now`: recv_lent's second step, the read into a pooled buffer.
  void start_io(operation& op, bool read_now = false) {
    const SOCKET s = sock_of(op);
    const bool skip = associate(s);
    load_extensions(s);
    slot& sl = slot_of(op);
    std::memset(&sl, 0, sizeof sl);
    sl.op = &op;
    sl.accepted = INVALID_SOCKET;
    DWORD bytes = 0;
    BOOL ok = FALSE;
    // recv_lent's pooled buffer; false (op completed with ENOBUFS) when none is left.
    auto take_lent = [&] {
      if (pool_.take(sl.lent)) {
        sl.stage = 1;
        return true;
      }
      op.res = 0;
      op.error = std::make_error_code(std::errc::no_buffer_space);
      io_.defer_completion(op);
      return false;
    };
    switch (op.code) {
    case op_code::recv_lent:
      if ((op.flags & recv_datagram) != 0) {
        // A datagram: a zero-byte receive would consume it, so the pooled buffer is
        // taken now and held while the receive waits (see docs/udp.md).
        if (!take_lent()) return;
        std::byte* base = pool_.address(sl.lent);
        datagram_header h{};
        h.name_length = datagram_name_room; // WSARecvFrom writes the sender's length here
        std::memcpy(base, &h, sizeof h);
        sl.buf.buf = reinterpret_cast<char*>(base + datagram_payload_offset);
        sl.buf.len = static_cast<ULONG>(pool_.buffer_size() - datagram_payload_offset);
        ok = WSARecvFrom(s, &sl.buf, 1, &bytes, &sl.flags,
                         reinterpret_cast<sockaddr*>(base + sizeof(datagram_header)),
                         reinterpret_cast<INT*>(base + offsetof(datagram_header, name_length)),
                         &sl.ov, nullptr) == 0;
        break;
      }
      if (!read_now) {
        // Idle: a zero-byte receive completes when data (or the FIN) is there, and
        // holds no buffer meanwhile.
        sl.buf.buf = nullptr;
        sl.buf.len = 0;
      } else {
        if (!take_lent()) return;
        sl.buf.buf = reinterpret_cast<char*>(pool_.address(sl.lent));
        sl.buf.len = static_cast<ULONG>(pool_.buffer_size());
      }
      ok = WSARecv(s, &sl.buf, 1, &bytes, &sl.flags, &sl.ov, nullptr) == 0;
      break;
    case op_code::recv:
      sl.buf.buf = static_cast<char*>(op.buffer);
      sl.buf.len = static_cast<ULONG>(std::min<std::size_t>(op.length, 1u << 30));
      ok = WSARecv(s, &sl.buf, 1, &bytes, &sl.flags, &sl.ov, nullptr) == 0;
      break;
    case op_code::send:
      sl.buf.buf = static_cast<char*>(op.buffer);
      sl.buf.len = static_cast<ULONG>(std::min<std::size_t>(op.length, 1u << 30));
      ok = WSASend(s, &sl.buf, 1, &bytes, 0, &sl.ov, nullptr) == 0;
      break;
    case op_code::sendmsg: {
      // Winsock captures the WSABUF array before WSASend returns: a local one will do.
      WSABUF bufs[max_gather];
      const auto* in = static_cast<const io_buffer*>(op.buffer);
      const DWORD n = static_cast<DWORD>(std::min<std::size_t>(op.length, max_gather));
      for (DWORD i = 0; i < n; ++i) {
        bufs[i].buf = static_cast<char*>(in[i].data);
        bufs[i].len = static_cast<ULONG>(std::min<std::size_t>(in[i].size, 1u << 30));
      }
      ok = WSASend(s, bufs, n, &bytes, 0, &sl.ov, nullptr) == 0;
      break;
    }
    case op_code::send_message:
    case op_code::recv_message: {
      auto& m = *static_cast<message*>(op.buffer);
      const DWORD n = static_cast<DWORD>(std::min<std::size_t>(m.count, max_gather));
      WSABUF bufs[max_gather];
      for (DWORD i = 0; i < n; ++i) {
        bufs[i].buf = static_cast<char*>(m.parts[i].data);
        bufs[i].len = static_cast<ULONG>(std::min<std::size_t>(m.parts[i].size, 1u << 30));
      }
      if (op.code == op_code::send_message) {
        ok = WSASendTo(
                 s, bufs, n, &bytes, 0,
                 m.peer != nullptr ? reinterpret_cast<const sockaddr*>(m.peer->bytes) : nullptr,
                 m.peer != nullptr ? static_cast<int>(m.peer->length) : 0, &sl.ov, nullptr) == 0;
      } else {
        // The sender's address length is written at completion: it lives in the peer's
        // own storage, which outlives the operation.
        if (m.peer != nullptr) m.peer->length = sizeof(m.peer->bytes);
        ok = WSARecvFrom(s, bufs, n, &bytes, &sl.flags,
                         m.peer != nullptr ? reinterpret_cast<sockaddr*>(m.peer->bytes) : nullptr,
                         m.peer != nullptr ? reinterpret_cast<INT*>(&m.peer->length) : nullptr,
                         &sl.ov, nullptr) == 0;
      }
      break;
    }
    case op_code::accept: {
      const int family = family_of(s);
      sl.local = family == AF_UNIX;
      const DWORD room = sl.local ? local_address_room : address_room;
      sl.accepted = WSASocketW(family, SOCK_STREAM, family == AF_UNIX ? 0 : IPPROTO_TCP, nullptr, 0,
                               WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
      if (sl.accepted == INVALID_SOCKET)
        return done_now(op, static_cast<DWORD>(WSAGetLastError()), 0);
      ok = accept_ex_(s, sl.accepted, op.address->bytes, 0, room, room, &bytes, &sl.ov);
      break;
    }
    case op_code::connect: {
      if (reinterpret_cast<const sockaddr*>(op.address->bytes)->sa_family == AF_UNIX) {
        // No ConnectEx for AF_UNIX: a local connect completes (or fails) at once, with
        // the socket switched to non-blocking for the call.
        u_long nb = 1;
        ::ioctlsocket(s, FIONBIO, &nb);
        const int r = ::connect(s, reinterpret_cast<const sockaddr*>(op.address->bytes),
                                static_cast<int>(op.address->length));
        const DWORD err = r == 0 ? 0 : static_cast<DWORD>(WSAGetLastError());
        nb = 0;
        ::ioctlsocket(s, FIONBIO, &nb);
        return done_now(op, err, 0);
      }
      // ConnectEx needs a bound socket.
      sockaddr_storage any{};
      any.ss_family = reinterpret_cast<const sockaddr*>(op.address->bytes)->sa_family;
      const int any_len = any.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      ::bind(s, reinterpret_cast<const sockaddr*>(&any), any_len); // WSAEINVAL if already bound
      ok = connect_ex_(s, reinterpret_cast<const sockaddr*>(op.address->bytes),
                       static_cast<int>(op.address->length), nullptr, 0, nullptr, &sl.ov);
      break;
    }
    default: break;
    }
    if (ok) {
      if (skip) return complete_io(op, 0, bytes, true); // no packet will come
      return;
    }
    const DWORD err = static_cast<DWORD>(WSAGetLastError());
    if (err == WSA_IO_PENDING) return;
    if (err == WSAEMSGSIZE && op.code == op_code::recv_lent) // a datagram cut, known at once
      return complete_io(op, err, sl.buf.len, true);
    if (err == WSAEMSGSIZE && op.code == op_code::recv_message) {
      // A datagram too big for the buffer, known at once: the buffer is full of its start.
      auto& m = *static_cast<message*>(op.buffer);
      std::size_t room = 0;
      for (std::size_t i = 0; i < m.count; ++i)
        room += m.parts[i].size;
      m.truncated = true;
      m.control_length = 0;
      return done_now(op, 0, static_cast<std::int64_t>(room));
    }
    if (sl.accepted != INVALID_SOCKET) closesocket(sl.accepted);
    if (op.code == op_code::recv_lent && sl.stage == 1) pool_.give_back(sl.lent);
    done_now(op, err, 0);
  }

  // One packet. `defer`: deliver the completion on the next turn instead of now (past
  // the budget, or while an abandon waits and must resume nobody).
  void dispatch(const OVERLAPPED_ENTRY& e, bool defer) {
    if (e.lpCompletionKey == wake_key) {
      if (defer)
        remote_pending_ = true;
      else
        io_.run_remote();
      return;
    }
    if (e.lpCompletionKey == signal_key)
      return deliver_signal(reinterpret_cast<std::uintptr_t>(e.lpOverlapped),
                            static_cast<int>(e.dwNumberOfBytesTransferred));
    if (e.lpOverlapped == nullptr) return;
    slot& sl = *reinterpret_cast<slot*>(e.lpOverlapped);
    operation& op = *sl.op;
    complete_io(op, packet_error(e), e.dwNumberOfBytesTransferred, defer);
  }

  // The Winsock error a packet reports (0 for success).
  static DWORD packet_error(const OVERLAPPED_ENTRY& e) {
    if (e.lpOverlapped->Internal == 0) return 0;
    const slot& sl = *reinterpret_cast<const slot*>(e.lpOverlapped);
    DWORD err = 0, bytes = 0, flags = 0;
    if (!WSAGetOverlappedResult(sock_of(*sl.op), e.lpOverlapped, &bytes, FALSE, &flags))
      err = static_cast<DWORD>(WSAGetLastError());
    if (err == 0 || err == WSAENOTSOCK || err == WSA_INVALID_HANDLE)
      err = from_ntstatus(e.lpOverlapped->Internal);
    return err;
  }

  // Finishes an I/O operation (at once or from its packet) and delivers it.
  void complete_io(operation& op, DWORD err, DWORD bytes, bool defer) {
    if (op.code == op_code::recv_lent && slot_of(op).stage == 0 && err == 0)
      return start_io(op, true); // data is there: now the read, into a pooled buffer
    deadlines_.remove(op);
    finish_io(op, err, bytes);
    if (defer)
      io_.defer_completion(op);
    else
      io_.complete(op);
  }

  // Fills op's result: bytes, or the accepted socket with the peer's address.
  void finish_io(operation& op, DWORD err, DWORD bytes) {
    slot& sl = slot_of(op);
    const SOCKET s = sock_of(op);
    auto deliver = [&](DWORD e, std::int64_t res) { fill(op, e, res); };
    if (op.code == op_code::recv_lent && (op.flags & recv_datagram) != 0) {
      if (err != 0 && err != WSAEMSGSIZE) {
        pool_.give_back(sl.lent);
        return deliver(err, 0);
      }
      // WSAEMSGSIZE: the buffer holds the datagram's start; Windows does not tell its size.
      std::byte* base = pool_.address(sl.lent);
      datagram_header h;
      std::memcpy(&h, base, sizeof h);
      sys::finish_datagram(base, pool_.buffer_size(), h.name_length, bytes, err == WSAEMSGSIZE);
      op.lent_id = sl.lent;
      op.buffer = base;
      return deliver(0, static_cast<std::int64_t>(datagram_payload_offset + bytes));
    }
    if (op.code == op_code::recv_lent) {
      if (sl.stage == 1 && (err != 0 || bytes == 0)) pool_.give_back(sl.lent); // nothing in it
      if (sl.stage == 1 && err == 0 && bytes > 0) {
        op.lent_id = sl.lent;
        op.buffer = pool_.address(sl.lent);
      }
      return deliver(err, bytes);
    }
    if (op.code == op_code::accept) {
      if (err != 0) {
        closesocket(sl.accepted);
        return deliver(err, 0);
      }
      setsockopt(sl.accepted, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                 reinterpret_cast<const char*>(&s), sizeof s);
      sockaddr* local = nullptr;
      sockaddr* remote = nullptr;
      int llen = 0, rlen = 0;
      const DWORD room = sl.local ? local_address_room : address_room;
      get_addrs_(op.address->bytes, 0, room, room, &local, &llen, &remote, &rlen);
      unsigned char peer[sizeof(sockaddr_un)] = {};
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(rlen), sizeof peer);
      if (remote != nullptr) std::memcpy(peer, remote, n);
      std::memset(op.address->bytes, 0, sizeof op.address->bytes);
      std::memcpy(op.address->bytes, peer, n);
      op.address->length = static_cast<std::uint32_t>(n);
      return deliver(0, static_cast<std::int64_t>(sl.accepted));
    }
    if (op.code == op_code::connect && err == 0)
      setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0);
    if (op.code == op_code::recv_message) {
      auto& m = *static_cast<message*>(op.buffer);
      m.control_length = 0;
      m.truncated = err == WSAEMSGSIZE; // the buffer is full; the rest of it is gone
      if (m.truncated) err = 0;
      if (err != 0 && m.peer != nullptr) m.peer->length = 0;
    }
    deliver(err, bytes);
  }

  // A signal for the set `id`: its first waiter, or queued for the set.
  void deliver_signal(std::uintptr_t id, int sig) {
    auto it = std::find_if(signal_waiters_.begin(), signal_waiters_.end(), [&](operation* op) {
      return static_cast<std::uintptr_t>(op->handle) == id;
    });
    if (it == signal_waiters_.end()) {
      pending_signals_.push_back({static_cast<native_handle>(id), sig});
      return;
    }
    operation* op = *it;
    signal_waiters_.erase(it);
    *static_cast<unsigned char*>(op->buffer) = static_cast<unsigned char>(sig);
    done_now(*op, 0, 1);
  }

public:
  HANDLE port() const noexcept { return port_; }

private:
  static constexpr std::size_t max_gather = 64;
  struct queued_signal {
    native_handle set;
    int sig;
  };

  io_context& io_;
  recv_pool pool_;
  HANDLE port_ = nullptr;

  bool started_ = false;
  LPFN_ACCEPTEX accept_ex_ = nullptr;
  LPFN_CONNECTEX connect_ex_ = nullptr;
  LPFN_GETACCEPTEXSOCKADDRS get_addrs_ = nullptr;
  socket_table associated_;
  std::vector<timer> timers_;
  std::vector<operation*> signal_waiters_;
  std::vector<queued_signal> pending_signals_;
  deadline_heap deadlines_;
  bool remote_pending_ = false;
  // The packets poll() dequeued and is dispatching: [batch_next_, batch_size_) not yet.
  static constexpr ULONG batch_capacity = 64;
  OVERLAPPED_ENTRY batch_[batch_capacity]{};
  ULONG batch_size_ = 0;
  ULONG batch_next_ = 0;
};

} // namespace

// signal_set on Windows (iocp_signal.cpp) registers here.
void iocp_subscribe_signals(io_context& io, std::uintptr_t id, const std::vector<int>& signals) {
  auto& b = static_cast<iocp_backend&>(io.backend());
  std::lock_guard lock(signals_mutex);
  signal_sets.push_back({id, b.port(), signals});
  if (!console_handler_installed)
    console_handler_installed = SetConsoleCtrlHandler(on_console_event, TRUE) != 0;
  for (int sig : signals)
    std::signal(sig, on_crt_signal);
}

void iocp_unsubscribe_signals(std::uintptr_t id) {
  std::lock_guard lock(signals_mutex);
  const auto set = std::find_if(signal_sets.begin(), signal_sets.end(),
                                [&](const signal_subscriber& s) { return s.id == id; });
  if (set == signal_sets.end()) return;
  const std::vector<int> signals = std::move(set->signals);
  signal_sets.erase(set);
  for (int sig : signals) {
    const bool still_wanted =
        std::any_of(signal_sets.begin(), signal_sets.end(), [&](const signal_subscriber& s) {
          return std::find(s.signals.begin(), s.signals.end(), sig) != s.signals.end();
        });
    if (!still_wanted) std::signal(sig, SIG_DFL);
  }
}

result<std::unique_ptr<backend>> make_iocp_backend(io_context& io) {
  auto b = std::make_unique<iocp_backend>(io);
  if (auto ec = b->init())
    return error(make_error_code(errc::backend_unavailable),
                 fmt::format("IOCP setup failed ({})", ec.message()));
  return std::unique_ptr<backend>(std::move(b));
}

} // namespace sluice::detail
