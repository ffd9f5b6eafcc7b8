// http_server: a small HTTP/1.1 server on sluice.
//
//   http_server --host 127.0.0.1 --port 0 [--max-body BYTES] [--drain-ms MS]
//               [--header-timeout-ms MS] [--body-timeout-ms MS] [--min-body-rate B/S]
//               [--send-timeout-ms MS] [--idle-timeout-ms MS] [--nodelay 0|1] [--park 0|1]
//               [--park-after-ms MS] [--threads N] [--share handoff|reuseport]
//               [--work-us N]
//   http_server --help          (every option with its default)
//
// GET / answers a short text; POST /echo answers with the request body; GET
// /hello/NAME?greeting=G answers JSON (an http::router). --work-us N
// makes every response first spend N microseconds of CPU (a stand-in for application
// work, for scaling benchmarks). --threads N runs a loop per thread on one port (see
// examples/echo_server.cpp for --share). Prints
// "listening on HOST:PORT" first. The first SIGINT or SIGTERM drains: it stops
// accepting, lets requests in flight finish (their responses carry "Connection:
// close"), closes idle connections and exits 0 — or resets what is left at the drain
// deadline. A second signal during the drain aborts at once (exit 1).
#include "options.hpp"

#include <csignal>
#include <fmt/format.h>
#include <sluice/http/router.hpp>
#include <sluice/http/server.hpp>
#include <sluice/server.hpp>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

// CPU each response spends first (--work-us).
std::chrono::microseconds work{0};

void spend_cpu(std::chrono::microseconds d) {
  if (d.count() <= 0) return;
  const auto until = std::chrono::steady_clock::now() + d;
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < until)
    for (int i = 0; i < 64; ++i)
      spin = spin + 1;
}

// The routes: GET / (and HEAD), POST /echo, and GET /hello/{name}?greeting=... which
// answers JSON. A router answers 404 and 405 (with Allow) by itself.
http::router routes() {
  http::router r;
  r.get("/", [](http::routed&) {
    spend_cpu(work);
    return http::text("hello from sluice\n");
  });
  r.post("/echo", [](http::routed& q) {
    spend_cpu(work);
    http::response out;
    out.headers.add("Content-Type", "application/octet-stream");
    out.body = std::move(q.body);
    return out;
  });
  r.get("/hello/{name}", [](http::routed& q) {
    return http::json(fmt::format("{{\"greeting\":\"{}\",\"name\":\"{}\"}}\n",
                                  http::json_escape(q.query_value("greeting", "hello")),
                                  http::json_escape(q.param("name"))));
  });
  return r;
}

} // namespace

int main(int argc, char** argv) {
  const http::server_options d; // the defaults, for --help
  auto ms = [](std::chrono::milliseconds v) { return std::to_string(v.count()); };
  examples::options opt(argc, argv,
                        {"host", "port", "max-body", "drain-ms", "idle-timeout-ms",
                         "header-timeout-ms", "body-timeout-ms", "min-body-rate", "send-timeout-ms",
                         "nodelay", "park", "park-after-ms", "threads", "share", "work-us"},
                        {"127.0.0.1", "8080", std::to_string(8 << 20), "10000", ms(d.idle_timeout),
                         ms(d.header_timeout) + " (at most " + ms(http::max_header_timeout) + ")",
                         ms(d.body_timeout), std::to_string(d.min_body_rate) + " bytes/s",
                         ms(d.send_timeout), "1", "1 (0: a coroutine per connection, idle or not)",
                         ms(d.park_after), "1", "handoff (or reuseport)", "0"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 8080, 0, 65535));
  constexpr long hour = 3'600'000;
  http::server_options o;
  o.limits.max_body = static_cast<std::size_t>(opt.number("max-body", 8 << 20, 0, 1L << 30));
  o.idle_timeout =
      std::chrono::milliseconds(opt.number("idle-timeout-ms", d.idle_timeout.count(), 1, hour));
  o.header_timeout = std::chrono::milliseconds(opt.number(
      "header-timeout-ms", d.header_timeout.count(), 1, http::max_header_timeout.count()));
  o.body_timeout =
      std::chrono::milliseconds(opt.number("body-timeout-ms", d.body_timeout.count(), 1, hour));
  o.min_body_rate = static_cast<std::size_t>(
      opt.number("min-body-rate", static_cast<long>(d.min_body_rate), 0, 1L << 30));
  o.send_timeout =
      std::chrono::milliseconds(opt.number("send-timeout-ms", d.send_timeout.count(), 1, hour));
  o.tcp_nodelay = opt.number("nodelay", 1, 0, 1) != 0;
  const bool park = opt.number("park", 1, 0, 1) != 0;
  const auto threads = static_cast<unsigned>(opt.number("threads", 1, 1, 1024));
  const port_sharing sharing = examples::sharing_option(opt);
  work = std::chrono::microseconds(opt.number("work-us", 0, 0, 1'000'000));
  o.park_after =
      std::chrono::milliseconds(opt.number("park-after-ms", d.park_after.count(), 0, hour));
  const std::chrono::milliseconds drain(opt.number("drain-ms", 10'000, 0, hour));

  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "http_server: {}\n", ep.error().message());
    return 2;
  }
  const http::handler route = routes().to_handler();
  // --park 0: one coroutine serves each connection from accept to close.
  auto per_connection = [&o, &route](tcp::stream& s, stop_token) -> task<void> {
    auto r = co_await http::serve_connection(s, route, o);
    if (!r && r.error() != errc::operation_aborted && r.error() != errc::connection_reset &&
        r.error() != errc::broken_pipe && r.error() != errc::not_a_socket)
      fmt::print(stderr, "http_server: {}\n", r.error().message());
  };
  if (threads > 1 && park) // a loop per thread, one port
    return examples::serve_on_threads("http_server", threads, *ep, sharing,
                                      http::parking_handler(route, o), drain);
  if (threads > 1)
    return examples::serve_on_threads("http_server", threads, *ep, sharing,
                                      server::handler(per_connection), drain);
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
  // Idle keep-alive connections are parked: the server holds them with no coroutine
  // frame and no buffer until their next request arrives.
  if (park)
    return sync_wait(io, serve_until_signalled(srv, http::parking_handler(route, o), sigs, drain,
                                               "http_server"));
  return sync_wait(io, serve_until_signalled(srv, per_connection, sigs, drain, "http_server"));
}
