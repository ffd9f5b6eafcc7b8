// echo_server: echoes every byte back, one coroutine per connection.
//
//   echo_server --host 127.0.0.1 --port 0 [--threads N] [--share handoff|reuseport]
//               [--handover PATH [--handover-step-ms N]]
//   echo_server --unix PATH        (a Unix-domain socket; "@name" for an abstract name)
//
// With --threads N (N > 1) it runs a loop per thread (sluice::runtime) and shares the
// port between them: loop 0 hands each connection to the least busy loop, or (with
// --share reuseport) every loop accepts on its own SO_REUSEPORT socket.
// With --unix it listens on a Unix-domain socket instead (one loop), removing a stale
// socket file left by a crashed server, and removes its own file when it exits.
// Prints "listening on HOST:PORT" (or "listening on unix:PATH") first (port 0 picks a free one),
// then runs until SIGINT or SIGTERM: it stops accepting, closes idle connections gracefully and
// exits 0 (connections still busy at --drain-ms are reset). A second signal aborts at once.
// Started by systemd with a socket unit (or systemd-socket-activate), it serves the
// listening socket passed to it instead of binding its own. With --handover PATH a
// second echo_server started with the same PATH takes its listening sockets over
// (SIGHUP starts one), and this one drains and exits (see http_server.cpp).
#include "options.hpp"

#include <csignal>
#include <cstdio>
#include <fmt/format.h>
#include <sluice/server.hpp>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

// Echoes until the peer closes. The handler runs under its connection's stop token, so
// the drain cancels the receive waiting for more; the connection then closes gracefully
// (FIN, then the peer's FIN awaited), shielded from that token. Bytes arrive in buffers
// lent by the io_context's pool: a connection waiting for data holds none.
task<void> echo(tcp::stream& s, stop_token) {
  (void)s.set_nodelay(true);
  for (;;) {
    auto in = co_await s.recv_some();
    if (!in || in->empty()) break; // stop requested, error, or the peer closed
    auto w = co_await s.send_all(in->data());
    if (!w) co_return;
  }

  (void)co_await shield(s.graceful_close());
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(
      argc, argv,
      {"host", "port", "drain-ms", "threads", "share", "unix", "handover", "handover-step-ms"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 7000, 0, 65535));
  const std::chrono::milliseconds drain(opt.number("drain-ms", 5'000, 0, 3'600'000));
  const auto threads = static_cast<unsigned>(opt.number("threads", 1, 1, 1024));
  const port_sharing sharing = examples::sharing_option(opt);

  const std::string unix_path = opt.get("unix", "");
  auto ep = unix_path.empty() ? endpoint::parse(host, port) : endpoint::local(unix_path);
  if (!ep) {
    fmt::print(stderr, "echo_server: {}\n", ep.error().message());
    return 2;
  }
  if (threads > 1 && ep->is_local()) {
    fmt::print(stderr, "echo_server: --unix serves on one loop (drop --threads)\n");
    return 2;
  }
  // --handover PATH: the listeners of the server running there, if one is.
  auto hs = examples::open_handover("echo_server", opt, argc, argv);
  if (threads > 1) // a loop per thread, one port
    return examples::serve_on_threads("echo_server", threads, *ep, sharing, echo, drain,
                                      std::nullopt, hs);
  auto io_owner = examples::start_io_context("echo_server");
  if (!io_owner) return 1;
  io_context& io = *io_owner;
  // Taken over, or the service manager's (systemd socket activation), or bound here.
  signal_set sigs(io, {SIGINT, SIGTERM});
  server srv(io, examples::listener_for("echo_server", io, *ep, hs));
  fmt::print("listening on {}\n", srv.local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "echo_server: backend {}\n", io.backend_name());
  std::fflush(stderr); // not line-buffered everywhere (mingw, redirected)
  const int rc =
      hs ? sync_wait(io, serve_until_signalled(srv, echo, sigs, drain, "echo_server", *hs))
         : sync_wait(io, serve_until_signalled(srv, echo, sigs, drain, "echo_server"));
  // Our socket file goes with us, unless a successor took the listener over.
  if (ep->is_local() && !ep->is_abstract() && !(hs && hs->handed_over()))
    std::remove(ep->path().c_str());
  return rc;
}
