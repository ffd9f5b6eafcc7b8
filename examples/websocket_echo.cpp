// websocket_echo: a WebSocket server that sends every message back, text as text and
// binary as binary; with --deflate on, compressed when the client offers
// permessage-deflate (off by default, as in npm's ws).
//
//   websocket_echo --host 127.0.0.1 --port 0 [--max-message BYTES] [--deflate on|off]
//                  [--subprotocol NAME] [--drain-ms MS]
//
// Prints "listening on HOST:PORT" first (port 0 picks a free one). A request that is not
// a WebSocket handshake is answered 426 (400, 405 for other faults) and logged. A client
// that breaks the protocol is sent the close code for it (1002, 1007, 1009) and logged.
// A close from the client is echoed with its code and reason, and the code and reason
// read back through recv_disconnect() are logged: "PEER closed with 4001 'reason'". On SIGINT or
// SIGTERM the server stops accepting and closes every connection with 1001 ("going away"), waits
// for the clients' close frames (bounded by --drain-ms) and exits 0.
#include "options.hpp"

#include <csignal>
#include <fmt/format.h>
#include <sluice/server.hpp>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

websocket::options ws_options;

task<void> serve(tcp::stream& s, stop_token stop) {
  (void)s.set_nodelay(true);
  auto ep = s.remote_endpoint();
  const std::string peer = ep ? fmt::format("{}", *ep) : std::string("a client");
  auto ws = co_await websocket::accept(std::move(s), ws_options);
  if (!ws) { // a refused or failed handshake (not one cut short by the drain)
    if (ws.error() != errc::operation_aborted)
      fmt::print(stderr, "websocket_echo: {}\n", ws.error().message());
    co_return;
  }
  for (;;) {
    auto m = co_await ws->receive();
    if (!m) {
      if (stop.stop_requested()) { // the drain: close the handshake way, shielded
        auto rep = co_await shield(
            ws->graceful_close(websocket::close_code::going_away, "server shutting down"));
        (void)rep;
      } else {
        fmt::print(stderr, "websocket_echo: {}\n", m.error().message());
      }
      co_return;
    }
    if (!*m) { // the client's close, echoed (and a FIN sent): its disconnect data
      std::array<std::byte, 125> data;
      auto n = co_await ws->recv_disconnect(data);
      if (n && *n >= 2)
        fmt::print(stderr, "websocket_echo: {} closed with {} '{}'\n", peer,
                   std::to_integer<int>(data[0]) * 256 + std::to_integer<int>(data[1]),
                   std::string_view(reinterpret_cast<const char*>(data.data()) + 2, *n - 2));
      co_return;
    }
    result<void> sent;
    if ((*m)->is_text())
      sent = co_await ws->send_text((*m)->text());
    else
      sent = co_await ws->send_binary((*m)->data);
    if (!sent) {
      fmt::print(stderr, "websocket_echo: {}\n", sent.error().message());
      co_return;
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv,
                        {"host", "port", "max-message", "deflate", "subprotocol", "drain-ms"},
                        {"127.0.0.1", "7002", "16777216", "off", "(none)", "5000"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 7002, 0, 65535));
  ws_options.limits.max_message =
      static_cast<std::size_t>(opt.number("max-message", 16 << 20, 1, 1L << 30));
  ws_options.limits.max_frame = ws_options.limits.max_message;
  const std::string deflate = opt.get("deflate", "off");
  if (deflate != "on" && deflate != "off") {
    fmt::print(stderr, "websocket_echo: --deflate is on or off, not {}\n", deflate);
    return 2;
  }
  ws_options.handshake.accept_deflate = deflate == "on";
  if (opt.has("subprotocol")) ws_options.handshake.subprotocols = {opt.get("subprotocol", "")};
  const std::chrono::milliseconds drain(opt.number("drain-ms", 5'000, 0, 3'600'000));

  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "websocket_echo: {}\n", ep.error().message());
    return 2;
  }
  auto io_owner = examples::start_io_context("websocket_echo");
  if (!io_owner) return 1;
  io_context& io = *io_owner;
  auto acc = tcp::acceptor::bind(io, *ep);
  if (!acc) {
    fmt::print(stderr, "websocket_echo: {}\n", acc.error().message());
    return 1;
  }
  signal_set sigs(io, {SIGINT, SIGTERM});
  server srv(io, std::move(*acc));
  fmt::print("listening on {}\n", srv.local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "websocket_echo: backend {}\n", io.backend_name());
  std::fflush(stderr);
  return sync_wait(io, serve_until_signalled(srv, serve, sigs, drain, "websocket_echo"));
}
