// Streaming HTTP handlers, on every backend: the body read as it arrives and the
// response written as it is produced (chunked or with a Content-Length), mixed with
// buffered handlers on one connection in order; what a handler leaves undone (an
// unread body, an unfinished response, an exception) is finished or reported for it.
// Real clients drive the same paths in tests/peers/http_peers.py (a 1 GiB upload
// echoed in bounded memory).
#include "../support.hpp"

#include <sluice/http/router.hpp>
#include <sluice/http/server.hpp>

using namespace sluice;
using namespace test;

namespace {

// Decodes the chunked body that starts at `at` in `raw`; sets `complete` when the
// last chunk was there, and `at` past it.
std::string dechunk(const std::string& raw, std::size_t& at, bool& complete) {
  std::string body;
  complete = false;
  for (;;) {
    const auto eol = raw.find("\r\n", at);
    if (eol == std::string::npos) return body;
    const std::size_t n = std::stoul(raw.substr(at, eol - at), nullptr, 16);
    at = eol + 2;
    if (n == 0) {
      at = raw.find("\r\n", at);
      if (at == std::string::npos) return body;
      at += 2;
      complete = true;
      return body;
    }
    if (raw.size() < at + n + 2) return body + raw.substr(at);
    body += raw.substr(at, n);
    at += n + 2;
  }
}

struct parsed {
  int status = 0;
  std::string head;
  std::string body;
  bool complete = false;
};

// Every response in `raw`, with its body (Content-Length or chunked).
std::vector<parsed> responses(const std::string& raw) {
  std::vector<parsed> out;
  std::size_t at = 0;
  while (at < raw.size()) {
    const auto end = raw.find("\r\n\r\n", at);
    if (end == std::string::npos || raw.compare(at, 9, "HTTP/1.1 ") != 0) break;
    parsed p;
    p.status = std::stoi(raw.substr(at + 9, 3));
    p.head = raw.substr(at, end + 4 - at);
    at = end + 4;
    if (p.status == 100) {
      out.push_back(p);
      continue;
    }
    if (p.head.find("Transfer-Encoding: chunked") != std::string::npos) {
      p.body = dechunk(raw, at, p.complete);
    } else if (auto cl = p.head.find("Content-Length: "); cl != std::string::npos) {
      const std::size_t n = std::stoul(p.head.substr(cl + 16));
      p.body = raw.substr(at, n);
      p.complete = p.body.size() == n;
      at += p.body.size();
    } else {
      p.complete = true;
    }
    out.push_back(p);
    if (!p.complete) break;
  }
  return out;
}

std::vector<int> statuses(const std::vector<parsed>& rs) {
  std::vector<int> out;
  for (const auto& r : rs)
    out.push_back(r.status);
  return out;
}

// Echoes the body back, chunked, as it arrives.
task<void> echo(const http::request&, http::body_reader& body, http::response_writer& out) {
  std::optional<result<void>> started;
  for (;;) {
    auto piece = co_await body.next();
    REQUIRE(piece);
    if (!started) {
      started = co_await out.start(200);
      REQUIRE(*started);
    }
    if (piece->empty()) break;
    auto w = co_await out.write(*piece);
    REQUIRE(w);
  }
  auto f = co_await out.finish();
  REQUIRE(f);
}

struct run_result {
  result<http::connection_report> report = error(errc::not_a_socket, "not run");
  std::string received;
};

// Serves `s` with `svc` while the client writes `requests` (then half-closes, unless
// `keep_open`) and reads until the server closes, concurrently.
run_result exchange(io_context& io, const http::service& svc, const std::string& requests,
                    http::server_options o = {}) {
  auto [c, s] = sync_wait(io, connected_pair(io));
  run_result out;
  auto server = [&]() -> task<void> { out.report = co_await http::serve_connection(s, svc, o); };
  auto writer = [&]() -> task<void> {
    auto sent = co_await c.send_all(bytes(requests));
    if (!sent) co_return; // the server may close first (a rejected request)
    (void)co_await c.shutdown_send();
  };
  auto reader = [&]() -> task<void> { out.received = co_await recv_to_end(c); };
  sync_wait(io, when_all(server(), writer(), reader()));
  return out;
}

http::service streaming(http::stream_handler h) { return http::service{{}, std::move(h), {}}; }

std::string post(std::string_view target, const std::string& body, std::string extra = {}) {
  return fmt::format("POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{}\r\n{}", target,
                     body.size(), extra, body);
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

} // namespace

TEST_CASE("A streaming handler echoes a 4 MiB body as it arrives, chunked") {
  io_context io;
  const std::string body = pattern(4 << 20);
  const auto r = exchange(io, streaming(echo), post("/echo", body) + post("/echo", "tail"));
  REQUIRE(r.report);
  CHECK(r.report->requests == 2);
  const auto rs = responses(r.received);
  REQUIRE(rs.size() == 2);
  CHECK(rs[0].status == 200);
  CHECK(rs[0].complete);
  CHECK(rs[0].body.size() == body.size());
  CHECK(rs[0].body == body);
  CHECK(rs[1].body == "tail");
}

TEST_CASE("A streamed response with a Content-Length; HEAD gets its head alone") {
  io_context io;
  auto h = [](const http::request&, http::body_reader&, http::response_writer& out) -> task<void> {
    auto s = co_await out.start(200, {}, 10);
    REQUIRE(s);
    for (std::string_view part : {"01234", "56789"}) {
      auto w = co_await out.write(part);
      REQUIRE(w);
    }
    auto f = co_await out.finish();
    REQUIRE(f);
  };
  const auto r = exchange(io, streaming(h),
                          "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                          "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(r.report);
  CHECK(r.report->requests == 3);
  // The HEAD response says Content-Length: 10 and carries nothing, so the third
  // response follows its head directly.
  const auto first = r.received.find("0123456789");
  REQUIRE(first != std::string::npos);
  const auto head2 = r.received.find("HTTP/1.1 200", first);
  const auto head3 = r.received.find("HTTP/1.1 200", head2 + 1);
  REQUIRE(head3 != std::string::npos);
  CHECK(r.received.substr(head2, head3 - head2).find("Content-Length: 10\r\n") !=
        std::string::npos);
  CHECK(r.received.substr(head2, head3 - head2).ends_with("\r\n\r\n"));
  CHECK(r.received.substr(head3).ends_with("0123456789"));
}

TEST_CASE("Streaming and buffered handlers share a connection; pipelined responses stay in "
          "order") {
  io_context io;
  http::router routes;
  routes.get("/plain/{n}", [](http::routed& q) { return http::text("plain " + q.param("n")); });
  routes.stream("POST", "/echo",
                [](http::routed& q, http::body_reader& body, http::response_writer& out) {
                  return echo(q.head, body, out);
                });
  const auto r = exchange(io, routes.to_service(),
                          "GET /plain/1 HTTP/1.1\r\nHost: x\r\n\r\n" + post("/echo", "hello") +
                              "GET /plain/2 HTTP/1.1\r\nHost: x\r\n\r\n" + post("/echo", "again") +
                              "GET /plain/3 HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(r.report);
  CHECK(r.report->requests == 5);
  const auto rs = responses(r.received);
  REQUIRE(rs.size() == 5);
  CHECK(rs[0].body == "plain 1");
  CHECK(rs[1].body == "hello");
  CHECK(rs[2].body == "plain 2");
  CHECK(rs[3].body == "again");
  CHECK(rs[4].body == "plain 3");
  // A streaming route served through to_handler() is a 500 naming the way to serve it.
  const auto buffered =
      exchange(io, http::service{routes.to_handler(), {}, {}}, post("/echo", "x"));
  REQUIRE(buffered.report);
  CHECK(buffered.received.find("500") != std::string::npos);
  CHECK(buffered.received.find("to_service()") != std::string::npos);
}

TEST_CASE("A streaming handler that throws: 500 before its response started, a cut "
          "connection after") {
  io_context io;
  std::vector<std::string> logged;
  http::server_options o;
  o.log = [&](std::string_view m) { logged.emplace_back(m); };
  auto h = [](const http::request& req, http::body_reader&,
              http::response_writer& out) -> task<void> {
    if (req.target == "/early") throw std::runtime_error("broke before");
    if (req.target == "/late") {
      auto s = co_await out.start(200);
      REQUIRE(s);
      auto w = co_await out.write("partial");
      REQUIRE(w);
      throw std::runtime_error("broke after");
    }
    if (req.target == "/nothing") co_return; // no response at all
    (void)co_await out.send(http::text("fine"));
  };
  SECTION("before: 500, and the connection goes on") {
    const auto r = exchange(io, streaming(h),
                            "GET /early HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n",
                            o);
    REQUIRE(r.report);
    CHECK(r.report->internal_errors == 2);
    CHECK(statuses(responses(r.received)) == std::vector<int>{500, 500, 200});
    REQUIRE(logged.size() == 2);
    CHECK(logged[0].find("broke before") != std::string::npos);
    CHECK(logged[1].find("returned without a response") != std::string::npos);
  }
  SECTION("after: the response is cut, never finished as if whole") {
    const auto r = exchange(io, streaming(h),
                            "GET /late HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n",
                            o);
    CHECK(!r.report); // the connection was reset
    const auto rs = responses(r.received);
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].body == "partial");
    CHECK(!rs[0].complete);
    REQUIRE(!logged.empty());
    CHECK(logged[0].find("broke after") != std::string::npos);
  }
}

TEST_CASE("A body the streaming handler left unread is discarded within max_unread_body; past "
          "it the connection closes after the response") {
  io_context io;
  auto h = [](const http::request&, http::body_reader&, http::response_writer& out) -> task<void> {
    (void)co_await out.send(http::text("not reading"));
  };
  http::server_options o;
  o.max_unread_body = 64 * 1024;
  SECTION("small: kept alive") {
    const auto r = exchange(io, streaming(h),
                            post("/a", pattern(1000)) + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", o);
    REQUIRE(r.report);
    CHECK(r.report->requests == 2);
    const auto rs = responses(r.received);
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].head.find("Connection: close") == std::string::npos);
  }
  SECTION("large: Connection: close, nothing more served") {
    const auto r = exchange(io, streaming(h),
                            post("/a", pattern(1 << 20)) + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", o);
    const auto rs = responses(r.received);
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].body == "not reading");
  }
}

