// resolve(): names from /etc/hosts (no network here), service names, IP literals,
// clear errors, and a waiting coroutine or its loop going away before the answer.
#include "../support.hpp"

#include <sluice/net/resolve.hpp>
#include <thread>

using namespace sluice;
using namespace test;

namespace {
bool contains(const std::vector<endpoint>& v, const endpoint& e) {
  return std::find(v.begin(), v.end(), e) != v.end();
}
} // namespace

TEST_CASE("resolve: localhost with a port number and with a service name", "[threads]") {
  io_context io;
  auto r = sync_wait(io, resolve(io, "localhost", "8080"));
  REQUIRE(r);
  CHECK(contains(*r, endpoint::loopback_v4(8080)));
  for (const auto& ep : *r)
    CHECK(ep.port() == 8080);
  // No duplicates (getaddrinfo gives one entry per socket type without a hint).
  for (std::size_t i = 0; i < r->size(); ++i)
    for (std::size_t k = i + 1; k < r->size(); ++k)
      CHECK((*r)[i] != (*r)[k]);
  auto http = sync_wait(io, resolve(io, "localhost", "http"));
  REQUIRE(http);
  CHECK(contains(*http, endpoint::loopback_v4(80)));
  auto v4 =
      sync_wait(io, resolve(io, "localhost", "80", {.family = resolve_options::family_filter::v4}));
  REQUIRE(v4);
  for (const auto& ep : *v4)
    CHECK(ep.is_v4());
}

TEST_CASE("resolve: IP literals answer at once, in either family") {
  io_context io;
  auto a = sync_wait(io, resolve(io, "127.0.0.1", "9000"));
  REQUIRE(a);
  CHECK(*a == std::vector<endpoint>{endpoint::loopback_v4(9000)});
  auto b = sync_wait(io, resolve(io, "[::1]", "443"));
  REQUIRE(b);
  CHECK(*b == std::vector<endpoint>{endpoint::loopback_v6(443)});
  auto c = sync_wait(io, resolve(io, "::1", "443", {.family = resolve_options::family_filter::v4}));
  REQUIRE(!c);
  CHECK(c.error() == errc::host_not_found);
  CHECK(c.error().context() == "resolve ::1:443: an address of the other family");
}

TEST_CASE("resolve: an unknown host, an unknown service and an empty name are clear errors "
          "naming them",
          "[threads]") {
  io_context io;
  // A 64-byte label is not a valid DNS name: the resolver refuses it without asking
  // any server (there is no network here).
  const std::string bad = std::string(64, 'a') + ".invalid";
  auto r = sync_wait(io, resolve(io, bad, "80"));
  REQUIRE(!r);
  CHECK(r.error() == errc::host_not_found);
  CHECK(r.error().message().find("resolve " + bad + ":80: ") == 0);
  auto s = sync_wait(io, resolve(io, "localhost", "no-such-service"));
  REQUIRE(!s);
  CHECK(s.error() == errc::invalid_endpoint);
  CHECK(s.error().message().find("resolve localhost:no-such-service: ") == 0);
  auto e = sync_wait(io, resolve(io, "", "80"));
  REQUIRE(!e);
  CHECK(e.error() == errc::host_not_found);
  CHECK(e.error().context() == "resolve :80: the host name is empty");
}

TEST_CASE("resolve: stopped while it waits it ends with operation_aborted; the late answer "
          "is dropped",
          "[threads]") {
  io_context io;
  std::stop_source src;
  src.request_stop(); // stopped before the wait: the lookup runs, nobody takes its answer
  auto r = sync_wait(io, resolve(io, "localhost", "80"), src.get_token());
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
  CHECK(r.error().context() == "resolve localhost:80: cancelled while waiting for the answer");
  // Stopped from another coroutine of the loop, many times: either the answer came first
  // or the wait was cancelled, never anything else, and nothing leaks or is reused.
  int answered = 0, cancelled = 0;
  for (int i = 0; i < 50; ++i) {
    std::stop_source stop;
    auto stopper = [&]() -> task<void> {
      co_await yield();
      stop.request_stop();
    };
    auto [res, ignored] = sync_wait(
        io, when_all(boxed(with_stop_token(resolve(io, "localhost", "80"), stop.get_token())),
                     stopper()));
    if (res.value)
      ++answered;
    else if (res.value.error() == errc::operation_aborted)
      ++cancelled;
    else
      FAIL(res.value.error().message());
  }
  CHECK(answered + cancelled == 50);
}

TEST_CASE("resolve: the io_context destroyed while lookups are in flight", "[threads]") {
  for (int i = 0; i < 20; ++i) {
    auto io = std::make_unique<io_context>();
    int done = 0;
    for (int k = 0; k < 4; ++k)
      spawn(*io, [](io_context& c, int& d) -> task<void> {
        auto r = co_await resolve(c, "localhost", "80");
        (void)r;
        ++d;
      }(*io, done));
    auto one_turn = [](io_context& c) -> task<void> { co_await yield(c); };
    sync_wait(*io, one_turn(*io));
    io.reset(); // frames destroyed; answers still to come must not reach them
  }
  // Let the pool finish what it was given (nothing to check but the sanitizers).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

TEST_CASE("resolve: lookups from several loops at once, each answered on its own loop",
          "[threads]") {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      io_context io;
      for (int i = 0; i < 10; ++i) {
        auto r = sync_wait(io, resolve(io, "localhost", std::to_string(1000 + i)));
        if (r && contains(*r, endpoint::loopback_v4(static_cast<std::uint16_t>(1000 + i)))) ++ok;
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(ok == 40);
}

TEST_CASE("tcp::connect over several addresses: the first that accepts, errors that say which") {
  io_context io;
  // The accepting one first: bound after the closed one, it could be given the very
  // port just freed (the kernel reuses them), and "closed" would then accept.
  auto acc = loopback_acceptor(io);
  endpoint closed;
  {
    auto gone = loopback_acceptor(io);
    closed = gone.local_endpoint();
  }
  auto [c, s] = sync_wait(
      io, when_all(tcp::connect(io, std::vector<endpoint>{closed, acc.local_endpoint()}, 5s),
                   as_task(acc.accept())));
  REQUIRE(c);
  REQUIRE(s);
  CHECK(*c->remote_endpoint() == acc.local_endpoint());

  auto none = sync_wait(io, tcp::connect(io, std::vector<endpoint>{}, 5s));
  REQUIRE(!none);
  CHECK(none.error() == errc::invalid_endpoint);

  auto refused = sync_wait(io, tcp::connect(io, std::vector<endpoint>{closed, closed}, 5s));
  REQUIRE(!refused);
  CHECK(refused.error() == errc::connection_refused);
  CHECK(refused.error().context() == "connect to " + closed.to_string());
}
