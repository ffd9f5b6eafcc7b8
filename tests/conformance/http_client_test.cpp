// http::client on every backend, against sluice's own server and raw sockets playing
// broken servers: keep-alive reuse, pipelining, streamed bodies, a kept connection the
// server closed, and every failure named (URL and cause). Real servers (nginx, Python's
// http.server) drive examples/http_client in tests/peers/http_client_peers.py.
#include "../support.hpp"

#include <sluice/http/client.hpp>
#include <sluice/http/router.hpp>
#include <sluice/server.hpp>

using namespace sluice;
using namespace test;

namespace {

http::router routes() {
  http::router r;
  r.get("/hello", [](http::routed& q) { return http::text("hello " + q.query_value("n", "?")); });
  r.post("/upper", [](http::routed& q) {
    std::string s = q.body;
    for (char& c : s)
      c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    return http::text(s);
  });
  // N bytes, chunked, in pieces of 1000.
  r.stream("GET", "/stream/{n}",
           [](http::routed& q, http::body_reader&, http::response_writer& out) -> task<void> {
             const std::size_t n = std::stoul(q.param("n"));
             if (!co_await out.start(200)) co_return;
             const std::string block(1000, 'z');
             for (std::size_t left = n; left != 0;) {
               const std::size_t k = std::min<std::size_t>(left, block.size());
               if (!co_await out.write(std::string_view(block).substr(0, k))) co_return;
               left -= k;
             }
             (void)co_await out.finish();
           });
  return r;
}

// Runs `body(base_url)` against a sluice HTTP server on this loop, then drains it. The
// client `web` hangs up its kept connections first, as a client that is done would: the
// server's graceful closes then end at once instead of lingering for the peer's FIN.
template <class F>
void with_server(io_context& io, http::client& web, F body, http::server_options o = {}) {
  server srv(io, loopback_acceptor(io));
  const std::string base = fmt::format("http://{}", srv.local_endpoint());
  auto client = [&]() -> task<void> {
    co_await body(base);
    web.close_idle();
    (void)co_await srv.shutdown(std::chrono::seconds(5));
  };
  sync_wait(io, when_all(srv.serve(http::parking_handler(routes().to_service(), o)), client()));
}

// A server that accepts one connection, reads the request head, then answers `reply`
// (or nothing) and closes after `hold`.
task<void> raw_server(io_context& io, tcp::acceptor& acc, std::string reply,
                      std::chrono::milliseconds hold) {
  auto s = co_await acc.accept();
  REQUIRE(s);
  std::string got;
  while (got.find("\r\n\r\n") == std::string::npos) {
    std::array<std::byte, 1024> buf;
    auto n = co_await s->recv(buf);
    if (!n || *n == 0) co_return;
    got += text(std::span(buf).first(*n));
  }
  if (!reply.empty()) {
    auto sent = co_await s->send_all(bytes(reply));
    REQUIRE(sent);
  }
  (void)co_await sleep_for(io, hold);
}

} // namespace

TEST_CASE("http::client GETs and POSTs over one kept-alive connection") {
  io_context io;
  http::client web(io);
  with_server(io, web, [&](std::string base) -> task<void> {
    for (int i = 0; i < 3; ++i) {
      auto r = co_await web.get(base + fmt::format("/hello?n={}", i));
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->body == fmt::format("hello {}", i));
      REQUIRE(r->headers.find("content-type"));
    }
    auto p = co_await web.post(base + "/upper", "make me loud", "text/plain");
    REQUIRE(p);
    CHECK(p->body == "MAKE ME LOUD");
    auto missing = co_await web.get(base + "/nope");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(web.connections_opened() == 1);
    CHECK(web.idle_connections() == 1);
  });
}

TEST_CASE("http::client streams a response body, and pipelines requests in one write") {
  io_context io;
  http::client web(io);
  with_server(io, web, [&](std::string base) -> task<void> {
    auto rs = co_await web.open("GET", base + "/stream/250500");
    REQUIRE(rs);
    CHECK(rs->status == 200);
    REQUIRE(rs->headers.find("transfer-encoding"));
    std::size_t total = 0, pieces = 0;
    for (;;) {
      auto piece = co_await rs->next();
      REQUIRE(piece);
      if (piece->empty()) break;
      total += piece->size();
      ++pieces;
    }
    CHECK(total == 250500);
    CHECK(pieces > 1);
    CHECK(rs->complete());
    CHECK(web.idle_connections() == 1); // back for reuse once read to its end

    std::vector<http::client_request> batch;
    for (int i = 0; i < 10; ++i)
      batch.push_back({"GET", fmt::format("/hello?n={}", i), {}, {}});
    batch.push_back({"POST", "/upper", {}, "last"});
    auto all = co_await web.pipeline(base, std::move(batch));
    REQUIRE(all);
    REQUIRE(all->size() == 11);
    for (int i = 0; i < 10; ++i)
      CHECK((*all)[static_cast<std::size_t>(i)].body == fmt::format("hello {}", i));
    CHECK(all->back().body == "LAST");
  });
}

