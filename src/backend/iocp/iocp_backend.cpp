// The IOCP backend (Windows; tested under Wine): one completion port per io_context.
//
// - AcceptEx / ConnectEx (loaded through WSAIoctl), WSARecv / WSASend with an
//   OVERLAPPED kept in the operation's scratch area, GetQueuedCompletionStatusEx in
//   batches, CancelIoEx for cancellation, PostQueuedCompletionStatus for wake.
// - FILE_SKIP_COMPLETION_PORT_ON_SUCCESS where the socket accepts it: an operation that
//   finishes at once queues no packet, so its completion is deferred to the loop's
//   next turn (never inline in submit()).
// - abandon(op) cancels op's OVERLAPPED with CancelIoEx and waits for its packet (the
//   kernel writes the OVERLAPPED and the buffer until then); other packets seen
//   meanwhile become deferred completions.
// - Timers are a min-heap in a vector; poll() waits at most until the first deadline.
//   Nothing here allocates per operation in steady state.
// - recv_disconnect is WSARecvDisconnect; pending receives on that socket are cancelled
//   by the backend, because Wine never completes them (DESIGN.md); the lifecycle then
//   reports them as shut_down.
// - Console control events (Ctrl-C, close) and the C runtime's signals (raise()) are
//   delivered as SIGINT / SIGTERM / SIGBREAK to the signal_sets that asked for them,
//   each set through its own io_context's port.
#include "../backend.hpp"

// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
// clang-format on

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fmt/format.h>
#include <mutex>
#include <sluice/io_context.hpp>
#include <unordered_map>
#include <vector>

namespace sluice::detail {
namespace {

constexpr ULONG_PTR io_key = 0, wake_key = 1, signal_key = 2;
constexpr DWORD operation_aborted = ERROR_OPERATION_ABORTED; // 995
constexpr int address_room = sizeof(sockaddr_in6) + 16;      // per AcceptEx address

// What the backend keeps in operation::scratch.
struct slot {
  OVERLAPPED ov; // first: a completion's OVERLAPPED* is the slot
  operation* op;
  WSABUF buf;
  SOCKET accepted;
  DWORD flags;
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
  explicit iocp_backend(io_context& io) : io_(io) {}

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
    switch (op.code) {
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
    case op_code::send:
    case op_code::sendmsg:
    case op_code::accept:
    case op_code::connect: start_io(op); return;
    }
  }

  abandoned_at abandon(operation& op) noexcept override {
    if (op.code == op_code::timeout) {
      remove_timer(op);
      return abandoned_at::in_flight;
    }
    if (op.code == op_code::read) {
      auto it = std::find(signal_waiters_.begin(), signal_waiters_.end(), &op);
      if (it != signal_waiters_.end()) signal_waiters_.erase(it);
      return abandoned_at::in_flight;
    }
    // The kernel owns the OVERLAPPED and the buffer until op's packet arrives: cancel
    // it and wait for that packet; other packets become deferred completions.
    slot& sl = slot_of(op);
    CancelIoEx(reinterpret_cast<HANDLE>(sock_of(op)), &sl.ov);
    for (;;) {
      OVERLAPPED_ENTRY entries[64];
      ULONG n = 0;
      if (!GetQueuedCompletionStatusEx(port_, entries, 64, &n, INFINITE, FALSE)) continue;
      bool found = false;
      for (ULONG i = 0; i < n; ++i) {
        if (entries[i].lpCompletionKey == io_key && entries[i].lpOverlapped == &sl.ov) {
          found = true;
          if (op.code == op_code::recv) untrack_receive(op);
          // Its result stays in op for the awaiter (bytes received, an accepted socket).
          finish_io(op, packet_error(entries[i]), entries[i].dwNumberOfBytesTransferred);
          continue;
        }
        dispatch(entries[i], true);
      }
      if (found)
        return op.error ==
                       std::error_code(static_cast<int>(operation_aborted), std::system_category())
                   ? abandoned_at::in_flight
                   : abandoned_at::completed;
    }
  }

  void discard(operation& op) noexcept override {
    if (op.code == op_code::accept && !op.error && op.res >= 0)
      closesocket(static_cast<SOCKET>(op.res));
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

  void poll(bool block) override {
    if (remote_pending_) { // a wake seen while an abandon waited for its packet
      remote_pending_ = false;
      io_.run_remote();
      block = false;
    }
    const bool expired = expire_timers();
    DWORD timeout = 0;
    if (block && !expired) {
      timeout = INFINITE;
      if (!timers_.empty()) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(timers_.front().when - clock::now());
        timeout = static_cast<DWORD>(std::clamp<long long>(left.count(), 0, 24 * 3600 * 1000));
      }
    }
    OVERLAPPED_ENTRY entries[64];
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(port_, entries, 64, &n, timeout, FALSE)) n = 0;
    for (ULONG i = 0; i < n; ++i)
      dispatch(entries[i], !io_.consume_budget()); // past the budget: next turn
    expire_timers();
  }

