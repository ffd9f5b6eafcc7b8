// tcp_proxy: forwards every connection to an upstream server, both ways, passing each
// side's end of stream on to the other (half-close) — the usual case for forwarding an
// EOF rather than calling recv_disconnect() (docs/streams.md).
//
//   tcp_proxy --host 127.0.0.1 --port 0 --upstream localhost:7000 [--connect-timeout-ms 5000]
//
// The upstream host may be a name (looked up once at start with resolve(); each
// address is tried in turn per connection). Prints "listening on HOST:PORT", then runs
// until SIGINT or SIGTERM and drains like the echo server. Each connection ends with a
// line on standard error: the bytes each way, or what failed (which side, which
// endpoint). A client whose upstream cannot be reached is closed at once.
#include "options.hpp"

#include <csignal>
#include <fmt/format.h>
#include <sluice/server.hpp>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

struct upstream_target {
  std::string name; // as given: "localhost:7000"
  std::vector<endpoint> addresses;
  std::chrono::milliseconds connect_timeout{5'000};
};

// The first address of the upstream that accepts, within the connect timeout.
task<result<tcp::stream>> connect_upstream(io_context& io, const upstream_target& up) {
  auto s = co_await tcp::connect(io, up.addresses, up.connect_timeout);
  if (!s)
    co_return error(s.error().code(), fmt::format("upstream {}: {}", up.name, s.error().message()));
  co_return std::move(*s);
}

task<void> forward(io_context& io, const upstream_target& up, tcp::stream& client) {
  const auto peer = client.remote_endpoint();
  const std::string who = peer ? peer->to_string() : std::string("?");
  auto server = co_await connect_upstream(io, up);
  if (!server) {
    fmt::print(stderr, "tcp_proxy: {}: {}\n", who, server.error().message());
    client.abort(); // the client learns at once that there is nobody behind
    co_return;
  }
  (void)client.set_nodelay(true);
  (void)server->set_nodelay(true);
  // Shielded from the drain's stop: a connection in progress finishes (up to the drain
  // deadline, when the server resets what is still open).
  auto counts = co_await shield(copy_bidirectional(client, *server));
  if (counts)
    fmt::print(stderr, "tcp_proxy: {}: {} bytes to {}, {} bytes back\n", who, counts->a_to_b,
               up.name, counts->b_to_a);
  else
    fmt::print(stderr, "tcp_proxy: {}: {}\n", who, counts.error().message());
  if (!counts) {
    // One side failed: the other gets a reset rather than a clean end, so that it
    // cannot mistake a truncated stream for a whole one.
    client.abort();
    server->abort();
    co_return;
  }
  // Both directions ended cleanly and both FINs went out: close without losing
  // anything still in flight.
  (void)co_await shield(when_all(client.graceful_close(), server->graceful_close()));
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv, {"host", "port", "upstream", "connect-timeout-ms", "drain-ms"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 7100, 0, 65535));
  const std::string upstream = opt.get("upstream", "");
  const std::chrono::milliseconds drain(opt.number("drain-ms", 5'000, 0, 3'600'000));
  upstream_target up;
  up.name = upstream;
  up.connect_timeout =
      std::chrono::milliseconds(opt.number("connect-timeout-ms", 5'000, 1, 600'000));
  const auto colon = upstream.rfind(':');
  if (upstream.empty() || colon == std::string::npos || colon == 0) {
    fmt::print(stderr, "tcp_proxy: --upstream HOST:PORT is required (got \"{}\")\n", upstream);
    return 2;
  }
  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "tcp_proxy: {}\n", ep.error().message());
    return 2;
  }
  auto io_owner = examples::start_io_context("tcp_proxy");
  if (!io_owner) return 1;
  io_context& io = *io_owner;
  auto addresses =
      sync_wait(io, resolve(io, upstream.substr(0, colon), upstream.substr(colon + 1)));
  if (!addresses) {
    fmt::print(stderr, "tcp_proxy: --upstream: {}\n", addresses.error().message());
    return 2;
  }
  up.addresses = std::move(*addresses);
  auto acc = tcp::acceptor::bind(io, *ep);
  if (!acc) {
    fmt::print(stderr, "tcp_proxy: {}\n", acc.error().message());
    return 1;
  }
  signal_set sigs(io, {SIGINT, SIGTERM});
  server srv(io, std::move(*acc));
  fmt::print("listening on {}\n", srv.local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "tcp_proxy: backend {}, upstream {} ({} addresses)\n", io.backend_name(),
             up.name, up.addresses.size());
  std::fflush(stderr);
  auto handler = [&](tcp::stream& s, stop_token) -> task<void> { return forward(io, up, s); };
  return sync_wait(io, serve_until_signalled(srv, handler, sigs, drain, "tcp_proxy"));
}
