// udp_echo: sends every datagram back to its sender.
//
//   udp_echo --host 127.0.0.1 --port 0 [--max-datagram 65535] [--receive lent|copy]
//
// Prints "listening on HOST:PORT" first (port 0 picks a free one), then echoes until
// SIGINT or SIGTERM and exits 0. A datagram larger than --max-datagram is not echoed
// cut short: it is dropped and logged with its size and sender.
//
// --receive lent (the default) receives with recv_some_from(): each datagram in a
// buffer lent by the io_context's pool (on io_uring, one multishot recvmsg on the
// provided-buffer ring). --receive copy uses recv_from() into the server's own buffer.
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

// The datagram did not fit: logged, not echoed cut short.
bool dropped(const error& e, counts& n) {
  if (e != errc::message_too_large) return false;
  fmt::print(stderr, "udp_echo: dropped: {}\n", e.message());
  ++n.dropped;
  return true;
}

task<result<void>> echo_lent(udp::socket& s, counts& n) {
  for (;;) {
    auto d = co_await s.recv_some_from();
    if (!d) {
      if (dropped(d.error(), n)) continue;
      co_return std::move(d).error();
    }
    auto w = co_await s.send_to(d->data.data(), d->from);
    d->data.release(); // back to the pool before the next receive
    if (!w) {
      fmt::print(stderr, "udp_echo: {}\n", w.error().message());
      continue;
    }
    ++n.echoed;
  }
}

task<result<void>> echo(udp::socket& s, std::size_t max, counts& n) {
  std::vector<std::byte> buf(max);
  for (;;) {
    auto d = co_await s.recv_from(buf);
    if (!d) {
      if (dropped(d.error(), n)) continue;
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

task<int> run(io_context& io, udp::socket& s, std::size_t max, bool lent) {
  signal_set sigs(io, {SIGINT, SIGTERM});
  counts n;
  // Chosen before the co_await: GCC 12 destroys a ?: temporary inside one twice.
  task<result<void>> work = lent ? echo_lent(s, n) : echo(s, max, n);
  auto first = co_await when_any(std::move(work), as_task(sigs.wait()));
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
  examples::options opt(argc, argv, {"host", "port", "max-datagram", "receive"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 7001, 0, 65535));
  const auto max = static_cast<std::size_t>(opt.number("max-datagram", 65535, 1, 65535));
  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "udp_echo: {}\n", ep.error().message());
    return 2;
  }
  const std::string receive = opt.get("receive", "lent");
  if (receive != "lent" && receive != "copy") {
    fmt::print(stderr, "udp_echo: --receive takes lent or copy, not '{}'\n", receive);
    return 2;
  }
  io_context::options o;
  if (receive == "lent") // pool buffers that hold the largest datagram echoed
    o.recv_buffer_size = max + udp::lent_datagram_overhead;
  auto io_owner = examples::start_io_context("udp_echo", o);
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
  return sync_wait(io, run(io, *s, max, receive == "lent"));
}
