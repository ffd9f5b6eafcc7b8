// websocket::stream over real sockets, on every backend: the handshake both ways,
// messages with and without compression, pings, the close handshake as disconnect
// data, refusals, a peer that breaks the protocol or vanishes, timeouts, and lifetimes.
#include "../support.hpp"

#include <sluice/net/websocket.hpp>

using namespace sluice;
using namespace test;
using namespace std::chrono_literals;

namespace {

struct ws_pair {
  websocket::stream client;
  websocket::stream server;
};

// A handshaken pair on loopback: websocket::connect and websocket::accept concurrently.
task<ws_pair> make_ws_pair(io_context& io, websocket::options server_o = {},
                           websocket::options client_o = {}) {
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  const auto url = fmt::format("ws://127.0.0.1:{}/chat", acc->local_endpoint().port());
  auto server = [&]() -> task<result<websocket::stream>> {
    auto s = co_await acc->accept();
    if (!s) co_return std::move(s).error();
    co_return co_await websocket::accept(std::move(*s), server_o);
  };
  auto [c, s] = co_await when_all(websocket::connect(io, url, client_o), server());
  if (!c) FAIL(c.error().message());
  if (!s) FAIL(s.error().message());
  co_return ws_pair{std::move(*c), std::move(*s)};
}

// The raw TCP side of a handshake: sends `request`, returns the response head's text.
task<std::string> raw_handshake(tcp::stream& s, std::string_view request) {
  auto sent = co_await s.send_all(request);
  REQUIRE(sent);
  std::string got;
  std::array<std::byte, 1024> buf;
  while (got.find("\r\n\r\n") == std::string::npos) {
    auto n = co_await s.recv(std::span(buf).first(1));
    if (!n || *n == 0) break;
    got += text(std::span(buf).first(*n));
  }
  co_return got;
}

constexpr std::string_view good_request =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

} // namespace

