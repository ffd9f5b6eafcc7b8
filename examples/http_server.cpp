// http_server: a small HTTP/1.1 server on sluice.
//
//   http_server --host 127.0.0.1 --port 0 [--max-body BYTES] [--max-streamed-body BYTES]
//               [--drain-ms MS]
//               [--header-timeout-ms MS] [--body-timeout-ms MS] [--min-body-rate B/S]
//               [--send-timeout-ms MS] [--idle-timeout-ms MS] [--nodelay 0|1] [--park 0|1]
//               [--park-after-ms MS] [--threads N] [--share handoff|reuseport]
//               [--work-us N] [--proxy-protocol 0|1] [--handover PATH [--handover-step-ms N]]
//   http_server --help          (every option with its default)
//
// GET / answers a short text; POST /echo streams the request body back as it arrives
// (chunked, in bounded memory); GET /bytes/N streams N bytes; GET
// /hello/NAME?greeting=G answers JSON (an http::router). --work-us N
// makes every response first spend N microseconds of CPU (a stand-in for application
// work, for scaling benchmarks). GET /whoami answers the client's address as the
// server sees it; with --proxy-protocol 1 every connection must begin with a PROXY
// protocol header (a load balancer's send-proxy or send-proxy-v2), and the client it
// names is that address. --threads N runs a loop per thread on one port (see
// examples/echo_server.cpp for --share). Prints
// "listening on HOST:PORT" first. The first SIGINT or SIGTERM drains: it stops
// accepting, lets requests in flight finish (their responses carry "Connection:
// close"), closes idle connections and exits 0 — or resets what is left at the drain
// deadline. A second signal during the drain aborts at once (exit 1). Started by systemd
// with a socket unit (or systemd-socket-activate), it serves the listening socket passed
// to it instead of binding its own (with --threads N: one socket is handed off from loop
// 0, one per loop is each loop's own). With --handover PATH it can be replaced without
// refusing a connection: a second http_server started with the same PATH takes the
// listening sockets over, and this one drains and exits 0; SIGHUP starts that second
// one itself (the same binary, the same arguments: a binary upgrade). docs/service.md.
#include "options.hpp"

