// disconnect_data: two peers exchange messages over the framing transport, then one
// closes with a reason that the other reads through recv_disconnect().
//
//   disconnect_data [--reason TEXT]
//
// Both peers run in this process, over loopback.
#include "options.hpp"

#include <fmt/format.h>
#include <optional>
#include <sluice/sluice.hpp>

using namespace sluice;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
std::string_view text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The server: answers each message, and when the client closes, reads its reason.
task<result<void>> serve_one(tcp::acceptor& acc) {
  auto s = co_await acc.accept();
  if (!s) co_return std::move(s).error();
  framed_stream f(std::move(*s));
  for (;;) {
    auto m = co_await f.recv();
    if (!m) co_return std::move(m).error();
    if (!*m) break; // the client's CLOSE arrived
    fmt::print("server: got \"{}\"\n", text(**m));
    auto r = co_await f.send(bytes(fmt::format("ack {}", text(**m))));
    if (!r) co_return r;
  }
  std::array<std::byte, 256> reason;
  auto n = co_await f.recv_disconnect(reason);
  if (!n) co_return std::move(n).error();
  fmt::print("server: client disconnected with reason \"{}\"\n", text(std::span(reason).first(*n)));
  // Our own side: close with a reason too.
  co_return co_await f.send_disconnect(bytes("server: goodbye"));
}

task<result<void>> client(io_context& io, endpoint ep, std::string reason) {
  auto s = co_await tcp::connect(io, ep);
  if (!s) co_return std::move(s).error();
  framed_stream f(std::move(*s));
  for (std::string_view msg : {"hello", "how are you?"}) {
    if (auto r = co_await f.send(bytes(msg)); !r) co_return r;
    auto answer = co_await f.recv();
    if (!answer) co_return std::move(answer).error();
    if (!*answer) co_return error(errc::connection_aborted, "server closed early");
    fmt::print("client: got \"{}\"\n", text(**answer));
  }
  if (auto r = co_await f.send_disconnect(bytes(reason)); !r) co_return r;
  auto end = co_await f.recv(); // wait for the server's CLOSE
  if (!end) co_return std::move(end).error();
  std::array<std::byte, 256> theirs;
  auto n = co_await f.recv_disconnect(theirs);
  if (!n) co_return std::move(n).error();
  fmt::print("client: server disconnected with reason \"{}\"\n", text(std::span(theirs).first(*n)));
  co_return result<void>();
}

} // namespace

int main(int argc, char** argv) {
  examples::options opt(argc, argv, {"reason"});
  const std::string reason = opt.get("reason", "client done, bye");
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  if (!acc) {
    fmt::print(stderr, "disconnect_data: {}\n", acc.error().message());
    return 1;
  }
  fmt::print("transports:");
  for (const auto& t : transports())
    fmt::print(" {} ({})", t.name,
               t.carries_disconnect_data ? "disconnect data" : "no disconnect data");
  fmt::print("\n");
  auto [s, c] = sync_wait(io, when_all(serve_one(*acc), client(io, acc->local_endpoint(), reason)));
  for (auto* r : {&s, &c})
    if (!*r) {
      fmt::print(stderr, "disconnect_data: {}\n", r->error().message());
      return 1;
    }
  return 0;
}