TEST_CASE("websocket: text, binary, empty and 4 MiB messages both ways, compressed or not") {
  for (bool deflate : {true, false}) {
    INFO("permessage-deflate " << deflate);
    io_context io;
    websocket::options o;
    o.handshake.offer_deflate = deflate;
    o.handshake.accept_deflate = deflate;
    o.handshake.subprotocols = {"chat"};
    auto [c, s] = sync_wait(io, make_ws_pair(io, o, o));
    CHECK(c.subprotocol() == "chat");
    CHECK(s.subprotocol() == "chat");
    CHECK(c.deflate().has_value() == deflate);
    CHECK(s.deflate().has_value() == deflate);
    std::string big(4u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
      big[i] = static_cast<char>('a' + (i * 7919) % 26);
    // The client sends and then reads; the server echoes, concurrently (4 MiB does not
    // fit in the sockets' buffers).
    auto client = [&]() -> task<std::vector<std::string>> {
      const std::string small("\0\1\2", 3);
      for (const char* m : {"hello", "", static_cast<const char*>(nullptr)}) {
        // (No co_await inside ?: : GCC 12 miscompiles it.)
        result<void> ok_;
        if (m)
          ok_ = co_await c.send_text(m);
        else
          ok_ = co_await c.send_binary(bytes(small));
        REQUIRE(ok_);
      }
      auto ok_ = co_await c.send_binary(bytes(big));
      REQUIRE(ok_);
      std::vector<std::string> got;
      for (int i = 0; i < 4; ++i) {
        auto m = co_await c.receive();
        REQUIRE(m);
        REQUIRE(m->has_value());
        got.push_back(std::string((*m)->is_text() ? "t:" : "b:") + std::string((*m)->text()));
      }
      co_return got;
    };
    auto server = [&]() -> task<void> {
      for (int i = 0; i < 4; ++i) {
        auto m = co_await s.receive();
        REQUIRE(m);
        REQUIRE(m->has_value());
        result<void> ok_;
        if ((*m)->is_text())
          ok_ = co_await s.send_text((*m)->text());
        else
          ok_ = co_await s.send_binary((*m)->data);
        REQUIRE(ok_);
      }
    };
    auto [got, done] = sync_wait(io, when_all(client(), server()));
    (void)done;
    REQUIRE(got.size() == 4);
    CHECK(got[0] == "t:hello");
    CHECK(got[1] == "t:");
    CHECK(got[2] == std::string("b:\0\1\2", 5));
    CHECK(got[3] == "b:" + big);
  }
}

TEST_CASE("websocket: the close frame's code and reason are the disconnect data") {
  io_context io;
  auto [c, s] = sync_wait(io, make_ws_pair(io));
  auto body = [&]() -> task<void> {
    {
      auto ok_ = co_await c.send_text("last words");
      REQUIRE(ok_);
    }
    {
      auto ok_ = co_await c.send_disconnect(4001, "going to lunch");
      REQUIRE(ok_);
    }
    // After our close, sending is refused.
    auto late = co_await c.send_text("too late");
    REQUIRE(!late);
    CHECK(late.error() == errc::shut_down);
    auto m = co_await s.receive();
    REQUIRE(m);
    REQUIRE(m->has_value());
    CHECK((*m)->text() == "last words");
    auto end = co_await s.receive();
    REQUIRE(end);
    CHECK(!end->has_value());
    REQUIRE(s.peer_close());
    CHECK(s.peer_close()->code == 4001);
    CHECK(s.peer_close()->reason == "going to lunch");
    // recv_disconnect yields the payload: the code big-endian, then the reason.
    std::array<std::byte, 3> small{};
    auto r0 = co_await s.recv_disconnect(small);
    REQUIRE(!r0);
    CHECK(r0.error() == errc::buffer_too_small);
    std::array<std::byte, 64> buf{};
    auto n = co_await s.recv_disconnect(buf);
    REQUIRE(n);
    REQUIRE(*n == 16);
    CHECK(std::to_integer<int>(buf[0]) * 256 + std::to_integer<int>(buf[1]) == 4001);
    CHECK(text(std::span(buf).subspan(2, 14)) == "going to lunch");
    auto again = co_await s.receive();
    REQUIRE(!again);
    CHECK(again.error() == errc::shut_down);
    // The server echoed the close: the client sees the same code and reason.
    auto cend = co_await c.receive();
    REQUIRE(cend);
    CHECK(!cend->has_value());
    REQUIRE(c.peer_close());
    CHECK(c.peer_close()->code == 4001);
  };
  sync_wait(io, body());
}

TEST_CASE("websocket: graceful_close drops messages until the peer's close; pings are answered") {
  io_context io;
  auto [c, s] = sync_wait(io, make_ws_pair(io));
  auto body = [&]() -> task<void> {
    {
      auto ok_ = co_await c.ping(bytes("are you there"));
      REQUIRE(ok_);
    }
    {
      auto ok_ = co_await c.send_text("one");
      REQUIRE(ok_);
    }
    {
      auto ok_ = co_await c.send_text("two");
      REQUIRE(ok_);
    }
    // The server answers the ping while it receives; the client's receive skips the pong.
    auto m = co_await s.receive();
    REQUIRE(m);
    CHECK((*m)->text() == "one");
    auto [rep, cm] = co_await when_all(s.graceful_close(1001, "shutting down"), c.receive());
    CHECK(rep.peer_close_seen);
    CHECK(!rep.aborted);
    CHECK(rep.messages_discarded == 1); // "two"
    REQUIRE(cm);
    CHECK(!cm->has_value()); // the client saw the close frame
    REQUIRE(c.peer_close());
    CHECK(c.peer_close()->code == 1001);
    CHECK(c.peer_close()->reason == "shutting down");
    CHECK(fmt::format("{}", rep) == "peer close frame seen, 1 messages discarded");
  };
  sync_wait(io, body());
}

TEST_CASE("websocket: a plain HTTP request or a bad handshake is refused with its status") {
  io_context io;
  struct refusal {
    std::string request;
    std::string status_line;
    std::string error;
  };
  const std::vector<refusal> cases = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 Upgrade Required",
       "not a WebSocket handshake"},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n",
       "HTTP/1.1 426 Upgrade Required", "Sec-WebSocket-Version 7 (only 13 is spoken) (426)"},
      {"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request", "(400)"},
  };
  for (const auto& rc : cases) {
    INFO(rc.request);
    auto body = [&]() -> task<void> {
      auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
      REQUIRE(acc);
      auto client = [&]() -> task<std::string> {
        auto s = co_await tcp::connect(io, acc->local_endpoint());
        REQUIRE(s);
        auto head = co_await raw_handshake(*s, rc.request);
        auto rest = co_await recv_to_end(*s);
        co_return head + rest;
      };
      auto server = [&]() -> task<result<websocket::stream>> {
        auto s = co_await acc->accept();
        REQUIRE(s);
        co_return co_await websocket::accept(std::move(*s));
      };
      auto [answer, boxed_r] = co_await when_all(client(), boxed(server()));
      auto& r = boxed_r.value;
      INFO(answer);
      if (!r) INFO(r.error().message());
      CHECK(answer.rfind(rc.status_line, 0) == 0);
      CHECK((answer.find("Connection: close") != std::string::npos ||
             answer.find("Connection: Upgrade, close") != std::string::npos));
      REQUIRE(!r);
      CHECK(r.error() == errc::protocol_error);
      CHECK(r.error().context().find("websocket accept from 127.0.0.1:") == 0);
      CHECK(r.error().context().find(rc.error) != std::string::npos);
    };
    sync_wait(io, body());
  }
}

