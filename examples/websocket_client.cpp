// websocket_client: opens a WebSocket, sends messages, prints what comes back, closes.
//
//   websocket_client --url ws://127.0.0.1:7002/ [--message TEXT] [--count N]
//                    [--binary-size BYTES] [--deflate on|off] [--subprotocol NAME]
//                    [--close-code CODE] [--close-reason TEXT]
//
// Sends --message --count times (and, with --binary-size, one binary message of that
// many bytes), reads as many messages back and prints each as "text: ..." or
// "binary: N bytes". Then it closes with --close-code and --close-reason and prints the
// server's close as "closed: CODE REASON". Exits 0 when every message came back, 1 on
// any error (printed with what failed and where).
#include "options.hpp"

#include <fmt/format.h>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

struct settings {
  std::string url;
  std::string message;
  long count = 1;
  long binary_size = 0;
  std::uint16_t close_code = 1000;
  std::string close_reason;
  websocket::options ws;
};

task<int> run(io_context& io, const settings& st) {
  auto ws = co_await websocket::connect(io, st.url, st.ws);
  if (!ws) {
    fmt::print(stderr, "websocket_client: {}\n", ws.error().message());
    co_return 1;
  }
  fmt::print("connected: subprotocol '{}', permessage-deflate {}\n", ws->subprotocol(),
             ws->deflate() ? proto::websocket::to_string(*ws->deflate()) : "off");
  long expected = st.count;
  for (long i = 0; i < st.count; ++i) {
    auto sent = co_await ws->send_text(st.message);
    if (!sent) {
      fmt::print(stderr, "websocket_client: {}\n", sent.error().message());
      co_return 1;
    }
  }
  if (st.binary_size > 0) {
    std::vector<std::byte> blob(static_cast<std::size_t>(st.binary_size));
    for (std::size_t i = 0; i < blob.size(); ++i)
      blob[i] = std::byte(i * 31 % 251);
    auto sent = co_await ws->send_binary(blob);
    if (!sent) {
      fmt::print(stderr, "websocket_client: {}\n", sent.error().message());
      co_return 1;
    }
    ++expected;
  }
  for (long i = 0; i < expected; ++i) {
    auto m = co_await ws->receive();
    if (!m) {
      fmt::print(stderr, "websocket_client: {}\n", m.error().message());
      co_return 1;
    }
    if (!*m) {
      fmt::print(stderr, "websocket_client: the server closed after {} of {} messages\n", i,
                 expected);
      co_return 1;
    }
    if ((*m)->is_text())
      fmt::print("text: {}\n", (*m)->text());
    else
      fmt::print("binary: {} bytes\n", (*m)->data.size());
  }
  auto rep = co_await ws->graceful_close(st.close_code, st.close_reason);
  if (!rep.peer_close_seen) {
    fmt::print(stderr, "websocket_client: close: {}\n", rep);
    co_return 1;
  }
  fmt::print("closed: {} {}\n", ws->peer_close()->code, ws->peer_close()->reason);
  co_return 0;
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv,
                        {"url", "message", "count", "binary-size", "deflate", "subprotocol",
                         "close-code", "close-reason"},
                        {"ws://127.0.0.1:7002/", "hello", "1", "0", "on", "(none)", "1000", ""});
  settings st;
  st.url = opt.get("url", "ws://127.0.0.1:7002/");
  st.message = opt.get("message", "hello");
  st.count = opt.number("count", 1, 0, 1'000'000);
  st.binary_size = opt.number("binary-size", 0, 0, 1L << 30);
  st.close_code = static_cast<std::uint16_t>(opt.number("close-code", 1000, 1000, 4999));
  st.close_reason = opt.get("close-reason", "");
  st.ws.handshake.offer_deflate = opt.get("deflate", "on") == "on";
  if (opt.has("subprotocol")) st.ws.handshake.subprotocols = {opt.get("subprotocol", "")};
  auto io_owner = examples::start_io_context("websocket_client");
  if (!io_owner) return 1;
  return sync_wait(*io_owner, run(*io_owner, st));
}