#include <csignal>
#include <fmt/format.h>
#include <limits>
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
  // Streams: the body goes back as it arrives, in bounded memory whatever its size
  // (with the request's Content-Length, or chunked when the request was).
  r.stream("POST", "/echo",
           [](http::routed& q, http::body_reader& body, http::response_writer& out) -> task<void> {
             spend_cpu(work);
             proto::http1::fields h;
             h.add("Content-Type", "application/octet-stream");
             std::optional<std::uint64_t> length;
             if (!q.head.chunked) length = q.head.content_length;
             if (!co_await out.start(200, std::move(h), length)) co_return;
             for (;;) {
               auto piece = co_await body.next();
               if (!piece || piece->empty()) co_return; // the server finishes the response
               if (!co_await out.write(*piece)) co_return;
             }
           });
  // N bytes of 'x', streamed with a Content-Length (GET /bytes/1048576).
  r.stream("GET", "/bytes/{n}",
           [](http::routed& q, http::body_reader&, http::response_writer& out) -> task<void> {
             std::uint64_t n = 0;
             for (char c : q.param("n")) {
               if (c < '0' || c > '9' || n > (std::uint64_t(1) << 40)) {
                 (void)co_await out.send(http::text("/bytes/N takes a number up to 2^40\n", 400));
                 co_return;
               }
               n = n * 10 + static_cast<std::uint64_t>(c - '0');
             }
             if (!co_await out.start(200, {}, n)) co_return;
             static const std::string block(64 * 1024, 'x'); // shared by every download
             for (std::uint64_t left = n; left != 0;) {
               const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(left, block.size()));
               if (!co_await out.write(std::string_view(block).substr(0, k))) co_return;
               left -= k;
             }
             (void)co_await out.finish();
           });
  r.get("/whoami", [](http::routed& q) { return http::text(q.head.remote + "\n"); });
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
  examples::options opt(
      argc, argv,
      {"host", "port", "max-body", "max-streamed-body", "drain-ms", "idle-timeout-ms",
       "header-timeout-ms", "body-timeout-ms", "min-body-rate", "send-timeout-ms", "nodelay",
       "park", "park-after-ms", "threads", "share", "work-us", "proxy-protocol", "handover",
       "handover-step-ms"},
      {"127.0.0.1", "8080", std::to_string(8 << 20) + " (bodies read whole)",
       "none (POST /echo streams)", "10000", ms(d.idle_timeout),
       ms(d.header_timeout) + " (at most " + ms(http::max_header_timeout) + ")", ms(d.body_timeout),
       std::to_string(d.min_body_rate) + " bytes/s", ms(d.send_timeout), "1",
       "1 (0: a coroutine per connection, idle or not)", ms(d.park_after), "1",
       "handoff (or reuseport)", "0", "0 (1: a PROXY header v1 or v2 begins each connection)",
       "none (PATH: take over from the server there, or be the one to take over from)"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 8080, 0, 65535));
  constexpr long hour = 3'600'000;
  http::server_options o;
  o.limits.max_body = static_cast<std::size_t>(opt.number("max-body", 8 << 20, 0, 1L << 30));
  if (opt.has("max-streamed-body"))
    o.max_streamed_body = static_cast<std::uint64_t>(
        opt.number("max-streamed-body", 0, 0, std::numeric_limits<long>::max()));
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
  std::optional<proxy_protocol_options> proxy;
  if (opt.number("proxy-protocol", 0, 0, 1) != 0) proxy.emplace();

  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "http_server: {}\n", ep.error().message());
    return 2;
  }
  const http::service route = routes().to_service();
  // --park 0: one coroutine serves each connection from accept to close.
  auto per_connection = [&o, &route](tcp::stream& s, stop_token) -> task<void> {
    auto r = co_await http::serve_connection(s, route, o);
    if (!r && r.error() != errc::operation_aborted && r.error() != errc::connection_reset &&
        r.error() != errc::broken_pipe && r.error() != errc::not_a_socket)
      fmt::print(stderr, "http_server: {}\n", r.error().message());
  };
  // --handover PATH: the listeners of the server running there, if one is.
  auto hs = examples::open_handover("http_server", opt, argc, argv);
  if (threads > 1 && park) // a loop per thread, one port
    return examples::serve_on_threads("http_server", threads, *ep, sharing,
                                      http::parking_handler(route, o), drain, proxy, hs);
  if (threads > 1)
    return examples::serve_on_threads("http_server", threads, *ep, sharing,
                                      server::handler(per_connection), drain, proxy, hs);
  auto io_owner = examples::start_io_context("http_server");
  if (!io_owner) return 1;
  io_context& io = *io_owner;
  // Taken over, or the service manager's (systemd socket activation), or bound here.
  signal_set sigs(io, {SIGINT, SIGTERM});
  server srv(io, examples::listener_for("http_server", io, *ep, hs));
  if (proxy) srv.set_proxy_protocol(*proxy);
  fmt::print("listening on {}\n", srv.local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "http_server: backend {}\n", io.backend_name());
  // Idle keep-alive connections are parked: the server holds them with no coroutine
  // frame and no buffer until their next request arrives.
  if (hs && park)
    return sync_wait(io, serve_until_signalled(srv, http::parking_handler(route, o), sigs, drain,
                                               "http_server", *hs));
  if (hs)
    return sync_wait(io,
                     serve_until_signalled(srv, per_connection, sigs, drain, "http_server", *hs));
  if (park)
    return sync_wait(io, serve_until_signalled(srv, http::parking_handler(route, o), sigs, drain,
                                               "http_server"));
  return sync_wait(io, serve_until_signalled(srv, per_connection, sigs, drain, "http_server"));
}
