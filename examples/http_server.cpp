// http_server: a small HTTP/1.1 server on sluice.
//
//   http_server --host 127.0.0.1 --port 0 [--max-body BYTES] [--drain-ms MS]
//
// GET / answers a short text; POST /echo answers with the request body. Prints
// "listening on HOST:PORT" first. The first SIGINT or SIGTERM drains: it stops
// accepting, lets requests in flight finish (their responses carry "Connection:
// close"), closes idle connections and exits 0 — or resets what is left at the drain
// deadline. A second signal during the drain aborts at once (exit 1).
#include "options.hpp"

#include <csignal>
#include <fmt/format.h>
#include <sluice/http/server.hpp>
#include <sluice/server.hpp>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

task<http::response> route(const http::request& req, std::string body) {
  http::response r;
  r.headers.add("Content-Type", "text/plain");
  if (req.target == "/") {
    if (req.method != "GET" && req.method != "HEAD") {
      r.status = 405;
      r.headers.add("Allow", "GET, HEAD");
      r.body = "method not allowed\n";
    } else {
      r.body = "hello from sluice\n";
    }
  } else if (req.target == "/echo") {
    if (req.method != "POST") {
      r.status = 405;
      r.headers.add("Allow", "POST");
      r.body = "method not allowed\n";
    } else {
      r.body = std::move(body);
      r.headers = {};
      r.headers.add("Content-Type", "application/octet-stream");
    }
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  co_return r;
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv, {"host", "port", "max-body", "drain-ms"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 8080, 0, 65535));
  http::server_options o;
  o.limits.max_body = static_cast<std::size_t>(opt.number("max-body", 8 << 20, 0, 1L << 30));
  const std::chrono::milliseconds drain(opt.number("drain-ms", 10'000, 0, 3'600'000));

  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "http_server: {}\n", ep.error().message());
    return 2;
  }
  auto io_owner = examples::start_io_context("http_server");
  if (!io_owner) return 1;
  io_context& io = *io_owner;
  auto acc = tcp::acceptor::bind(io, *ep);
  if (!acc) {
    fmt::print(stderr, "http_server: {}\n", acc.error().message());
    return 1;
  }
  signal_set sigs(io, {SIGINT, SIGTERM});
  server srv(io, std::move(*acc));
  fmt::print("listening on {}\n", srv.local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "http_server: backend {}\n", io.backend_name());
  auto handler = [o](tcp::stream& s, stop_token) -> task<void> {
    auto r = co_await http::serve_connection(s, route, o);
    if (!r && r.error() != errc::operation_aborted && r.error() != errc::connection_reset &&
        r.error() != errc::broken_pipe && r.error() != errc::not_a_socket)
      fmt::print(stderr, "http_server: {}\n", r.error().message());
  };
  return sync_wait(io, serve_until_signalled(srv, handler, sigs, drain, "http_server"));
}
