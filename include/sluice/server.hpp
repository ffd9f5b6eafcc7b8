// server: an acceptor and the connections it accepted, with a graceful drain.
// Structured: every connection runs inside the server and none outlives serve().
//
//   server srv(io, std::move(acceptor));
//   spawn(io, srv.serve([](tcp::stream& s, stop_token stop) -> task<void> { ... }));
//   ...
//   auto report = co_await srv.shutdown(10s); // drained / aborted counts
//
// Each handler runs under its connection's stop token (combined with the token serve()
// runs under), so every plain operation in it — a recv waiting for the next request,
// say — is cancelled when the drain starts; `stop` is that same token, for handlers
// that want to finish something first (shield() the work that must complete).
//
// shutdown() stops accepting at once (connections the OS had already accepted are
// served and drained, not reset; the listening socket is closed once they are taken,
// which leaves it listening in any process it was handed over to), requests stop on
// every connection's token,
// waits until the deadline, then aborts (RST) whatever is left. A connection accepted
// while the drain begins is drained like the others.
//
// Parking (serve(parking_handler)): a handler that returns after::park(idle) when its
// connection is idle hands it back to the server, which holds it with no coroutine
// frame (the stream and its receive state, armed in the kernel, no buffer) and calls
// the handler again when the next bytes arrive. An idle connection costs a few hundred
// bytes that way instead of its handler's frames; the price is a frame allocation per
// wake-up. docs/runtime.md ("Parked connections") has the details.
//
// Running out of descriptors (EMFILE/ENFILE) pauses accepting for 100 ms, doubling up
// to 500 ms while it lasts, with one log line per pause; the kernel's backlog holds
// new connections meanwhile.
#pragma once

#include <sluice/export.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <sluice/net/tcp.hpp>
#include <sluice/proto/proxy_protocol.hpp>
#include <sluice/scope.hpp>
#include <sluice/signal.hpp>
#include <vector>

namespace sluice {

namespace handover {
class session;
}

/// How a server reads the PROXY protocol header a load balancer puts in front of each
/// connection (server::set_proxy_protocol).
struct proxy_protocol_options {
  /// The whole header must arrive within this, from the connection's start.
  std::chrono::milliseconds timeout{5'000};
  proto::proxy::limits limits; ///< bounds on a v2 header
};

/// What server::shutdown() did.
struct drain_report {
  std::size_t drained = 0; ///< connections that finished by themselves during the drain
  std::size_t aborted = 0; ///< connections reset at the deadline or by abort()
};

/// An acceptor and the connections it accepted, with a graceful drain (see the top of
/// this header).
class SLUICE_API server {
public:
  /// The handler owns the protocol; the server closes the stream after it returns.
  using handler = std::function<task<void>(tcp::stream&, stop_token)>;
  /// Where the server's messages go (accept errors, failed handlers); standard error
  /// by default.
  using log_sink = std::function<void(std::string_view)>;

  /// What a parking handler asks for when it returns.
  struct after {
    /// The server closes the connection.
    static after close() noexcept { return {}; }
    /// The connection is idle at a message boundary: the server keeps it with no
    /// coroutine frame until its next bytes arrive (or the end of the stream, or an
    /// error), then calls the handler again; it closes it if nothing comes within
    /// `idle_timeout`, or when the server drains.
    static after park(std::chrono::milliseconds idle_timeout) noexcept {
      return {true, idle_timeout};
    }
    bool parks = false;                       ///< park (true) or close
    std::chrono::milliseconds idle_timeout{}; ///< when parked
  };
  /// A handler that returns whenever its connection is idle (nginx's model): an idle
  /// connection then costs its stream and its receive state, no frame, no buffer.
  using parking_handler = std::function<task<after>(tcp::stream&, stop_token)>;

  /// Serves the connections `acceptor` accepts, on `io`.
  server(io_context& io, tcp::acceptor acceptor);
  /// Serves only the connections handed to adopt() (another loop accepts them).
  explicit server(io_context& io);
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Where it listens.
  const endpoint& local_endpoint() const noexcept { return local_; }
  /// Connections open now (parked ones included). Any thread (a relaxed read).
  std::size_t connections() const noexcept { return conns_.count.load(std::memory_order_relaxed); }
  /// Connections served since it began (accepted or adopted). Any thread.
  std::size_t served() const noexcept { return served_.load(std::memory_order_relaxed); }
  /// Of them, those parked (idle, no frame).
  std::size_t parked() const noexcept { return parked_; }
  /// True once shutdown() or abort() began.
  bool draining() const noexcept { return draining_; }
  /// The listening socket (for a hand-over), or an invalid handle for a server without
  /// one or after its drain.
  sluice::detail::native_handle listener() const noexcept { return acceptor_.native_handle(); }
  /// The io_context it runs on.
  io_context& context() const noexcept { return io_; }

  /// Accepts and serves until shutdown()/abort(); completes when every connection ended.
  task<void> serve(handler h);
  /// The same, with a handler that parks idle connections.
  task<void> serve(parking_handler h);

  /// Graceful drain, bounded by `deadline`. Parked connections are closed at once.
  task<drain_report> shutdown(std::chrono::milliseconds deadline);

  /// Immediate: stop accepting and reset every connection now.
  std::size_t abort() noexcept;

  /// Sends the server's messages to `sink` instead of standard error.
  void set_log(log_sink sink) { log_ = std::move(sink); }