  void wake() noexcept override { PostQueuedCompletionStatus(port_, 0, wake_key, nullptr); }

  void shutdown() noexcept override {
    for (auto& [sock, info] : associated_)
      CancelIoEx(reinterpret_cast<HANDLE>(sock), nullptr);
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

  // What the backend knows of a socket associated with the port.
  struct socket_info {
    bool skip_on_success = false;
    std::vector<operation*> receives; // pending WSARecv, for recv_disconnect
  };

  // A completion delivered on the loop's next turn (never inline in submit()).
  void done_now(operation& op, DWORD error, std::int64_t res) {
    fill(op, error, res);
    io_.defer_completion(op);
  }

  // A completion delivered now.
  void settle(operation& op, DWORD error, std::int64_t res) {
    fill(op, error, res);
    io_.complete(op);
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

  void cancel_receives(SOCKET s) {
    auto it = associated_.find(s);
    if (it == associated_.end()) return;
    for (operation* op : it->second.receives)
      CancelIoEx(reinterpret_cast<HANDLE>(s), &slot_of(*op).ov);
  }

  void track_receive(operation& op) { associated_[sock_of(op)].receives.push_back(&op); }
  void untrack_receive(operation& op) {
    auto it = associated_.find(sock_of(op));
    if (it == associated_.end()) return;
    auto& v = it->second.receives;
    v.erase(std::remove(v.begin(), v.end(), &op), v.end());
  }

  // Associates a socket with the port once; returns whether immediate successes skip
  // the port (then they are completed here).
  bool associate(SOCKET s) {
    auto it = associated_.find(s);
    if (it != associated_.end()) return it->second.skip_on_success;
    CreateIoCompletionPort(reinterpret_cast<HANDLE>(s), port_, io_key, 0);
    const bool skip = SetFileCompletionNotificationModes(reinterpret_cast<HANDLE>(s),
                                                         FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                                             FILE_SKIP_SET_EVENT_ON_HANDLE) != 0;
    associated_[s].skip_on_success = skip;
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

  void start_io(operation& op) {
    const SOCKET s = sock_of(op);
    const bool skip = associate(s);
    load_extensions(s);
    slot& sl = slot_of(op);
    std::memset(&sl, 0, sizeof sl);
    sl.op = &op;
    sl.accepted = INVALID_SOCKET;
    DWORD bytes = 0;
    BOOL ok = FALSE;
    switch (op.code) {
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
    case op_code::accept: {
      sockaddr_storage local{};
      int len = sizeof local;
      getsockname(s, reinterpret_cast<sockaddr*>(&local), &len);
      sl.accepted = WSASocketW(local.ss_family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                               WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
      if (sl.accepted == INVALID_SOCKET)
        return done_now(op, static_cast<DWORD>(WSAGetLastError()), 0);
      ok = accept_ex_(s, sl.accepted, op.address->bytes, 0, address_room, address_room, &bytes,
                      &sl.ov);
      break;
    }
    case op_code::connect: {
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
      if (op.code == op_code::recv) track_receive(op);
      return;
    }
    const DWORD err = static_cast<DWORD>(WSAGetLastError());
    if (err == WSA_IO_PENDING) {
      if (op.code == op_code::recv) track_receive(op);
      return;
    }
    if (sl.accepted != INVALID_SOCKET) closesocket(sl.accepted);
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
    if (op.code == op_code::recv) untrack_receive(op);
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
      get_addrs_(op.address->bytes, 0, address_room, address_room, &local, &llen, &remote, &rlen);
      unsigned char peer[sizeof(sockaddr_in6)] = {};
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(rlen), sizeof peer);
      if (remote != nullptr) std::memcpy(peer, remote, n);
      std::memset(op.address->bytes, 0, sizeof op.address->bytes);
      std::memcpy(op.address->bytes, peer, n);
      op.address->length = static_cast<std::uint32_t>(n);
      return deliver(0, static_cast<std::int64_t>(sl.accepted));
    }
    if (op.code == op_code::connect && err == 0)
      setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0);
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
  HANDLE port_ = nullptr;
  bool started_ = false;
  LPFN_ACCEPTEX accept_ex_ = nullptr;
  LPFN_CONNECTEX connect_ex_ = nullptr;
  LPFN_GETACCEPTEXSOCKADDRS get_addrs_ = nullptr;
  std::unordered_map<SOCKET, socket_info> associated_;
  std::vector<timer> timers_;
  std::vector<operation*> signal_waiters_;
  std::vector<queued_signal> pending_signals_;
  bool remote_pending_ = false;
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
