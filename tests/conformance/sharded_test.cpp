// A server on every loop of a runtime, on every backend: hand-off and SO_REUSEPORT
// spread a connection storm over the loops and serve every connection; one drain, or
// one abort, covers the connections of every loop; a signal is seen once and drains
// them all. Clients run on a thread and a loop of their own.
#include "../support.hpp"

#include <csignal>
#include <sluice/runtime.hpp>
#include <sluice/sharded_server.hpp>
#include <thread>

using namespace sluice;
using namespace test;

namespace {

// Reads one byte and echoes it until the peer closes.
task<void> echo_bytes(tcp::stream& s, stop_token) {
  std::array<std::byte, 64> buf;
  for (;;) {
    auto n = co_await s.recv(buf);
    if (!n || *n == 0) break;
    auto w = co_await s.send_all(std::span(buf).first(*n));
    if (!w) break;
  }
  (void)co_await shield(s.graceful_close());
}

// `total` clients, `at_once` at a time: each connects, sends a byte, reads it back and
// closes. Returns how many got their byte back.
task<int> storm(io_context& io, endpoint ep, int total, int at_once) {
  int ok = 0;
  for (int done = 0; done < total; done += at_once) {
    std::vector<task<bool>> wave;
    auto one = [](io_context& ctx, endpoint to) -> task<bool> {
      auto c = co_await tcp::connect(ctx, to);
      if (!c) co_return false;
      auto w = co_await c->send_all(bytes("x"));
      if (!w) co_return false;
      std::array<std::byte, 1> b;
      auto n = co_await with_timeout(c->recv(b), std::chrono::seconds(20));
      co_return n&&* n == 1;
    };
    for (int k = 0; k < at_once && done + k < total; ++k)
      wave.push_back(one(io, ep));
    auto results = co_await when_all(std::move(wave));
    for (bool r : results)
      ok += r ? 1 : 0;
  }
  co_return ok;
}

// `total` connects (200 at a time) against `srv`, served by both loops of `rt`.
void storm_on(runtime& rt, std::unique_ptr<sharded_server>& server_ptr, int total) {
  auto* srv = &server_ptr;
  std::atomic<int> served{-1};
  rt.run([&](io_context& loop, std::size_t i) -> task<void> {
    if (i != 0) {
      co_await (*srv)->serve(i, echo_bytes);
      co_return;
    }
    auto clients = [&]() -> task<void> {
      // The clients run on a thread and a loop of their own, so that the loops only
      // serve; this loop waits for them without blocking (it serves too).
      std::atomic<int> ok{0};
      std::atomic<bool> finished{false};
      std::thread t([&] {
        io_context io;
        ok = sync_wait(io, storm(io, (*srv)->local_endpoint(), total, 200));
        finished = true;
      });
      for (int waited = 0; !finished && waited < 120'000; waited += 5)
        co_await sleep_for(std::chrono::milliseconds(5));
      t.join();
      served = ok.load();
      (void)co_await (*srv)->shutdown(std::chrono::seconds(10));
    };
    (void)loop;
    co_await when_all((*srv)->serve(0, echo_bytes), clients());
  });
  CHECK(served.load() == total);
  CHECK((*srv)->served(0) + (*srv)->served(1) == static_cast<std::size_t>(total));
  CAPTURE((*srv)->served(0), (*srv)->served(1));
  CHECK((*srv)->served(0) > 0);
  CHECK((*srv)->served(1) > 0);
  CHECK((*srv)->connections(0) + (*srv)->connections(1) == 0);
}

void storm_case(port_sharing sharing) {
  runtime rt(2);
  auto srv = sharded_server::bind(rt, endpoint::loopback_v4(0), {.sharing = sharing});
  REQUIRE(srv);
  storm_on(rt, *srv, 2000);
}

// A listening socket opened the way another process (or systemd) would, handed over.
detail::native_handle listening_socket(const endpoint& ep, bool reuse_port,
                                       endpoint* where = nullptr) {
  io_context io;
  auto acc = tcp::acceptor::bind(io, ep, {.backlog = 1024, .reuse_port = reuse_port});
  REQUIRE(acc);
  if (where != nullptr) *where = acc->local_endpoint();
  return acc->release();
}

} // namespace

TEST_CASE("Hand-off: a storm of 2,000 connects is served whole, spread over both loops",
          "[threads]") {
  storm_case(port_sharing::hand_off);
}

TEST_CASE("SO_REUSEPORT: a storm of 2,000 connects is served whole, by every loop's own "
          "acceptor",
          "[threads]") {
#ifdef _WIN32
  runtime rt(2);
  auto srv =
      sharded_server::bind(rt, endpoint::loopback_v4(0), {.sharing = port_sharing::reuse_port});
  REQUIRE_FALSE(srv);
  CHECK(srv.error() == errc::no_protocol_option);
  CHECK(srv.error().message().find("SO_REUSEPORT") != std::string::npos);
#else
  storm_case(port_sharing::reuse_port);
#endif
}

TEST_CASE("Adopted listeners (socket activation, a hand-over): one is handed off from loop 0, "
          "one per loop is each loop's own; a storm is served whole",
          "[threads]"){{runtime rt(2);
auto srv = sharded_server::adopt(rt, {listening_socket(endpoint::loopback_v4(0), false)});
REQUIRE(srv);
CHECK((*srv)->sharing() == port_sharing::hand_off);
storm_on(rt, *srv, 400);
}
#ifndef _WIN32
{
  endpoint port;
  const auto first = listening_socket(endpoint::loopback_v4(0), true, &port);
  const auto second = listening_socket(port, true);
  runtime rt(2);
  auto srv = sharded_server::adopt(rt, {first, second});
  REQUIRE(srv);
  CHECK((*srv)->sharing() == port_sharing::reuse_port);
  CHECK((*srv)->local_endpoint() == port);
  storm_on(rt, *srv, 400);
}
#endif
}

TEST_CASE("Adopting the wrong listeners is an error saying which (and closes them)") {
  runtime rt(2);
  const long before = open_descriptors();
  std::vector<detail::native_handle> three;
  for (int i = 0; i < 3; ++i)
    three.push_back(listening_socket(endpoint::loopback_v4(0), false));
  auto too_many = sharded_server::adopt(rt, three);
  REQUIRE(!too_many);
  CHECK(too_many.error().message().find("3 listening sockets for 2 loops (1: loop 0 accepts and "
                                        "hands off; 2: one per loop)") != std::string::npos);
  auto ports = sharded_server::adopt(rt, {listening_socket(endpoint::loopback_v4(0), false),
                                          listening_socket(endpoint::loopback_v4(0), false)});
  REQUIRE(!ports);
  CHECK(ports.error().message().find("(one per loop must share one port)") != std::string::npos);
  if (before >= 0) CHECK(open_descriptors() == before); // every socket was closed
}

TEST_CASE("One drain covers the idle connections of every loop; one abort resets them",
          "[threads]") {
  for (const bool abort : {false, true}) {
    CAPTURE(abort);
    runtime rt(2);
    auto srv = sharded_server::bind(rt, endpoint::loopback_v4(0));
    REQUIRE(srv);
    constexpr int conns = 20;
    drain_report report;
    std::vector<std::string> ends;
    rt.run([&](io_context& loop, std::size_t i) -> task<void> {
      if (i != 0) {
        co_await (*srv)->serve(i, echo_bytes);
        co_return;
      }
      auto clients = [&]() -> task<void> {
        std::vector<tcp::stream> open;
        for (int k = 0; k < conns; ++k) {
          auto c = co_await tcp::connect(loop, (*srv)->local_endpoint());
          REQUIRE(c);
          auto w = co_await c->send_all(bytes("x"));
          REQUIRE(w);
          auto got = co_await recv_exactly(*c, 1);
          CHECK(got == "x");
          open.push_back(std::move(*c));
        }
        // Spread over both loops, all idle in a recv.
        CHECK((*srv)->connections(0) + (*srv)->connections(1) == static_cast<std::size_t>(conns));
        CHECK((*srv)->connections(1) > 0);
        // Each client reads its end and closes, as a real client would: the graceful
        // closes then finish by themselves (no lingering timeout in the drain).
        auto read_ends = [&]() -> task<void> {
          for (auto& c : open) {
            std::array<std::byte, 8> b;
            auto n = co_await with_timeout(c.recv(b), std::chrono::seconds(10));
            ends.push_back(!n ? (n.error() == errc::connection_reset ? "reset" : "error")
                              : (*n == 0 ? "eof" : "data"));
            c.close();
          }
        };
        if (abort) {
          co_await (*srv)->abort();
          co_await read_ends();
          (void)co_await (*srv)->shutdown(std::chrono::seconds(10)); // ends serve()
        } else {
          auto [r, done] =
              co_await when_all((*srv)->shutdown(std::chrono::seconds(10)), read_ends());
          (void)done;
          report = r;
        }
      };
      co_await when_all((*srv)->serve(0, echo_bytes), clients());
    });
    REQUIRE(ends.size() == static_cast<std::size_t>(conns));
    for (auto& e : ends)
#ifdef _WIN32
      CHECK((e == (abort ? "reset" : "eof") || e == "eof")); // Wine: a reset may read as EOF
#else
      CHECK(e == (abort ? "reset" : "eof"));
#endif
    if (!abort) {
      CHECK(report.drained == static_cast<std::size_t>(conns));
      CHECK(report.aborted == 0);
    }
  }
}

TEST_CASE("serve_until_signalled on a runtime: a SIGTERM is seen once and drains every loop; "
          "the exit status is 0",
          "[threads]") {
  runtime rt(2);
  auto srv = sharded_server::bind(rt, endpoint::loopback_v4(0));
  REQUIRE(srv);
  // (No Catch2 assertion on the client thread: they are not thread-safe.)
  std::vector<std::string> ends;
  int echoed = 0;
  std::thread clients([&] {
    io_context io;
    auto body = [&]() -> task<void> {
      std::vector<tcp::stream> open;
      for (int k = 0; k < 10; ++k) {
        auto c = co_await tcp::connect(io, (*srv)->local_endpoint());
        if (!c) break;
        auto w = co_await c->send_all(bytes("x"));
        if (!w) break;
        auto got = co_await recv_exactly(*c, 1);
        if (got == "x") ++echoed;
        open.push_back(std::move(*c));
      }
      std::raise(SIGTERM); // once: loop 0 watches, every loop drains
      for (auto& c : open) {
        std::array<std::byte, 8> b;
        auto n = co_await with_timeout(c.recv(b), std::chrono::seconds(10));
        ends.push_back(!n ? "error" : (*n == 0 ? "eof" : "data"));
        c.close(); // lets the server's graceful close finish
      }
    };
    sync_wait(io, body());
  });
  const int code = serve_until_signalled(rt, **srv, echo_bytes, std::chrono::seconds(10), "test");
  clients.join();
  CHECK(echoed == 10);
  CHECK(code == 0);
  CHECK(ends == std::vector<std::string>(10, "eof"));
  CHECK((*srv)->served(0) + (*srv)->served(1) == 10);
}
