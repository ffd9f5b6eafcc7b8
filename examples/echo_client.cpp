// echo_client: N connections, each sending a message and waiting for its echo, for a
// fixed time; prints messages/s and the p50/p99 round-trip latency.
//
//   echo_client --host 127.0.0.1 --port 7000 --conns 50 --size 64 --seconds 5
//
// Every echoed message is checked byte for byte; a mismatch, a failed connection or a
// server that closes early makes it exit 1.
#include "options.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <sluice/sluice.hpp>
#include <vector>

using namespace sluice;
using clock_type = std::chrono::steady_clock;

namespace {

struct conn_stats {
  std::vector<std::uint32_t> latencies_ns; // one per message
  std::string failure;
};

task<void> run_connection(io_context& io, endpoint ep, std::size_t size,
                          clock_type::time_point deadline, std::size_t index, conn_stats& stats) {
  auto s = co_await tcp::connect(io, ep);
  if (!s) {
    stats.failure = s.error().message();
    co_return;
  }
  (void)s->set_nodelay(true);
  std::vector<std::byte> out(size), in(size);
  stats.latencies_ns.reserve(1 << 16);
  for (std::uint64_t seq = 0;; ++seq) {
    const auto t0 = clock_type::now();
    if (t0 >= deadline) break;
    // A pattern that differs per connection and per message.
    const auto tag = static_cast<unsigned char>(index * 31 + seq);
    std::memset(out.data(), tag, size);
    auto w = co_await s->send_all(out);
    if (!w) {
      stats.failure = w.error().message();
      co_return;
    }
    std::size_t got = 0;
    while (got < size) {
      auto n = co_await s->recv(std::span(in).subspan(got));
      if (!n || *n == 0) {
        stats.failure = n ? "server closed the connection early" : n.error().message();
        co_return;
      }
      got += *n;
    }
    if (std::memcmp(in.data(), out.data(), size) != 0) {
      stats.failure = fmt::format("echo mismatch on message {}", seq);
      co_return;
    }
    const auto dt = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0);
    stats.latencies_ns.push_back(
        static_cast<std::uint32_t>(std::min<std::int64_t>(dt.count(), UINT32_MAX)));
  }
  (void)co_await s->shutdown_send();
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv, {"host", "port", "conns", "size", "seconds"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 7000, 1, 65535));
  const auto conns = static_cast<std::size_t>(opt.number("conns", 1, 1, 100000));
  const auto size = static_cast<std::size_t>(opt.number("size", 64, 1, 64 << 20));
  const double seconds = static_cast<double>(opt.number("seconds", 3, 1, 3600));

  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "echo_client: {}\n", ep.error().message());
    return 2;
  }
  auto io_owner = examples::start_io_context("echo_client");
  if (!io_owner) return 1;
  io_context& io = *io_owner;
  std::vector<conn_stats> stats(conns);
  const auto start = clock_type::now();
  const auto deadline = start + std::chrono::duration_cast<clock_type::duration>(
                                    std::chrono::duration<double>(seconds));
  std::vector<task<void>> all;
  for (std::size_t i = 0; i < conns; ++i)
    all.push_back(run_connection(io, *ep, size, deadline, i, stats[i]));
  sync_wait(io, when_all(std::move(all)));
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();

  std::vector<std::uint32_t> lat;
  std::size_t failed = 0;
  for (auto& s : stats) {
    lat.insert(lat.end(), s.latencies_ns.begin(), s.latencies_ns.end());
    if (!s.failure.empty()) {
      if (failed++ < 5) fmt::print(stderr, "echo_client: connection failed: {}\n", s.failure);
    }
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    if (lat.empty()) return 0.0;
    return lat[std::min(lat.size() - 1, static_cast<std::size_t>(p * lat.size()))] / 1000.0;
  };
  const double rate = lat.size() / elapsed;
  fmt::print("echo_client: {} connections, {}-byte messages, {:.1f} s, backend {}\n", conns, size,
             elapsed, io.backend_name());
  fmt::print("messages/s: {:.0f}\n", rate);
  fmt::print("p50 latency: {:.1f} us\n", pct(0.50));
  fmt::print("p99 latency: {:.1f} us\n", pct(0.99));
  fmt::print("result msgs_per_sec={:.0f} p50_us={:.1f} p99_us={:.1f} failed={} messages={}\n", rate,
             pct(0.50), pct(0.99), failed, lat.size());
  return failed == 0 && !lat.empty() ? 0 : 1;
}
