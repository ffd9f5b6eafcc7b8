// The comparison server: the same echo workload written the usual way with standalone
// Asio's C++20 coroutines (asio::awaitable, co_spawn, use_awaitable). Built twice:
// with Asio's default epoll reactor, and with ASIO_HAS_IO_URING + ASIO_DISABLE_EPOLL
// for its io_uring mode. Same command line and first output line as
// examples/echo_server, so the benchmark drives both the same way.
#include <asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

using asio::ip::tcp;

namespace {

asio::awaitable<void> echo(tcp::socket s) {
  s.set_option(tcp::no_delay(true));
  char buf[16384];
  for (;;) {
    asio::error_code ec;
    auto n = co_await s.async_read_some(asio::buffer(buf),
                                        asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    co_await asio::async_write(s, asio::buffer(buf, n),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
}

asio::awaitable<void> listener(tcp::acceptor& acc) {
  for (;;) {
    asio::error_code ec;
    auto s = co_await acc.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    asio::co_spawn(acc.get_executor(), echo(std::move(s)), asio::detached);
  }
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned short port = 7000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--host")
      host = argv[i + 1];
    else if (a == "--port")
      port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
  }
  asio::io_context io(1);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address(host), port));
  std::printf("listening on %s:%u\n", host.c_str(), unsigned(acc.local_endpoint().port()));
  std::fflush(stdout);
  asio::signal_set sigs(io, SIGINT, SIGTERM);
  sigs.async_wait([&](auto, int) {
    acc.close();
    io.stop();
  });
  asio::co_spawn(io, listener(acc), asio::detached);
  io.run();
  return 0;
}