  /// Before serve(): every connection begins with a PROXY protocol header (HAProxy's v1
  /// or v2: send-proxy, send-proxy-v2), read before the handler runs. The client it
  /// names becomes the stream's remote_endpoint(); a LOCAL header (a balancer's health
  /// check) keeps the socket's own. Bytes after the header are the handler's. A
  /// connection whose header is malformed, or not whole within `o.timeout`, is closed
  /// and logged with the reason and the balancer's address. Only for listeners that
  /// nothing but the balancer can reach: the header is taken on trust.
  void set_proxy_protocol(proxy_protocol_options o) { proxy_ = o; }

  /// Loop thread: serves `s` like a connection it accepted (a hand-off from another
  /// loop); kept until serve() begins if it has not. Closed at once once the server
  /// drains.
  void adopt(tcp::stream s);

  /// Decides, for each accepted connection, whether another loop serves it: returns
  /// true if it took the stream (released it, to adopt it there). Loop thread.
  using distributor = std::function<bool(tcp::stream&)>;
  /// Installs `d` (before serve()).
  void set_distributor(distributor d) { distributor_ = std::move(d); }

private:
  /// One connection. As a ready_node it is the wake-up of a parked connection: its
  /// stream runs it when bytes arrive.
  struct connection : detail::ready_node {
    connection(server& s, tcp::stream st) noexcept;
    ~connection();
    server* owner;
    tcp::stream stream;
    stop_source stop;
    connection* prev = nullptr; ///< every connection of the server
    connection* next = nullptr;
    connection* idle_prev = nullptr; ///< parked ones, by idle deadline
    connection* idle_next = nullptr;
    std::int64_t idle_deadline = 0; ///< steady_clock ns
    bool parked = false;
    bool proxy_read = false; ///< its PROXY header was read (with set_proxy_protocol)
  };
  /// Owns the records; declared before scope_, so destroyed after the children.
  struct connection_list {
    connection* head = nullptr;
    std::atomic<std::size_t> count{0}; // read by other loops (hand-off balancing)
    connection_list() = default;
    connection_list(const connection_list&) = delete;
    connection_list& operator=(const connection_list&) = delete;
    ~connection_list();
  };

  task<void> accept_loop();
  void start(connection& c);
  task<void> run(connection& c, handler& h);
  task<void> run_parking(connection& c);
  task<bool> read_proxy_header(connection& c);
  connection& add(tcp::stream s);
  void remove(connection& c) noexcept; ///< closes the stream, frees the record
  void park(connection& c, std::chrono::milliseconds idle_timeout) noexcept;
  void unpark(connection& c) noexcept;
  static void wake(detail::ready_node& n) noexcept;
  task<void> reap_idle();
  void log(std::string_view message) const;

  io_context& io_;
  tcp::acceptor acceptor_;
  endpoint local_;
  handler handler_; ///< before scope_, like everything the children use
  parking_handler parking_;
  connection_list conns_;
  async_scope scope_;
  stop_source stop_accepting_;
  log_sink log_;
  distributor distributor_;
  std::optional<proxy_protocol_options> proxy_;
  detail::wait_list stopped_; // a server without an acceptor waits here for its drain
  std::atomic<std::size_t> served_{0};
  std::vector<tcp::stream> early_; // adopted before serve() began
  bool serving_ = false;
  /// Parked connections, earliest idle deadline first, and the task that closes them.
  connection* idle_head_ = nullptr;
  connection* idle_tail_ = nullptr;
  std::size_t parked_ = 0;
  bool reaping_ = false;
  std::int64_t reap_at_ = 0;              ///< what the reaper sleeps until
  stop_source* reap_interrupt_ = nullptr; ///< wakes it early (an earlier deadline, a drain)
  bool draining_ = false;
  std::size_t aborted_ = 0;
};

/// Serves until a signal of `sigs` arrives, then drains (bounded by `drain_deadline`); a
/// second signal during the drain aborts every connection at once. Returns 0 after a
/// drain that finished by itself, 1 after an abort by a second signal. Progress is
/// reported on standard error, prefixed with `name`.
SLUICE_API task<int> serve_until_signalled(server& srv, server::handler h, signal_set& sigs,
                                           std::chrono::milliseconds drain_deadline,
                                           std::string_view name);
/// The same with a handler that parks idle connections.
SLUICE_API task<int> serve_until_signalled(server& srv, server::parking_handler h, signal_set& sigs,
                                           std::chrono::milliseconds drain_deadline,
                                           std::string_view name);
/// The same, with a hand-over point (net/handover.hpp): when `hs` took its listeners
/// over, the old server is told to drain once this one serves; a successor that takes
/// them over from this one starts the drain like a signal (the exit status is the
/// same); SIGHUP starts hs.restart_command() when it has one.
SLUICE_API task<int> serve_until_signalled(server& srv, server::handler h, signal_set& sigs,
                                           std::chrono::milliseconds drain_deadline,
                                           std::string_view name, handover::session& hs);
/// The same with a handler that parks idle connections.
SLUICE_API task<int> serve_until_signalled(server& srv, server::parking_handler h, signal_set& sigs,
                                           std::chrono::milliseconds drain_deadline,
                                           std::string_view name, handover::session& hs);

} // namespace sluice

// fmt: "drained 12, aborted 0".
/// \cond SPECIALIZATIONS
template <> struct fmt::formatter<sluice::drain_report> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::drain_report& r, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(
        fmt::format("drained {}, aborted {}", r.drained, r.aborted), ctx);
  }
};
/// \endcond