TEST_CASE("100 Continue with a streaming handler: sent when the body is wanted, not before a "
          "refusal") {
  io_context io;
  auto h = [](const http::request& req, http::body_reader& body,
              http::response_writer& out) -> task<void> {
    if (req.target == "/refuse") {
      (void)co_await out.send(http::text("no", 403));
      co_return;
    }
    auto all = co_await body.read_all(1024);
    REQUIRE(all);
    (void)co_await out.send(http::text("got " + *all));
  };
  for (const std::string target : {"/take", "/refuse"}) {
    CAPTURE(target);
    auto [c, s] = sync_wait(io, connected_pair(io));
    std::string first, rest;
    auto serve = [&]() -> task<void> { (void)co_await http::serve_connection(s, streaming(h)); };
    auto client = [&]() -> task<void> {
      const std::string head = fmt::format(
          "POST {} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
          target);
      auto sent = co_await c.send_all(bytes(head));
      REQUIRE(sent);
      std::array<std::byte, 512> buf;
      auto n = co_await with_timeout(c.recv(buf), std::chrono::seconds(10));
      REQUIRE(n);
      first = text(std::span(buf).first(*n));
      if (first.starts_with("HTTP/1.1 100")) {
        auto b = co_await c.send_all(bytes("hello"));
        REQUIRE(b);
      }
      (void)co_await c.shutdown_send();
      rest = co_await recv_to_end(c);
    };
    sync_wait(io, when_all(serve(), client()));
    if (target == "/take") {
      CHECK(first.starts_with("HTTP/1.1 100 Continue\r\n\r\n"));
      CHECK((first + rest).find("got hello") != std::string::npos);
    } else {
      CHECK(first.starts_with("HTTP/1.1 403"));
      CHECK((first + rest).find("100 Continue") == std::string::npos);
    }
  }
}

