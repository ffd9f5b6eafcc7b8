// sharded_server: one sluice::server per loop of a runtime, on one port, with one drain.
//
//   runtime rt(4);
//   auto srv = sharded_server::bind(rt, *endpoint::parse("0.0.0.0:8080"));
//   return serve_until_signalled(rt, **srv, handler, 10s, "app");
//
// Two ways to share the port (sharded_server::options::sharing):
//  - hand_off (the default): loop 0 accepts every connection and hands each to the
//    loop that serves the fewest (its socket is released there and adopted by the
//    other loop, through that loop's lock-free queue). The load stays even whatever the
//    kernel does; the price is one accept thread and a cross-loop hop per connection.
//  - reuse_port: every loop has its own acceptor on the port (SO_REUSEPORT) and the
//    kernel spreads connections by a hash of their addresses and ports. No hop, no
//    single accepting loop; but the spread is by hash, not by load, so a few long or
//    busy connections can leave one loop with more work than the others (which is why
//    Seastar keeps it off by default). Not on Windows (no SO_REUSEPORT there).
// docs/runtime.md ("Thread-per-core") compares them with numbers.
#pragma once

#include <sluice/export.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <sluice/runtime.hpp>
#include <sluice/server.hpp>
#include <string_view>
#include <vector>

namespace sluice {

/// How the loops of a sharded_server share its port.
enum class port_sharing : std::uint8_t {
  hand_off,  ///< loop 0 accepts, each connection goes to the least busy loop
  reuse_port ///< each loop accepts on its own SO_REUSEPORT socket
};

/// One server per loop of a runtime, on one port (see the top of this header).
class SLUICE_API sharded_server {
public:
  /// How it listens.
  struct options {
    port_sharing sharing = port_sharing::hand_off; ///< see port_sharing
    int backlog = 1024;                            ///< per listening socket
    /// Every connection begins with a PROXY protocol header (server::set_proxy_protocol).
    std::optional<proxy_protocol_options> proxy_protocol = std::nullopt;
  };

  /// Binds `ep` for every loop of `rt` (before rt.run()). Errors name the endpoint
  /// (and SO_REUSEPORT where the OS has none).
  static result<std::unique_ptr<sharded_server>> bind(runtime& rt, const endpoint& ep, options o);
  /// The same with the default options (hand-off).
  static result<std::unique_ptr<sharded_server>> bind(runtime& rt, const endpoint& ep);
  /// Serves listening sockets opened elsewhere (systemd socket activation, a hand-over
  /// from another process), before rt.run(): one socket is loop 0's, handed off as
  /// with port_sharing::hand_off; one per loop (SO_REUSEPORT sockets on one port) is
  /// each loop's own, as with reuse_port. Takes every socket in `listeners`, even when
  /// it fails (any other count, sockets on different ports, one not listening: the
  /// error says which). `o.sharing` and `o.backlog` are not used.
  static result<std::unique_ptr<sharded_server>>
  adopt(runtime& rt, std::vector<sluice::detail::native_handle> listeners, options o);
  /// The same with the default options.
  static result<std::unique_ptr<sharded_server>>
  adopt(runtime& rt, std::vector<sluice::detail::native_handle> listeners);
  sharded_server(const sharded_server&) = delete;
  sharded_server& operator=(const sharded_server&) = delete;
  ~sharded_server();

  /// Where it listens.
  const endpoint& local_endpoint() const noexcept { return local_; }
  /// How the port is shared.
  port_sharing sharing() const noexcept { return sharing_; }
  /// Loop `i`'s server (use it on loop i).
  server& shard(std::size_t i) noexcept { return *shards_[i]; }
  /// Connections loop `i` serves now. Any thread.
  std::size_t connections(std::size_t i) const noexcept { return shards_[i]->connections(); }
  /// Connections loop `i` has served since it began. Any thread.
  std::size_t served(std::size_t i) const noexcept { return shards_[i]->served(); }

  /// Loop `i`'s part, run on loop i (each loop's task in runtime::run): accepts (or
  /// receives hand-offs) and serves until the drain.
  task<void> serve(std::size_t i, server::handler h);
  /// The same with a handler that parks idle connections.
  task<void> serve(std::size_t i, server::parking_handler h);

  /// From any loop: drains every loop within `deadline` (each its own connections, at
  /// once); the reports summed.
  task<drain_report> shutdown(std::chrono::milliseconds deadline);
  /// From any loop: resets every connection of every loop now.
  task<void> abort();

private:
  struct hand_off_node;
  sharded_server(runtime& rt, port_sharing sharing) : rt_(rt), sharing_(sharing) {}
  bool hand_off(tcp::stream& s); // loop 0's distributor
  // The shards over `acceptors` (one: loop 0's, handed off; one per loop: each its own).
  static std::unique_ptr<sharded_server> assemble(runtime& rt, std::vector<tcp::acceptor> acceptors,
                                                  const options& o);
  static task<drain_report> shutdown_shard(server& s, std::chrono::milliseconds deadline);
  static task<void> abort_shard(server& s);

  runtime& rt_;
  port_sharing sharing_;
  endpoint local_;
  std::vector<std::unique_ptr<server>> shards_;
  // Hand-offs on their way to each loop, counted as its load until adopted there.
  std::unique_ptr<std::atomic<std::size_t>[]> arriving_;
};

/// Serves `h` on every loop of `rt` until SIGINT or SIGTERM (watched by loop 0, so a
/// signal is seen once), then drains every loop within `drain_deadline`; a second
/// signal during the drain aborts every loop. Returns 0 after a drain that finished by
/// itself, 1 after an abort. Progress, and the connections each loop served, go to
/// standard error, prefixed with `name`.
SLUICE_API int serve_until_signalled(runtime& rt, sharded_server& srv, server::handler h,
                                     std::chrono::milliseconds drain_deadline,
                                     std::string_view name);
/// The same with a handler that parks idle connections.
SLUICE_API int serve_until_signalled(runtime& rt, sharded_server& srv, server::parking_handler h,
                                     std::chrono::milliseconds drain_deadline,
                                     std::string_view name);
/// The same with a hand-over point (see the single-loop serve_until_signalled): what is
/// handed over is every loop's listening socket (loop 0's alone with hand-off); loop 0
/// offers them and confirms the session's own take-over.
SLUICE_API int serve_until_signalled(runtime& rt, sharded_server& srv, server::handler h,
                                     std::chrono::milliseconds drain_deadline,
                                     std::string_view name, handover::session& hs);
/// The same with a handler that parks idle connections.
SLUICE_API int serve_until_signalled(runtime& rt, sharded_server& srv, server::parking_handler h,
                                     std::chrono::milliseconds drain_deadline,
                                     std::string_view name, handover::session& hs);

} // namespace sluice
