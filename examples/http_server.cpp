// http_server: a small HTTP/1.1 server on sluice.
//
//   http_server --host 127.0.0.1 --port 0 [--max-body BYTES]
//
// GET / answers a short text; POST /echo answers with the request body. Prints
// "listening on HOST:PORT" first; SIGINT or SIGTERM stops it: it stops accepting,
// lets requests in flight finish (their responses carry "Connection: close"), closes
// idle connections and exits 0.
#include "options.hpp"

#include <csignal>
#include <fmt/format.h>
#include <optional>
#include <sluice/http/server.hpp>
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

task<void> connection(tcp::stream s, http::server_options o, std::stop_token stop) {
  auto r = co_await http::serve_connection(std::move(s), route, o, stop);
  if (!r && r.error() != errc::operation_aborted && r.error() != errc::connection_reset &&
      r.error() != errc::broken_pipe)
    fmt::print(stderr, "http_server: {}\n", r.error().message());
}

task<void> accept_loop(io_context& io, tcp::acceptor& acc, http::server_options o,
                       std::stop_token stop) {
  for (;;) {
    auto s = co_await acc.accept();
    if (!s) {
      if (s.error() == errc::operation_aborted) break;
      fmt::print(stderr, "http_server: {}\n", s.error().message());
      if (s.error() == errc::too_many_open_files)
        (void)co_await sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    spawn(io, connection(std::move(*s), o, stop));
  }
}

task<void> wait_for_signal(signal_set& sigs, std::stop_source& stop, tcp::acceptor& acc) {
  auto sig = co_await sigs.wait();
  if (sig) fmt::print(stderr, "http_server: signal {}, shutting down\n", *sig);
  acc.close();
  stop.request_stop();
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv, {"host", "port", "max-body"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 8080, 0, 65535));
  http::server_options o;
  o.limits.max_body = static_cast<std::size_t>(opt.number("max-body", 8 << 20, 0, 1L << 30));

  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "http_server: {}\n", ep.error().message());
    return 2;
  }
  std::optional<io_context> maybe_io;
  try {
    maybe_io.emplace();
  } catch (const std::system_error& e) {
    fmt::print(stderr, "http_server: cannot start an io_context: {}\n", e.what());
    return 1;
  }
  io_context& io = *maybe_io;
  auto acc = tcp::acceptor::bind(io, *ep);
  if (!acc) {
    fmt::print(stderr, "http_server: {}\n", acc.error().message());
    return 1;
  }
  signal_set sigs(io, {SIGINT, SIGTERM});
  std::stop_source stop;
  fmt::print("listening on {}\n", acc->local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "http_server: backend {}\n", io.backend_name());
  spawn(io, accept_loop(io, *acc, o, stop.get_token()));
  spawn(io, wait_for_signal(sigs, stop, *acc));
  io.run();
  return 0;
}
