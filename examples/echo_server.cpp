// echo_server: echoes every byte back, one coroutine per connection.
//
//   echo_server --host 127.0.0.1 --port 0
//
// Prints "listening on HOST:PORT" first (port 0 picks a free one), then runs until
// SIGINT or SIGTERM: it stops accepting, closes the connections and exits 0.
#include "options.hpp"

#include <array>
#include <csignal>
#include <fmt/format.h>
#include <optional>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

task<void> echo(tcp::stream s, std::stop_token stop) {
  (void)s.set_nodelay(true);
  std::array<std::byte, 16384> buf;
  std::stop_callback on_stop(stop, [&s]() noexcept { s.close(); });
  for (;;) {
    auto n = co_await s.recv(buf);
    if (!n || *n == 0) break; // error, or the peer closed
    auto w = co_await s.send_all(std::span(buf.data(), *n));
    if (!w) break;
  }
}

task<void> accept_loop(io_context& io, tcp::acceptor& acc, std::stop_token stop) {
  for (;;) {
    auto s = co_await acc.accept();
    if (!s) {
      if (s.error() == errc::operation_aborted) break; // shutting down
      fmt::print(stderr, "echo_server: {}\n", s.error().message());
      if (s.error() == errc::too_many_open_files) {
        // Back off instead of spinning; existing connections keep being served.
        (void)co_await sleep_for(std::chrono::milliseconds(50));
      }
      continue;
    }
    spawn(io, echo(std::move(*s), stop));
  }
}

task<void> wait_for_signal(signal_set& sigs, std::stop_source& stop, tcp::acceptor& acc) {
  auto sig = co_await sigs.wait();
  if (sig) fmt::print(stderr, "echo_server: signal {}, shutting down\n", *sig);
  acc.close();
  stop.request_stop();
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv, {"host", "port"});
  const std::string host = opt.get("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(opt.number("port", 7000, 0, 65535));

  auto ep = endpoint::parse(host, port);
  if (!ep) {
    fmt::print(stderr, "echo_server: {}\n", ep.error().message());
    return 2;
  }
  std::optional<io_context> maybe_io;
  try {
    maybe_io.emplace(); // SLUICE_BACKEND=uring|asio forces a backend
  } catch (const std::system_error& e) {
    fmt::print(stderr, "{}: cannot start an io_context: {}\n", argv[0], e.what());
    return 1;
  }
  io_context& io = *maybe_io;
  auto acc = tcp::acceptor::bind(io, *ep);
  if (!acc) {
    fmt::print(stderr, "echo_server: {}\n", acc.error().message());
    return 1;
  }
  signal_set sigs(io, {SIGINT, SIGTERM});
  std::stop_source stop;
  fmt::print("listening on {}\n", acc->local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "echo_server: backend {}\n", io.backend_name());
  spawn(io, accept_loop(io, *acc, stop.get_token()));
  spawn(io, wait_for_signal(sigs, stop, *acc));
  io.run();
  return 0;
}
