// Listener hand-over: a running server gives its listening sockets to a new process
// (a new binary, a new configuration) through a Unix-domain socket, then drains and
// exits; the sockets never close, so no connection attempt is refused during the
// switch. docs/service.md ("Restarting without dropping connections") has the design
// and the protocol.
//
//   auto hs = co_await handover::session::open(io, "/run/app.handover");
//   // hs->took_over(): serve hs->take_listeners(); otherwise bind your own
//   ...
//   co_await serve_until_signalled(srv, handler, sigs, 10s, "app", *hs);
//
// The first process started with a path binds it (the hand-over point). A process
// started later with the same path connects to it and receives every listening socket
// of the server there (one per loop with SO_REUSEPORT) and the point itself, starts
// accepting, and only then tells the old one to drain. The old one stops accepting
// (what the OS had accepted for it is still served), finishes what is in flight and
// exits; a successor that fails before it is ready changes nothing there but a log
// line saying why. POSIX only: on Windows, open() fails with operation_not_supported.
#pragma once

#include <sluice/export.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <sluice/net/local.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::handover {

/// How long each step of a hand-over may take (connecting, each message); a peer that
/// stalls past it is given up on, and says so.
struct options {
  std::chrono::milliseconds step_timeout{10'000}; ///< per step
};

/// The hand-over point of one process: its path, what it took over, and the restart
/// command run on SIGHUP. Move-only.
class SLUICE_API session {
public:
  /// Where the incumbent's messages go (successors that failed, and why).
  using log_sink = std::function<void(std::string_view)>;

  /// Opens the hand-over point at `path`. A server there (a process started with the
  /// same path): its listening sockets and the point are taken over (took_over()).
  /// Nobody there (no file, or a socket file nobody accepts on, a crashed server's):
  /// the point is bound here, and the caller binds its own listeners. Errors name the
  /// path: a file that is not a socket, a peer that does not answer as a sluice server
  /// within the step timeout, a server of another user, or its refusal.
  static task<result<session>> open(io_context& io, std::string path, options o);
  /// The same with the default options.
  static task<result<session>> open(io_context& io, std::string path);

  /// Takes over `o`'s point, descriptors and state.
  session(session&& o) noexcept = default;
  /// Closes what it holds, then takes over `o`'s.
  session& operator=(session&& o) noexcept = default;
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session();

  /// The path of the point.
  const std::string& path() const noexcept { return path_; }
  /// True when the listeners came from a running server.
  bool took_over() const noexcept { return took_over_; }
  /// True once offer() handed the listeners to a successor.
  bool handed_over() const noexcept { return handed_over_; }
  /// That server's process id (0 when none).
  long predecessor() const noexcept { return predecessor_; }
  /// The listening sockets taken over, in the order the old server had them (one per
  /// loop with SO_REUSEPORT); the caller owns them (tcp::acceptor::adopt,
  /// sharded_server::adopt). Empty after the first call, or when nothing was taken.
  std::vector<sluice::detail::native_handle> take_listeners();
  /// How many listening sockets it holds (before take_listeners()).
  std::size_t listeners() const noexcept { return listeners_.size(); }

  /// A successor, once it accepts on the listeners: tells the old server to drain and
  /// waits for its acknowledgement. An error (it went away, or stalled) changes
  /// nothing here: the listeners are this process's either way.
  task<result<void>> confirm(io_context& io);
  /// A successor that cannot serve (its listeners did not fit, say): tells the old
  /// server why, which keeps serving and logs it. Closes the listeners still here.
  task<void> abandon(io_context& io, std::string why);

  /// The incumbent: waits on the point for a successor and hands it `listeners` (they
  /// stay open here) and the point. Returns the successor's process id once it is
  /// ready (having told it the drain begins); the caller then drains. A successor
  /// that fails before it is ready (it gives up, goes away, stalls, speaks no
  /// hand-over, or runs as another user) is reported through `log`, and the next one
  /// is awaited. Cancelling it (a stop) leaves the session usable.
  task<result<long>> offer(io_context& io, std::vector<sluice::detail::native_handle> listeners,
                           log_sink log);

  /// SIGHUP starts `argv` (argv[0] the program's path, usually this one's own: a binary
  /// upgrade, or a configuration change), which is expected to take over through this
  /// point; serve_until_signalled watches for it. Empty: SIGHUP is not watched.
  void set_restart_command(std::vector<std::string> argv) { restart_ = std::move(argv); }
  /// The command set_restart_command() gave.
  const std::vector<std::string>& restart_command() const noexcept { return restart_; }

private:
  session() = default;
  task<result<long>> hand_over(tcp::stream& c, const std::vector<sluice::detail::native_handle>& l);

  std::string path_;
  options options_;
  local::unique_fd point_;   ///< the listening point (bound here or taken over)
  local::unique_fd channel_; ///< a successor's connection to its predecessor
  std::vector<local::unique_fd> listeners_;
  std::optional<local::acceptor> accepting_; ///< the point, on the loop offer() runs on
  std::vector<std::string> restart_;
  long predecessor_ = 0;
  bool took_over_ = false;
  bool handed_over_ = false;
};

/// Starts `argv` (argv[0] a path) as a new process with this one's environment, its
/// standard streams shared; its process id, or the error naming the program.
SLUICE_API result<long> spawn_process(const std::vector<std::string>& argv);

/// This process's id.
SLUICE_API long process_id();

/// Whether the child process `pid` (one spawn_process() started) has ended, without
/// waiting: how ("exited with status 1", "killed by signal 9"), or nothing while it
/// runs. Reaps it.
SLUICE_API std::optional<std::string> reap_process(long pid);

/// The path of this process's own executable (/proc/self/exe where there is one), for
/// a restart command; `fallback` (argv[0]) otherwise.
SLUICE_API std::string own_executable(std::string_view fallback);

} // namespace sluice::handover