TEST_CASE("http::client replaces a kept connection the server closed, and sends again") {
  io_context io;
  http::client web(io);
  http::server_options o;
  o.idle_timeout = std::chrono::milliseconds(50);
  o.park_after = std::chrono::milliseconds(0);
  with_server(
      io, web,
      [&](std::string base) -> task<void> {
        auto first = co_await web.get(base + "/hello?n=1");
        REQUIRE(first);
        CHECK(web.idle_connections() == 1);
        (void)co_await sleep_for(io, std::chrono::milliseconds(300)); // the server closes it
        auto second = co_await web.get(base + "/hello?n=2");
        REQUIRE(second);
        CHECK(second->body == "hello 2");
        CHECK(web.connections_opened() == 2);
      },
      o);
}

TEST_CASE("http::client stops reading a body left unread: the connection is not reused") {
  io_context io;
  http::client web(io);
  with_server(io, web, [&](std::string base) -> task<void> {
    {
      auto rs = co_await web.open("GET", base + "/stream/100000");
      REQUIRE(rs);
      auto piece = co_await rs->next();
      REQUIRE(piece);
    } // destroyed mid-body
    CHECK(web.idle_connections() == 0);
    auto again = co_await web.get(base + "/hello?n=x");
    REQUIRE(again);
    CHECK(again->body == "hello x");
    CHECK(web.connections_opened() == 2);
  });
}

TEST_CASE("http::client looks host names up: localhost from /etc/hosts") {
  io_context io;
  http::client web(io);
  with_server(io, web, [&](std::string base) -> task<void> {
    const std::string port = base.substr(base.rfind(':') + 1);
    auto r = co_await web.get("http://localhost:" + port + "/hello?n=named");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello named");
  });
}

TEST_CASE("http::client errors name the URL and the cause") {
  io_context io;
  http::client_options o;
  o.header_timeout = std::chrono::milliseconds(200);
  o.limits.max_body = 1000;
  http::client web(io, o);

  SECTION("a malformed URL") {
    for (const char* url : {"https://127.0.0.1/", "ftp://x/", "http:///path", "http://h:0/",
                            "http://h:99999/", "http://u@h/", "http://h/a b"}) {
      CAPTURE(url);
      auto r = sync_wait(io, web.get(url));
      REQUIRE(!r);
      CHECK(r.error() == errc::invalid_endpoint);
      CHECK(r.error().message().find(url) != std::string::npos);
    }
    // Not a valid DNS name (a 64-byte label): refused without asking a server.
    const std::string host = std::string(64, 'h') + ".invalid";
    auto name = sync_wait(io, web.get("http://" + host + "/"));
    REQUIRE(!name);
    CHECK(name.error() == errc::host_not_found);
    CHECK(name.error().message().find(fmt::format("GET http://{}/: resolve {}:80: ", host, host)) ==
          0);
  }
  SECTION("nothing listening") {
    endpoint gone;
    {
      auto acc = loopback_acceptor(io);
      gone = acc.local_endpoint();
    }
    const std::string url = fmt::format("http://{}/x", gone);
    auto r = sync_wait(io, web.get(url));
    REQUIRE(!r);
    CHECK(r.error() == errc::connection_refused);
    CHECK(r.error().message().find("GET " + url) != std::string::npos);
  }
  SECTION("a server that never answers: the head's deadline") {
    auto acc = loopback_acceptor(io);
    const std::string url = fmt::format("http://{}/slow", acc.local_endpoint());
    result<http::client_response> r = error(errc::not_a_socket, "not run");
    auto ask = [&]() -> task<void> { r = co_await web.get(url); };
    sync_wait(io, when_all(raw_server(io, acc, "", std::chrono::milliseconds(1000)), ask()));
    REQUIRE(!r);
    CHECK(r.error() == errc::timed_out);
    CHECK(r.error().message().find("GET " + url +
                                   ": the response head did not arrive within "
                                   "200 ms") != std::string::npos);
  }
  SECTION("a malformed response, a body over the limit, a body cut short") {
    struct bad {
      std::string reply;
      errc code;
      std::string says;
    };
    for (const bad& b : {bad{"HTTP/1.1 2OO OK\r\n\r\n", errc::protocol_error, "malformed response"},
                         bad{"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
                             errc::message_too_large, "over the limit of 1000"},
                         bad{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..",
                             errc::protocol_error, "body"}}) {
      CAPTURE(b.reply);
      auto acc = loopback_acceptor(io);
      const std::string url = fmt::format("http://{}/bad", acc.local_endpoint());
      result<http::client_response> r = error(errc::not_a_socket, "not run");
      auto ask = [&]() -> task<void> { r = co_await web.get(url); };
      sync_wait(io, when_all(raw_server(io, acc, b.reply, std::chrono::milliseconds(0)), ask()));
      REQUIRE(!r);
      CHECK(r.error() == b.code);
      CHECK(r.error().message().find(url) != std::string::npos);
      CHECK(r.error().message().find(b.says) != std::string::npos);
    }
  }
}
