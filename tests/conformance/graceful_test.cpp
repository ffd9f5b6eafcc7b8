// Graceful shutdown on every backend: lingering close, abort, framed close, server drain.
#include "../support.hpp"

#include <sluice/server.hpp>

using namespace sluice;
using namespace test;

TEST_CASE("Writes queued before graceful_close all arrive before the FIN") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  constexpr std::size_t chunk = 1 << 20, writers = 3;
  std::vector<std::byte> data(chunk, std::byte{'q'});
  tcp::close_report rep;
  auto writer = [&]() -> task<void> {
    auto r = co_await s.send_all(data);
    CHECK(r);
  };
  auto closer = [&]() -> task<void> {
    (void)co_await sleep_for(1ms); // the writers are blocked on a full socket buffer now
    rep = co_await s.graceful_close();
  };
  auto reader = [&]() -> task<std::size_t> {
    (void)co_await sleep_for(20ms);
    std::size_t total = 0;
    std::array<std::byte, 65536> buf;
    for (;;) {
      auto n = co_await c.recv(buf);
      REQUIRE(n);
      if (*n == 0) break; // the FIN comes after every byte
      total += *n;
    }
    c.close(); // our FIN lets graceful_close finish cleanly
    co_return total;
  };
  auto [a, b, d, total, e] =
      sync_wait(io, when_all(writer(), writer(), writer(), reader(), closer()));
  CHECK(total == chunk * writers);
  CHECK(rep.peer_fin_seen);
  CHECK_FALSE(rep.aborted);
}

TEST_CASE("Data the peer sends after our FIN is discarded and the close completes without RST") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  tcp::close_report rep;
  auto closer = [&]() -> task<void> { rep = co_await s.graceful_close(); };
  auto peer = [&]() -> task<result<std::size_t>> {
    std::array<std::byte, 16> buf;
    auto eof = co_await c.recv(buf);
    REQUIRE(eof);
    CHECK(*eof == 0);
    std::vector<std::byte> late(10'000, std::byte{'l'});
    auto sent = co_await c.send_all(late);
    REQUIRE(sent);
    auto fin = co_await c.shutdown_send();
    REQUIRE(fin);
    (void)co_await sleep_for(20ms);
    co_return co_await c.recv(buf); // an RST would show up here as connection_reset
  };
  auto [ignored, after] = sync_wait(io, when_all(closer(), peer()));
  CHECK(rep.peer_fin_seen);
  CHECK(rep.bytes_discarded == 10'000);
  CHECK_FALSE(rep.aborted);
  REQUIRE(after);
  CHECK(*after == 0);
}

TEST_CASE("A peer that never closes is aborted at the deadline while the loop keeps serving") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  auto [c2, s2] = sync_wait(io, connected_pair(io));
  tcp::close_report rep;
  bool closing = true;
  int round_trips_during_close = 0;
  auto closer = [&]() -> task<void> {
    tcp::graceful_close_options o;
    o.deadline = 300ms;
    rep = co_await s.graceful_close(o);
    closing = false;
  };
  auto other = [&]() -> task<void> {
    std::array<std::byte, 4> buf;
    while (closing) {
      auto w = co_await c2.send_all(bytes("ping"));
      REQUIRE(w);
      auto got = co_await recv_exactly(s2, 4);
      REQUIRE(got == "ping");
      if (closing) ++round_trips_during_close;
      (void)buf;
      (void)co_await sleep_for(1ms);
    }
  };
  sync_wait(io, when_all(closer(), other()));
  CHECK(rep.timed_out);
  CHECK(rep.aborted);
  CHECK_FALSE(rep.peer_fin_seen);
  CHECK(round_trips_during_close > 10);
  // The peer sees the reset.
  std::array<std::byte, 8> buf;
  auto r = sync_wait(io, as_task(c.recv(buf)));
  if (r)
    CHECK(*r == 0); // FIN first, then RST: either is acceptable on the first read
  else
    CHECK(r.error() == errc::connection_reset);
}