TEST_CASE("A streamed body over max_streamed_body, or trickled below min_body_rate, is "
          "answered 413 or 408") {
  io_context io;
  auto h = [](const http::request&, http::body_reader& body,
              http::response_writer& out) -> task<void> {
    for (;;) {
      auto piece = co_await body.next();
      if (!piece || piece->empty()) co_return; // the server answers the client's error
    }
    (void)out;
  };
  SECTION("413") {
    http::server_options o;
    o.max_streamed_body = 1000;
    o.log = [](std::string_view) {}; // the first handler answers nothing: a 500
    o.limits.max_body = 10;          // bounds buffered handlers only
    const auto r =
        exchange(io, streaming(h), post("/a", pattern(500)) + post("/a", pattern(2000)), o);
    REQUIRE(r.report);
    CHECK(statuses(responses(r.received)) == std::vector<int>{500, 413});
    CHECK(r.report->rejected_status == 413);
  }
  SECTION("408") {
    http::server_options o;
    o.body_timeout = std::chrono::milliseconds(200);
    auto [c, s] = sync_wait(io, connected_pair(io));
    result<http::connection_report> report = error(errc::not_a_socket, "not run");
    std::string got;
    auto serve = [&]() -> task<void> {
      report = co_await http::serve_connection(s, streaming(h), o);
    };
    auto client = [&]() -> task<void> {
      auto sent = co_await c.send_all(
          bytes("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this"));
      REQUIRE(sent);
      got = co_await recv_to_end(c);
    };
    sync_wait(io, when_all(serve(), client()));
    REQUIRE(report);
    CHECK(report->rejected_status == 408);
    CHECK(got.starts_with("HTTP/1.1 408"));
  }
}

TEST_CASE("response_writer refuses misuse: a write past the Content-Length, a finish short of "
          "it") {
  io_context io;
  std::vector<std::string> logged;
  http::server_options o;
  o.log = [&](std::string_view m) { logged.emplace_back(m); };
  auto h = [](const http::request& req, http::body_reader&,
              http::response_writer& out) -> task<void> {
    auto s = co_await out.start(200, {}, 4);
    REQUIRE(s);
    if (req.target == "/over") {
      auto w = co_await out.write("12345");
      (void)w;
    }
    auto w = co_await out.write("12");
    REQUIRE(w);
    auto f = co_await out.finish(); // short: throws
    (void)f;
  };
  for (const std::string target : {"/over", "/short"}) {
    CAPTURE(target);
    logged.clear();
    const auto r =
        exchange(io, streaming(h), fmt::format("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", target), o);
    CHECK(!r.report);
    const auto rs = responses(r.received);
    REQUIRE(rs.size() == 1);
    CHECK(!rs[0].complete);
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find(target == "/over" ? "past the Content-Length" : "2 of 4 bytes") !=
          std::string::npos);
  }
}
