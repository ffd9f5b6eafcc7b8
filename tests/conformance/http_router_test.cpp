// http::router on every backend: routes by method and pattern, plain and coroutine
// handlers, 404 / 405 with Allow / HEAD served by GET / 400 for a broken escape, the
// query split, and the text and JSON helpers, through a real connection.
#include "../support.hpp"

#include <sluice/http/router.hpp>

using namespace sluice;
using namespace test;

namespace {

http::router make_router() {
  http::router r;
  r.get("/", [](http::routed&) { return http::text("root\n"); });
  r.get("/users/{id}", [](http::routed& q) {
    return http::json(fmt::format("{{\"id\":\"{}\",\"sort\":\"{}\"}}",
                                  http::json_escape(q.param("id")),
                                  http::json_escape(q.query_value("sort", "none"))));
  });
  r.post("/users/{id}", [](http::routed& q) -> task<http::response> {
    co_await yield(); // a coroutine handler
    co_return http::text(q.param("id") + " got " + q.body, 201);
  });
  r.put("/users/{id}", [](http::routed& q) { return http::text("put " + q.param("id")); });
  r.get("/files/{path*}", [](http::routed& q) { return http::text("file " + q.param("path")); });
  return r;
}

http::request get(std::string method, std::string target) {
  http::request r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

const std::string* header(const http::response& r, std::string_view name) {
  return r.headers.find(name);
}

} // namespace

TEST_CASE("A router answers by method and pattern, with plain and coroutine handlers") {
  io_context io;
  const http::router r = make_router();
  auto root = sync_wait(io, r(get("GET", "/"), ""));
  CHECK(root.status == 200);
  CHECK(root.body == "root\n");
  REQUIRE(header(root, "Content-Type"));
  CHECK(*header(root, "Content-Type") == "text/plain; charset=utf-8");

  auto user = sync_wait(io, r(get("GET", "/users/a%22b?sort=name%20asc&x"), ""));
  CHECK(user.status == 200);
  CHECK(user.body == "{\"id\":\"a\\\"b\",\"sort\":\"name asc\"}");
  CHECK(*header(user, "Content-Type") == "application/json");

  auto created = sync_wait(io, r(get("POST", "/users/7"), "payload"));
  CHECK(created.status == 201);
  CHECK(created.body == "7 got payload");

  auto file = sync_wait(io, r(get("GET", "/files/a/b.txt"), ""));
  CHECK(file.body == "file a/b.txt");
}

TEST_CASE("A router answers 404, 405 with Allow, HEAD by GET, and 400 for a broken escape") {
  io_context io;
  const http::router r = make_router();
  auto missing = sync_wait(io, r(get("GET", "/nope"), ""));
  CHECK(missing.status == 404);

  auto wrong = sync_wait(io, r(get("DELETE", "/users/7"), ""));
  CHECK(wrong.status == 405);
  REQUIRE(header(wrong, "Allow"));
  CHECK(*header(wrong, "Allow") == "GET, POST, PUT, HEAD");

  auto head = sync_wait(io, r(get("HEAD", "/users/7"), ""));
  CHECK(head.status == 200);

  auto broken = sync_wait(io, r(get("GET", "/users/%zz"), ""));
  CHECK(broken.status == 400);
  auto broken_query = sync_wait(io, r(get("GET", "/users/1?a=%2"), ""));
  CHECK(broken_query.status == 400);
}

TEST_CASE("A malformed route pattern is refused when it is added, naming it") {
  http::router r;
  CHECK_THROWS_WITH(r.get("users/{id", [](http::routed&) { return http::text(""); }),
                    Catch::Contains("users/{id"));
}

TEST_CASE("A router serves a real connection through serve_connection; HEAD gets no body") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  const http::handler h = make_router().to_handler();
  std::string received;
  auto server = [&]() -> task<void> { (void)co_await http::serve_connection(s, h); };
  auto client = [&]() -> task<void> {
    auto w = co_await c.send_all(bytes("GET /users/42?sort=x HTTP/1.1\r\nHost: t\r\n\r\n"
                                       "HEAD /users/42 HTTP/1.1\r\nHost: t\r\n\r\n"
                                       "PATCH /users/42 HTTP/1.1\r\nHost: t\r\n\r\n"));
    REQUIRE(w);
    auto fin = co_await c.shutdown_send();
    REQUIRE(fin);
    received = co_await recv_to_end(c);
  };
  sync_wait(io, when_all(server(), client()));
  const auto first = received.find("HTTP/1.1 200");
  const auto second = received.find("HTTP/1.1 200", first + 1);
  const auto third = received.find("HTTP/1.1 405");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  REQUIRE(third != std::string::npos);
  CHECK(received.find("{\"id\":\"42\",\"sort\":\"x\"}") < second);
  // The HEAD response carries the GET's Content-Length and no body: the next bytes are
  // the third response's status line.
  const std::string head_part = received.substr(second, third - second);
  const std::string head_body = "{\"id\":\"42\",\"sort\":\"none\"}"; // what GET would send
  CHECK(head_part.find(fmt::format("Content-Length: {}", head_body.size())) != std::string::npos);
  CHECK(head_part.find(head_body) == std::string::npos);
  CHECK(head_part.substr(head_part.size() - 4) == "\r\n\r\n");
  CHECK(received.find("Allow: GET, POST, PUT, HEAD") != std::string::npos);
}
