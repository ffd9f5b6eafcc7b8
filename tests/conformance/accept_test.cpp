// Accepting: with io_uring one multishot accept serves every accept(), and connections
// that arrive while nobody accepts wait in a bounded queue, then in the kernel's listen
// backlog. On every backend: nothing is lost, order is kept, closing and destroying
// release every descriptor.
#include "../support.hpp"

#include <optional>
#include <vector>

#ifndef _WIN32
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

using namespace sluice;
using namespace test;

namespace {

// True where accepts run ahead of accept() (io_uring with multishot accept).
bool accepts_ahead(const io_context& io) {
  return io.backend_name() == "uring" &&
         io.backend_description().find("accept: one per connection") == std::string::npos;
}

// Connects to `ep` and sends `tag`, so that the accepting side can tell who it got.
task<result<tcp::stream>> connect_tagged(io_context& io, endpoint ep, std::string tag) {
  auto c = co_await tcp::connect(io, ep);
  if (!c) co_return c;
  auto sent = co_await c->send_all(bytes(tag));
  if (!sent) co_return std::move(sent).error();
  co_return c;
}

// Waits (bounded) until `acc` holds `n` connections accepted ahead.
task<void> until_queued(io_context& io, const tcp::acceptor& acc, std::size_t n) {
  for (int i = 0; i < 500 && acc.queued() < n; ++i)
    (void)co_await sleep_for(io, std::chrono::milliseconds(1));
}

#ifndef _WIN32
// A blocking connect(2) to 127.0.0.1:port, made while the loop does not run: the kernel
// completes it (it waits in the listen backlog) and wakes whoever waits on the socket.
int connect_blocking(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Accepts until accept() fails; says how it ended.
task<void> accept_until_error(tcp::acceptor& acc, std::vector<tcp::stream>& got, std::string& end) {
  for (;;) {
    auto s = co_await acc.accept();
    if (!s) {
      end = s.error().code() == errc::operation_aborted ? "aborted" : s.error().message();
      co_return;
    }
    got.push_back(std::move(*s));
  }
}

// Both acceptors armed (the first one first); two connections while the loop does not
// run, then the first stops; waits (bounded) until both are accepted, then closes.
task<void> connect_while_stopping(io_context& io, tcp::acceptor& first, tcp::acceptor& second,
                                  const std::vector<tcp::stream>& a,
                                  const std::vector<tcp::stream>& b, std::vector<int>& clients) {
  (void)co_await sleep_for(io, std::chrono::milliseconds(5));
  for (int i = 0; i < 2; ++i)
    clients.push_back(connect_blocking(first.local_endpoint().port()));
  first.stop_accepting();
  for (int i = 0; i < 5000 && a.size() + b.size() < 2; ++i)
    (void)co_await sleep_for(io, std::chrono::milliseconds(1));
  second.close();
  first.close();
}
#endif

} // namespace

TEST_CASE("Connections that arrive while nobody accepts wait in a bounded queue, then in the "
          "kernel's backlog; accept() takes every one, in order") {
  io_context::options o;
  o.accept_ahead = 4;
  io_context io(o);
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  constexpr int total = 14;
  std::size_t after_first_wave = 99, after_second_wave = 99;
  std::vector<std::string> got;
  std::vector<tcp::stream> clients;
  auto body = [&]() -> task<bool> {
    // One accept() arms the accepting; then nobody accepts for a while.
    auto [c0, s0] = co_await when_all(connect_tagged(io, acc->local_endpoint(), "----"),
                                      as_task(acc->accept()));
    if (!c0 || !s0) co_return false;
    for (int i = 0; i < 4; ++i) {
      auto c = co_await connect_tagged(io, acc->local_endpoint(), fmt::format("{:04}", i));
      if (!c) co_return false;
      clients.push_back(std::move(*c));
    }
    co_await until_queued(io, *acc, 4);
    after_first_wave = acc->queued();
    for (int i = 4; i < total; ++i) { // past the bound: the kernel's backlog holds these
      auto c = co_await connect_tagged(io, acc->local_endpoint(), fmt::format("{:04}", i));
      if (!c) co_return false;
      clients.push_back(std::move(*c));
    }
    for (int i = 0; i < 20; ++i) // time for accepts the bound should have stopped
      (void)co_await sleep_for(io, std::chrono::milliseconds(1));
    after_second_wave = acc->queued();
    for (int i = 0; i < total; ++i) {
      auto s = co_await with_timeout(acc->accept(), std::chrono::seconds(10));
      if (!s) co_return false;
      got.push_back(co_await recv_exactly(*s, 4));
    }
    co_return true;
  };
  REQUIRE(sync_wait(io, body()));
  CAPTURE(io.backend_description());
  if (accepts_ahead(io)) {
    CHECK(after_first_wave == 4);
    CHECK(after_second_wave == 4);
  } else { // a single-shot accept runs only while an accept() waits
    CHECK(after_first_wave == 0);
    CHECK(after_second_wave == 0);
  }
  REQUIRE(got.size() == static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i)
    CHECK(got[static_cast<std::size_t>(i)] == fmt::format("{:04}", i));
  CHECK(acc->queued() == 0);
}

TEST_CASE("Closing an acceptor closes the connections it accepted ahead and ends a waiting "
          "accept() with operation_aborted") {
  const long fds_before = open_descriptors();
  {
    io_context io;
    auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
    REQUIRE(acc);
    std::vector<tcp::stream> clients;
    std::vector<std::string> client_saw;
    result<tcp::stream> waiting = error(errc::not_a_socket, "not run");
    auto body = [&]() -> task<bool> {
      auto [c0, s0] =
          co_await when_all(tcp::connect(io, acc->local_endpoint()), as_task(acc->accept()));
      if (!c0 || !s0) co_return false;
      for (int i = 0; i < 3; ++i) {
        auto c = co_await tcp::connect(io, acc->local_endpoint());
        if (!c) co_return false;
        clients.push_back(std::move(*c));
      }
      co_await until_queued(io, *acc, accepts_ahead(io) ? 3 : 0);
      acc->close(); // the queued ones are closed; the backlog's are reset by the kernel
      for (auto& c : clients) {
        std::array<std::byte, 8> buf;
        auto r = co_await with_timeout(c.recv(buf), std::chrono::seconds(5));
        client_saw.push_back(!r ? r.error().code().message() : fmt::format("{} bytes", *r));
      }
      co_return true;
    };
    REQUIRE(sync_wait(io, body()));
    REQUIRE(client_saw.size() == 3);
    for (const auto& saw : client_saw) { // the end of the stream, or a reset: never a timeout
      CAPTURE(saw);
      CHECK((saw == "0 bytes" || saw.find("reset") != std::string::npos));
    }

    // A waiting accept() when its acceptor closes.
    auto acc2 = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
    REQUIRE(acc2);
    auto waiter = [&]() -> task<void> { waiting = co_await acc2->accept(); };
    auto closer = [&]() -> task<void> {
      (void)co_await sleep_for(io, std::chrono::milliseconds(5));
      acc2->close();
    };
    sync_wait(io, when_all(waiter(), closer()));
    REQUIRE(!waiting);
    CHECK(waiting.error() == errc::operation_aborted);
  }
  if (fds_before >= 0) CHECK(open_descriptors() == fds_before);
}

TEST_CASE("An accept() that times out or is cancelled loses no connection: the next accept() "
          "gets it") {
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  std::stop_source src;
  std::string got;
  std::error_code first, second;
  auto body = [&]() -> task<bool> {
    auto timed = co_await with_timeout(acc->accept(), std::chrono::milliseconds(10));
    if (!timed) first = timed.error().code();
    src.request_stop();
    auto stopped = co_await with_stop_token(as_task(acc->accept()), src.get_token());
    if (!stopped) second = stopped.error().code();
    // The accepting may still be armed: this connection must reach the next accept().
    auto c = co_await connect_tagged(io, acc->local_endpoint(), "late");
    if (!c) co_return false;
    (void)co_await sleep_for(io, std::chrono::milliseconds(5));
    auto s = co_await with_timeout(acc->accept(), std::chrono::seconds(10));
    if (!s) co_return false;
    got = co_await recv_exactly(*s, 4);
    co_return true;
  };
  REQUIRE(sync_wait(io, body()));
  CHECK(first == errc::timed_out);
  CHECK(second == errc::operation_aborted);
  CHECK(got == "late");
}

TEST_CASE("Destroying an io_context with connections accepted ahead and the accepting armed "
          "releases every descriptor") {
  const long fds_before = open_descriptors();
  for (int round = 0; round < 2; ++round) {
    std::optional<io_context> ctx;
    ctx.emplace();
    io_context& io = *ctx;
    auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
    REQUIRE(acc);
    std::vector<tcp::stream> clients;
    auto body = [&]() -> task<bool> {
      auto [c0, s0] =
          co_await when_all(tcp::connect(io, acc->local_endpoint()), as_task(acc->accept()));
      if (!c0 || !s0) co_return false;
      for (int i = 0; i < 3; ++i) {
        auto c = co_await tcp::connect(io, acc->local_endpoint());
        if (!c) co_return false;
        clients.push_back(std::move(*c));
      }
      co_await until_queued(io, *acc, accepts_ahead(io) ? 3 : 0);
      co_return true;
    };
    REQUIRE(sync_wait(io, body()));
    // Round 0: the acceptor goes first, then the context; round 1: the context first
    // (the acceptor, destroyed after it, must not touch it).
    if (round == 0) acc = error(errc::not_a_socket, "dropped");
    clients.clear();
    ctx.reset(); // round 1: the acceptor outlives its context
  }
  if (fds_before >= 0) CHECK(open_descriptors() == fds_before);
}

TEST_CASE("stop_accepting() keeps what the OS accepted (accept() returns it, then ends with "
          "operation_aborted) and leaves the socket listening for its next holder") {
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  std::vector<std::string> first_holder, next_holder;
  std::vector<tcp::stream> clients;
  std::string end_of_first = "not reached";
  auto body = [&]() -> task<bool> {
    auto [c0, s0] = co_await when_all(connect_tagged(io, acc->local_endpoint(), "----"),
                                      as_task(acc->accept()));
    if (!c0 || !s0) co_return false;
    for (int i = 0; i < 3; ++i) {
      auto c = co_await connect_tagged(io, acc->local_endpoint(), fmt::format("{:04}", i));
      if (!c) co_return false;
      clients.push_back(std::move(*c));
    }
    co_await until_queued(io, *acc, accepts_ahead(io) ? 3 : 0);
    acc->stop_accepting();
    // Connected after the stop: the kernel's backlog keeps it for the next holder — or,
    // with io_uring, the stopping one takes it when it sweeps the backlog as its accept
    // ends (a wake-up its cancelled accept took may have been this connection's).
    auto late = co_await connect_tagged(io, acc->local_endpoint(), "late");
    if (!late) co_return false;
    clients.push_back(std::move(*late));
    for (;;) {
      auto s = co_await with_timeout(acc->accept(), std::chrono::seconds(10));
      if (!s) {
        end_of_first =
            s.error().code() == errc::operation_aborted ? "aborted" : s.error().message();
        break;
      }
      first_holder.push_back(co_await recv_exactly(*s, 4));
    }
    // The same listening socket, taken by another acceptor (as by another process).
    auto next = tcp::acceptor::adopt(io, acc->release());
    if (!next) co_return false;
    while (first_holder.size() + next_holder.size() < 4) {
      auto s = co_await with_timeout(next->accept(), std::chrono::seconds(10));
      if (!s) co_return false;
      next_holder.push_back(co_await recv_exactly(*s, 4));
    }
    co_return true;
  };
  REQUIRE(sync_wait(io, body()));
  CAPTURE(io.backend_description(), first_holder, next_holder);
  CHECK(end_of_first == "aborted");
  if (accepts_ahead(io)) {
    REQUIRE(first_holder.size() >= 3);
    CHECK(std::vector<std::string>(first_holder.begin(), first_holder.begin() + 3) ==
          std::vector<std::string>{"0000", "0001", "0002"});
  }
  std::vector<std::string> all = first_holder;
  all.insert(all.end(), next_holder.begin(), next_holder.end());
  CHECK(all == std::vector<std::string>{"0000", "0001", "0002", "late"});
}

#ifndef _WIN32
TEST_CASE("An acceptor that stops while a connection's wake-up is on its way leaves no "
          "connection behind: the socket's other holder, or the stopping one, takes each") {
  // With io_uring an armed accept is an exclusive waiter on the socket: a wake-up it
  // takes while its cancel is pending is spent, and the connection stays in the backlog
  // with the other holder never woken. The stopping acceptor then takes what waits.
  io_context io;
  auto first = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(first);
  // The same listening socket held twice, as by two processes during a hand-over.
  auto second = tcp::acceptor::adopt(io, ::dup(first->native_handle()));
  REQUIRE(second);
  std::vector<tcp::stream> by_first, by_second;
  std::vector<int> clients;
  std::string end_first = "not reached", end_second = "not reached";
  sync_wait(io,
            when_all(accept_until_error(*first, by_first, end_first),
                     accept_until_error(*second, by_second, end_second),
                     connect_while_stopping(io, *first, *second, by_first, by_second, clients)));
  CAPTURE(io.backend_description(), by_first.size(), by_second.size(), end_second);
  CHECK(clients.size() == 2);
  CHECK(std::count(clients.begin(), clients.end(), -1) == 0);
  CHECK(by_first.size() + by_second.size() == 2);
  CHECK(end_first == "aborted");
  for (int fd : clients)
    if (fd >= 0) ::close(fd);
}
#endif
