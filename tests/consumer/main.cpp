// A program outside sluice's tree, built against an installed sluice (find_package or
// pkg-config) or sluice as a subproject (add_subdirectory): the README's first program,
// plus a client that checks the echo and ends it. Prints "consumer: echoed ping".
#include <sluice/sluice.hpp>

#include <cstring>
#include <string_view>

using namespace sluice;

task<void> session(tcp::stream s) {
  std::array<std::byte, 4096> buf;
  for (;;) {
    auto n = co_await s.recv(buf); // result<size_t>; 0 = peer closed
    if (!n || *n == 0) break;
    if (!co_await s.send_all(std::span(buf).first(*n))) break;
  }
}

task<void> accept_loop(io_context& io, tcp::acceptor& acc) {
  for (;;) {
    auto s = co_await acc.accept(); // result<tcp::stream>
    if (!s) break;                  // closed by the client below
    spawn(io, session(std::move(*s)));
  }
}

task<int> client(tcp::acceptor& acc) {
  auto c = co_await tcp::connect(*acc.context(), acc.local_endpoint());
  if (!c) co_return 1;
  const std::string_view ping = "ping";
  if (!co_await c->send_all(std::as_bytes(std::span(ping.data(), ping.size())))) co_return 1;
  std::array<std::byte, 4> back;
  std::size_t got = 0;
  while (got < back.size()) {
    auto n = co_await c->recv(std::span(back).subspan(got));
    if (!n || *n == 0) co_return 1;
    got += *n;
  }
  acc.close(); // the accept loop ends
  const bool same = std::memcmp(back.data(), ping.data(), back.size()) == 0;
  static_assert(SLUICE_VERSION >= 100); // sluice/version.hpp comes with sluice.hpp
  fmt::print("consumer: {} {} (sluice {}, backend {})\n", same ? "echoed" : "garbled", ping,
             version_string, acc.context()->backend_name());

  co_return same ? 0 : 1;
}

int main() {
  io_context io;
  auto acc = tcp::acceptor::bind(io, *endpoint::parse("127.0.0.1:0"));
  if (!acc) {
    fmt::print("{}\n", acc.error().message());
    return 1;
  }
  spawn(io, accept_loop(io, *acc));
  return sync_wait(io, client(*acc));
}