TEST_CASE("A peer that floods after our FIN is aborted at the byte cap") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  tcp::close_report rep;
  bool done = false;
  auto closer = [&]() -> task<void> {
    tcp::graceful_close_options o;
    o.max_discard = 64 * 1024;
    rep = co_await s.graceful_close(o);
    done = true;
  };
  auto flood = [&]() -> task<void> {
    std::vector<std::byte> junk(16 * 1024, std::byte{'j'});
    while (!done) {
      auto r = co_await c.send_all(junk);
      if (!r) break;
    }
  };
  sync_wait(io, when_all(closer(), flood()));
  CHECK(rep.aborted);
  CHECK_FALSE(rep.timed_out);
  CHECK(rep.bytes_discarded > 64 * 1024);
}

TEST_CASE("abort() resets the connection at once") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  s.abort();
  CHECK_FALSE(s.is_open());
  std::array<std::byte, 8> buf;
  auto r = sync_wait(io, as_task(c.recv(buf)));
  if (io.backend_name() == "iocp") {
    // Windows resets; Wine 8 closes with a FIN instead (measured with a plain Winsock
    // program: SO_LINGER {1,0} then closesocket gives the peer recv() == 0 there).
    CHECK(((!r && r.error() == errc::connection_reset) || (r && *r == 0)));
  } else {
    REQUIRE(!r);
    CHECK(r.error() == errc::connection_reset);
  }
}

TEST_CASE("Framed graceful close sends our reason, waits for the peer's, then yields it") {
  io_context io;
  auto p = sync_wait(io, connected_pair(io));
  framed_stream a(std::move(p.client)), b(std::move(p.server));
  std::string a_got, b_got;
  auto side = [](framed_stream& f, std::string_view reason, std::string& got) -> task<void> {
    auto rep = co_await f.graceful_close(bytes(reason));
    REQUIRE(rep.peer_close_seen);
    std::array<std::byte, 64> buf;
    auto n = co_await f.recv_disconnect(buf);
    REQUIRE(n);
    got = text(std::span(buf).first(*n));
    f.close();
  };
  sync_wait(io, when_all(side(a, "a is leaving", a_got), side(b, "b too", b_got)));
  CHECK(a_got == "b too");
  CHECK(b_got == "a is leaving");
}

TEST_CASE("server drain: a handler's plain recv is cancelled by the drain; shielded ones are "
          "aborted at the deadline") {
  // Regression: handlers did not run under their connection's stop token, so a plain
  // recv was never cancelled and the drain waited out its deadline, then reset.
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  server srv(io, std::move(*acc));
  auto handler = [](tcp::stream& s, stop_token) -> task<void> {
    std::array<std::byte, 64> buf;
    auto first = co_await shield(s.recv(std::span(buf).first(1)));
    if (!first || *first == 0) co_return;
    // "stubborn" connections shield their recv from the drain.
    const bool stubborn = buf[0] == std::byte{'S'};
    for (;;) {
      result<std::size_t> n = error(errc::operation_aborted);
      if (stubborn)
        n = co_await shield(s.recv(buf));
      else
        n = co_await s.recv(buf); // a plain recv, under the connection's token
      if (!n || *n == 0) {
        (void)co_await shield(s.graceful_close());
        co_return;
      }
    }
  };
  drain_report report;
  // A client sends its kind, then closes when the server closes (or resets) its side.
  auto client = [&](char kind) -> task<void> {
    auto c = co_await tcp::connect(io, srv.local_endpoint());
    REQUIRE(c);
    const char msg[1] = {kind};
    auto w = co_await c->send_all(std::as_bytes(std::span(msg)));
    REQUIRE(w);
    std::array<std::byte, 64> buf;
    for (;;) {
      auto n = co_await c->recv(buf);
      if (!n || *n == 0) break;
    }
    c->close();
  };
  auto driver = [&]() -> task<void> {
    while (srv.connections() < 3)
      (void)co_await sleep_for(1ms);
    (void)co_await sleep_for(5ms);
    report = co_await srv.shutdown(300ms);
  };
  sync_wait(io, when_all(srv.serve(handler), driver(), client('p'), client('p'), client('S')));
  CHECK(report.drained == 2);
  CHECK(report.aborted == 1);
  CHECK(srv.connections() == 0);
}
