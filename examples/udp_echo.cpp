// udp_echo: sends every datagram back to its sender.
//
//   udp_echo --host 127.0.0.1 --port 0 [--max-datagram 65535]
//
// Prints "listening on HOST:PORT" first (port 0 picks a free one), then echoes until
// SIGINT or SIGTERM and exits 0. A datagram larger than --max-datagram is not echoed
// cut short: it is dropped and logged with its size and sender.
#include "options.hpp"

#include <csignal>
#include <fmt/format.h>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

struct counts {
  std::uint64_t echoed = 0;
  std::uint64_t dropped = 0;
};

task<result<void>> echo(udp::socket& s, std::size_t max, counts& n) {
  std::vector<std::byte> buf(max);
  for (;;) {
    auto d = co_await s.recv_from(buf);
    if (!d) {
      if (d.error() == errc::message_too_large) { // reported, not echoed cut short
        fmt::print(stderr, "udp_echo: dropped: {}\n", d.error().message());
        ++n.dropped;
        continue;
      }
      co_return std::move(d).error();
    }
    auto w = co_await s.send_to(std::span(buf).first(d->size), d->from);
    if (!w) {
      // One peer's trouble (unreachable, say) is logged; the others are still served.
      fmt::print(stderr, "udp_echo: {}\n", w.error().message());
      continue;
    }
    ++n.echoed;
  }
}

task<int> run(io_context& io, udp::socket& s, std::size_t max) {
  signal_set sigs(io, {SIGINT, SIGTERM});
  counts n;
  auto first = co_await when_any(echo(s, max, n), as_task(sigs.wait()));
  if (first.index() == 0) {
    fmt::print(stderr, "udp_echo: {}\n", std::get<0>(first).error().message());
    co_return 1;
  }
  fmt::print(stderr, "udp_echo: signal {}: {} datagrams echoed, {} dropped\n",
             std::get<1>(first) ? *std::get<1>(first) : 0, n.echoed, n.dropped);
  co_return 0;
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv, {"host", "port", "max-datagram"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 7001, 0, 65535));
  const auto max = static_cast<std::size_t>(opt.number("max-datagram", 65535, 1, 65535));
  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "udp_echo: {}\n", ep.error().message());
    return 2;
  }
  auto io_owner = examples::start_io_context("udp_echo");
  if (!io_owner) return 1;
  io_context& io = *io_owner;
  auto s = udp::socket::bind(io, *ep);
  if (!s) {
    fmt::print(stderr, "udp_echo: {}\n", s.error().message());
    return 1;
  }
  fmt::print("listening on {}\n", *s->local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "udp_echo: backend {}\n", io.backend_name());
  std::fflush(stderr);
  return sync_wait(io, run(io, *s, max));
}