TEST_CASE("websocket: a client refuses a server that does not switch protocols") {
  io_context io;
  auto body = [&]() -> task<void> {
    auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
    REQUIRE(acc);
    const auto url = fmt::format("ws://127.0.0.1:{}/x", acc->local_endpoint().port());
    auto server = [&]() -> task<void> {
      auto s = co_await acc->accept();
      REQUIRE(s);
      std::array<std::byte, 4096> buf;
      (void)co_await s->recv(buf);
      (void)co_await s->send_all(
          std::string_view("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
      (void)co_await s->graceful_close();
    };
    auto [boxed_c, done] = co_await when_all(boxed(websocket::connect(io, url)), server());
    auto& c = boxed_c.value;
    (void)done;
    REQUIRE(!c);
    CHECK(c.error() == errc::protocol_error);
    CHECK(c.error().context() == fmt::format("websocket connect to 127.0.0.1:{}/x: websocket "
                                             "handshake: the server answered 404 Not Found",
                                             acc->local_endpoint().port()));
    auto bad = co_await websocket::connect(io, "wss://example.com/");
    REQUIRE(!bad);
    CHECK(bad.error().context() ==
          "websocket connect to wss://example.com/: wss:// (TLS) is not spoken here");
  };
  sync_wait(io, body());
}

TEST_CASE("websocket: a client that breaks the protocol is sent 1002 and the receive fails") {
  io_context io;
  auto body = [&]() -> task<void> {
    auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
    REQUIRE(acc);
    auto client = [&]() -> task<std::string> {
      auto s = co_await tcp::connect(io, acc->local_endpoint());
      REQUIRE(s);
      auto head = co_await raw_handshake(*s, good_request);
      CHECK(head.rfind("HTTP/1.1 101 Switching Protocols", 0) == 0);
      // An unmasked text frame: clients must mask.
      {
        auto ok_ = co_await s->send_all(std::string_view("\x81\x02hi", 4));
        REQUIRE(ok_);
      }
      std::string got;
      std::array<std::byte, 64> buf;
      for (;;) {
        auto n = co_await s->recv(buf);
        if (!n) FAIL(n.error().message());
        if (*n == 0) break;
        got += text(std::span(buf).first(*n));
      }
      co_return got;
    };
    auto server = [&]() -> task<result<std::optional<websocket::message>>> {
      auto s = co_await acc->accept();
      REQUIRE(s);
      auto ws = co_await websocket::accept(std::move(*s));
      REQUIRE(ws);
      co_return co_await ws->receive();
    };
    auto [wire, boxed_r] = co_await when_all(client(), boxed(server()));
    auto& r = boxed_r.value;
    INFO(wire.size());
    REQUIRE(!r);
    CHECK(r.error() == errc::protocol_error);
    CHECK(r.error().context().find("an unmasked text frame from the client (closing with 1002)") !=
          std::string::npos);
    // The close frame the client got: 0x88, length 2, 1002.
    CHECK(wire == std::string("\x88\x02\x03\xea", 4));
  };
  sync_wait(io, body());
}

TEST_CASE("websocket: a peer that vanishes without a close frame is connection_aborted (1006)") {
  io_context io;
  auto [c, s] = sync_wait(io, make_ws_pair(io));
  auto body = [&]() -> task<void> {
    {
      auto ok_ = co_await c.send_text("x");
      REQUIRE(ok_);
    }
    c.next_layer().close();
    auto m = co_await s.receive();
    REQUIRE(m);
    auto end = co_await s.receive();
    REQUIRE(!end);
    CHECK((end.error() == errc::connection_aborted || end.error() == errc::connection_reset));
  };
  sync_wait(io, body());
}

TEST_CASE("websocket: a handshake that never comes times out; a bytewise one succeeds") {
  io_context io;
  auto body = [&]() -> task<void> {
    auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
    REQUIRE(acc);
    websocket::options o;
    o.handshake_timeout = 50ms;
    auto silent = [&]() -> task<tcp::stream> {
      auto s = co_await tcp::connect(io, acc->local_endpoint());
      REQUIRE(s);
      co_return std::move(*s);
    };
    auto server = [&]() -> task<result<websocket::stream>> {
      auto s = co_await acc->accept();
      REQUIRE(s);
      co_return co_await websocket::accept(std::move(*s), o);
    };
    auto [keep, boxed_r] = co_await when_all(silent(), boxed(server()));
    auto& r = boxed_r.value;
    REQUIRE(!r);
    CHECK(r.error() == errc::timed_out);
    CHECK(r.error().context().find("no handshake within 50 ms") != std::string::npos);

    // One byte at a time, with a masked frame sent right behind the request.
    auto slow = [&]() -> task<std::string> {
      auto s = co_await tcp::connect(io, acc->local_endpoint());
      REQUIRE(s);
      REQUIRE(s->set_nodelay(true));
      const std::string frame("\x81\x82\x00\x00\x00\x00hi", 8);
      const std::string all = std::string(good_request) + frame;
      for (char ch : all) {
        auto ok_ = co_await s->send_all(std::string_view(&ch, 1));
        REQUIRE(ok_);
      }
      co_return co_await recv_to_end(*s);
    };
    auto server2 = [&]() -> task<std::string> {
      auto s = co_await acc->accept();
      REQUIRE(s);
      auto ws = co_await websocket::accept(std::move(*s));
      REQUIRE(ws);
      auto m = co_await ws->receive();
      REQUIRE(m);
      std::string got((*m)->text());
      (void)co_await ws->graceful_close(1000, "", {.deadline = 200ms});
      co_return got;
    };
    auto [wire, got] = co_await when_all(slow(), server2());
    CHECK(got == "hi");
    CHECK(wire.find("\x88\x02\x03\xe8") != std::string::npos); // our close frame, 1000
  };
  sync_wait(io, body());
}

TEST_CASE("websocket: a receive cut short by a deadline loses nothing") {
  io_context io;
  auto [c, s] = sync_wait(io, make_ws_pair(io));
  auto body = [&]() -> task<void> {
    auto early = co_await with_timeout(s.receive(), 20ms);
    REQUIRE(!early);
    CHECK(early.error() == errc::timed_out);
    {
      auto ok_ = co_await c.send_text("after the deadline");
      REQUIRE(ok_);
    }
    auto m = co_await s.receive();
    REQUIRE(m);
    CHECK((*m)->text() == "after the deadline");
  };
  sync_wait(io, body());
}

TEST_CASE("websocket: streams and receives destroyed at any point leave nothing behind") {
  io_context io;
  // Receives destroyed while waiting, and while their message is arriving.
  for (int round = 0; round < 3; ++round) {
    auto pair = sync_wait(io, make_ws_pair(io));
    auto c = std::make_unique<websocket::stream>(std::move(pair.client));
    auto s = std::make_unique<websocket::stream>(std::move(pair.server));
    const std::string big(256 * 1024, 'q');
    spawn_then_destroy(io, 2, [&](int i) -> task<void> {
      if (i == 0) {
        (void)co_await s->receive();
      } else {
        (void)co_await c->send_text(big);
      }
    });
    // Whatever was cut, the streams close cleanly.
    if (round == 1) s.reset();
    if (round == 2) c.reset();
    sync_wait(io, yield_turns(io, 3));
  }
  // Handshakes abandoned half-way: accept destroyed while reading the request.
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  std::optional<tcp::stream> client;
  spawn_then_destroy(io, 2, [&](int i) -> task<void> {
    if (i == 0) {
      auto s = co_await acc->accept();
      if (s) (void)co_await websocket::accept(std::move(*s));
    } else {
      auto s = co_await tcp::connect(io, acc->local_endpoint());
      if (s) client = std::move(*s);
    }
  });
}
