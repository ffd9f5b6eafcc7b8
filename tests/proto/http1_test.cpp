// HTTP/1.1 parser and serializer without sockets. Every input is fed whole, split in
// two at every byte position, and byte by byte; all ways must give the same events.
#include <sluice/proto/http1.hpp>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>

using namespace sluice::proto::http1;

namespace {

// Events as text: "GET /a 1.1 ka", "body:hello", "end", "end trailers:x=y", "eof", "error:400".
std::string describe(const event& ev, std::string& body) {
  if (auto* h = std::get_if<request_head>(&ev)) {
    auto& r = h->head;
    std::string s = r.method + " " + r.target + " 1." + std::to_string(r.minor_version) +
                    (r.keep_alive ? " ka" : " close");
    if (r.expect_continue) s += " expect";
    return s;
  }
  if (auto* h = std::get_if<response_head>(&ev))
    return "status " + std::to_string(h->head.status) + (h->head.keep_alive ? " ka" : " close");
  if (auto* b = std::get_if<body_data>(&ev)) {
    body.append(reinterpret_cast<const char*>(b->data.data()), b->data.size());
    return {};
  }
  if (auto* e = std::get_if<message_end>(&ev)) {
    std::string s = "body:" + body;
    body.clear();
    for (const auto& t : e->trailers.all())
      s += " trailer:" + t.name + "=" + t.value;
    return s;
  }
  if (std::holds_alternative<end_of_input>(ev)) return "eof";
  if (auto* e = std::get_if<parse_error>(&ev)) return "error:" + std::to_string(e->status);
  return {};
}

enum class feed { copied, borrowed };

// Feeds `pieces` one after another, then EOF if asked; collects events. Borrowed: each
// piece lives in its own heap buffer, destroyed as soon as the parser asks for more data
// (as a lent buffer would go back): a span kept past that is a use-after-free that
// ASan reports.
std::vector<std::string> run(const std::vector<std::string_view>& pieces, bool eof, limits l = {},
                             role r = role::server, std::string_view method = "GET",
                             feed how = feed::copied) {
  parser p(r, l);
  p.expect_response_to(method);
  std::vector<std::string> out;
  std::string body;
  auto drain = [&] {
    for (;;) {
      auto ev = p.next_event();
      if (std::holds_alternative<need_data>(ev)) return true;
      auto d = describe(ev, body);
      if (!d.empty()) out.push_back(d);
      if (std::holds_alternative<parse_error>(ev) || std::holds_alternative<end_of_input>(ev))
        return false;
    }
  };
  for (auto piece : pieces) {
    if (how == feed::copied) {
      p.receive_data(piece);
      if (!drain()) return out;
      continue;
    }
    auto lent = std::make_unique<std::byte[]>(piece.size());
    std::memcpy(lent.get(), piece.data(), piece.size());
    p.receive_borrowed(std::span<const std::byte>(lent.get(), piece.size()));
    const bool more = drain();
    if (more) {
      CHECK_FALSE(p.borrowing());
      lent.reset();
    }
    if (!more) return out;
  }
  if (eof) {
    p.receive_eof();
    drain();
  }
  return out;
}

// Checks that every way of splitting `input` gives `expected`.
void check_all_splits(std::string_view input, const std::vector<std::string>& expected,
                      bool eof = true, limits l = {}, role r = role::server,
                      std::string_view method = "GET") {
  INFO("input: " << std::string(input));
  for (feed how : {feed::copied, feed::borrowed}) {
    INFO((how == feed::copied ? "copied" : "borrowed"));
    CHECK(run({input}, eof, l, r, method, how) == expected);
    for (std::size_t k = 1; k < input.size(); ++k) {
      INFO("split at " << k);
      CHECK(run({input.substr(0, k), input.substr(k)}, eof, l, r, method, how) == expected);
    }
    std::vector<std::string_view> bytes;
    for (std::size_t k = 0; k < input.size(); ++k)
      bytes.push_back(input.substr(k, 1));
    INFO("byte by byte");
    CHECK(run(bytes, eof, l, r, method, how) == expected);
  }
}

std::string field_lines(std::size_t count, std::size_t value_size) {
  std::string s;
  for (std::size_t i = 0; i < count; ++i)
    s += "X-" + std::to_string(i) + ": " + std::string(value_size, 'v') + "\r\n";
  return s;
}

} // namespace

TEST_CASE("A simple GET is parsed, then end of input") {
  check_all_splits("GET /index.html HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n",
                   {"GET /index.html 1.1 ka", "body:", "eof"});
}

TEST_CASE("Header fields are trimmed and found case-insensitively") {
  parser p(role::server);
  p.receive_data("GET / HTTP/1.1\r\nHost: a\r\nX-Thing: \t spaced value \t\r\n\r\n");
  auto ev = p.next_event();
  auto* h = std::get_if<request_head>(&ev);
  REQUIRE(h);
  REQUIRE(h->head.headers.find("x-thing"));
  CHECK(*h->head.headers.find("X-THING") == "spaced value");
}

TEST_CASE("A Content-Length body is delivered whole") {
  check_all_splits("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
                   {"POST /echo 1.1 ka", "body:hello world", "eof"});
}

TEST_CASE("A chunked body with extensions and trailers is decoded") {
  check_all_splits("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n",
                   {"POST /u 1.1 ka", "body:hello world trailer:X-Checksum=abc", "eof"});
}

TEST_CASE("Chunk extensions follow RFC 9112 7.1.1 exactly") {
  const std::string head = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<std::string> ok{"POST /u 1.1 ka", "body:hello", "eof"};
  const std::vector<std::string> bad{"POST /u 1.1 ka", "error:400"};
  auto with = [&](std::string_view ext) {
    return head + "5" + std::string(ext) + "\r\nhello\r\n0\r\n\r\n";
  };
  // Accepted: names alone, token and quoted values, quoted-pairs, whitespace around ";"
  // and "=" (BWS), several extensions.
  for (const char* ext : {";a", ";a=b", ";a=\"b c\"", ";a=\"q\\\"uote\"", " ; a = b", ";a;b=c",
                          ";a=\"\"", ";a=\"x\\\\\"", "\t;a"})
    check_all_splits(with(ext), ok);
  // Rejected: ";" with no name, "=" with no value, an unterminated quoted string, a
  // stray character, a control character in a quoted string, a bare word.
  for (const char* ext : {";", "; ", ";=b", ";a=", ";a=\"b", ";a=\"b\\", ";a=b c", ";a b",
                          ";a=\"b\x01\"", " x", ";a=b;", ";a@b"})
    check_all_splits(with(ext), bad);
}

TEST_CASE("Pipelined requests come out in order") {

  check_all_splits(
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
      "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
      {"GET /1 1.1 ka", "body:", "POST /2 1.1 ka", "body:abc", "GET /3 1.1 close", "body:", "eof"});
}

TEST_CASE("Keep-alive follows the version and the Connection field") {
  check_all_splits("GET / HTTP/1.0\r\n\r\n", {"GET / 1.0 close", "body:", "eof"});
  check_all_splits("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                   {"GET / 1.0 ka", "body:", "eof"});
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n",
                   {"GET / 1.1 close", "body:", "eof"});
}

TEST_CASE("Expect: 100-continue is reported; other expectations are 417") {
  check_all_splits(
      "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
      {"PUT /f 1.1 ka expect", "body:ok", "eof"});
  check_all_splits("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", {"error:417"});
}

TEST_CASE("Empty lines before a request line are ignored") {
  check_all_splits("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", {"GET / 1.1 ka", "body:", "eof"});
}

TEST_CASE("End of stream inside a message is 400") {
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\n", {"error:400"});
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab",
                   {"POST / 1.1 ka", "error:400"});
}

TEST_CASE("Malformed request lines and versions are rejected") {
  check_all_splits("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", {"error:400"});
  check_all_splits("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", {"error:400"});
  check_all_splits("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", {"error:400"});
  check_all_splits("GET / HTTP/2.0\r\nHost: a\r\n\r\n", {"error:505"});
  check_all_splits("GET / HTTX/1.1\r\nHost: a\r\n\r\n", {"error:400"});
}

TEST_CASE("HTTP/1.1 needs exactly one Host") {
  check_all_splits("GET / HTTP/1.1\r\n\r\n", {"error:400"});
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {"error:400"});
}

// --- limits: at the limit passes, one past fails with the limit's own status ---------

TEST_CASE("Request line: at the limit passes, one byte more is 414") {
  limits l;
  l.max_request_line = 64;
  const std::string at = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1"; // 64 bytes
  REQUIRE(at.size() == 64);
  CHECK(run({at + "\r\nHost: a\r\n\r\n"}, true, l) ==
        std::vector<std::string>{"GET /" + std::string(50, 'a') + " 1.1 ka", "body:", "eof"});
  const std::string over = "GET /" + std::string(51, 'a') + " HTTP/1.1";
  check_all_splits(over + "\r\nHost: a\r\n\r\n", {"error:414"}, true, l);
}

TEST_CASE("Header bytes: at the limit passes, one byte more is 431") {
  limits l;
  l.max_header_bytes = 200;
  std::string fieldsec = "Host: a\r\n"; // 9 bytes
  fieldsec += "X: " + std::string(200 - 9 - 5, 'v') + "\r\n";
  REQUIRE(fieldsec.size() == 200);
  CHECK(run({"GET / HTTP/1.1\r\n" + fieldsec + "\r\n"}, true, l).front() == "GET / 1.1 ka");
  std::string over = "Host: a\r\nX: " + std::string(200 - 9 - 5 + 1, 'v') + "\r\n";
  check_all_splits("GET / HTTP/1.1\r\n" + over + "\r\n", {"error:431"}, true, l);
}

TEST_CASE("Header count: at the limit passes, one more is 431") {
  limits l;
  l.max_header_count = 10;
  CHECK(run({"GET / HTTP/1.1\r\nHost: a\r\n" + field_lines(9, 3) + "\r\n"}, true, l).front() ==
        "GET / 1.1 ka");
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\n" + field_lines(10, 3) + "\r\n", {"error:431"},
                   true, l);
}

TEST_CASE("Body size: at the limit passes, one byte more is 413") {
  limits l;
  l.max_body = 5;
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n12345",
                   {"POST / 1.1 ka", "body:12345", "eof"}, true, l);
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n123456", {"error:413"},
                   true, l);
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n3\r\n123\r\n2\r\n45\r\n0\r\n\r\n",
                   {"POST / 1.1 ka", "body:12345", "eof"}, true, l);
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n3\r\n123\r\n3\r\n456\r\n0\r\n\r\n",
                   {"POST / 1.1 ka", "error:413"}, true, l);
}

TEST_CASE("The default limits are ones a public server can live with") {
  const limits l;
  CHECK(l.max_request_line == 8192);
  CHECK(l.max_header_bytes == 32768);
  CHECK(l.max_header_count == 100);
  CHECK(l.max_body == 8u << 20);
}

// --- request smuggling vectors --------------------------------------------------------

TEST_CASE("Smuggling: Content-Length together with Transfer-Encoding is rejected") {
  check_all_splits(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n",
      {"error:400"});
}

TEST_CASE("Smuggling: differing duplicate Content-Length is rejected, identical ones pass") {
  check_all_splits(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      {"error:400"});
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd", {"error:400"});
  check_all_splits(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      {"POST / 1.1 ka", "body:abc", "eof"});
}

TEST_CASE("Smuggling: invalid Content-Length values are rejected") {
  for (auto v : {"-1", "+3", "3 3", "0x3", "", "99999999999999999999"}) {
    INFO(v);
    check_all_splits(std::string("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ") + v + "\r\n\r\n",
                     {"error:400"});
  }
}

TEST_CASE("Smuggling: obs-fold is rejected") {
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", {"error:400"});
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n", {"error:400"});
}

TEST_CASE("Smuggling: bare LF or CR where CRLF is required is rejected") {
  check_all_splits("GET / HTTP/1.1\nHost: a\r\n\r\n", {"error:400"});
  check_all_splits("GET / HTTP/1.1\r\nHost: a\n\r\n", {"error:400"});
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", {"error:400"});
  check_all_splits(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
      {"POST / 1.1 ka", "error:400"});
  check_all_splits(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
      {"POST / 1.1 ka", "error:400"});
}

TEST_CASE("Smuggling: whitespace before the colon is rejected") {
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", {"error:400"});
  check_all_splits("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n",
                   {"error:400"});
}

TEST_CASE("Smuggling: invalid or overflowing chunk sizes are rejected") {
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (auto size : {"g", "", " 3", "3 ", "-3", "0x3", "3\t"}) {
    INFO("chunk size \"" << size << "\"");
    check_all_splits(head + size + "\r\nabc\r\n0\r\n\r\n", {"POST / 1.1 ka", "error:400"});
  }
  limits big;
  big.max_body = ~std::size_t(0);
  check_all_splits(head + "10000000000000000\r\n", {"POST / 1.1 ka", "error:400"}, true, big);
  check_all_splits(head + "ffffffffffffffff\r\n", {"POST / 1.1 ka", "error:413"});
}

TEST_CASE("Smuggling: unknown transfer codings are rejected") {
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                   {"error:501"});
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                   {"error:400"});
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
                   {"error:400"});
  check_all_splits("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                   {"error:400"});
}

TEST_CASE("Smuggling: Transfer-Encoding in HTTP/1.0 is rejected") {
  check_all_splits("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {"error:400"});
}

TEST_CASE("Control characters in field values are rejected") {
  check_all_splits(std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 36), {"error:400"});
}

// --- responses (client role) ---------------------------------------------------------

TEST_CASE("Responses: Content-Length, chunked, until close, and bodiless ones") {
  check_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                   {"status 200 ka", "body:hi", "eof"}, true, {}, role::client);
  check_all_splits("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                   {"status 200 ka", "body:hi", "eof"}, true, {}, role::client);
  check_all_splits("HTTP/1.0 200 OK\r\n\r\nall of it",
                   {"status 200 close", "body:all of it", "eof"}, true, {}, role::client);
  check_all_splits("HTTP/1.1 204 No Content\r\n\r\n", {"status 204 ka", "body:", "eof"}, true, {},
                   role::client);
  check_all_splits("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                   {"status 200 ka", "body:", "eof"}, true, {}, role::client, "HEAD");
  check_all_splits("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
                   {"status 100 ka", "body:", "status 200 ka", "body:x", "eof"}, true, {},
                   role::client);
}

// --- serializer ----------------------------------------------------------------------

TEST_CASE("A serialized response parses back to the same message") {
  response_header r;
  r.status = 404;
  r.headers.add("Content-Type", "text/plain");
  r.keep_alive = false;
  std::string out;
  serialize(r, "nothing here", out);
  CHECK(out == "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
               "Connection: close\r\n\r\nnothing here");
  check_all_splits(out, {"status 404 close", "body:nothing here", "eof"}, true, {}, role::client);
}

TEST_CASE("A serialized chunked response parses back, trailers included") {
  response_header r;
  std::string out;
  serialize_chunked_head(r, out);
  serialize_chunk("hello ", out);
  serialize_chunk("", out); // ignored: would end the body
  serialize_chunk("world", out);
  fields t;
  t.add("X-Sum", "1");
  serialize_last_chunk(t, out);
  check_all_splits(out, {"status 200 ka", "body:hello world trailer:X-Sum=1", "eof"}, true, {},
                   role::client);
}

TEST_CASE("A serialized request parses back") {
  request q;
  q.method = "POST";
  q.target = "/echo";
  q.headers.add("Host", "example");
  std::string out;
  serialize(q, "payload", out);
  check_all_splits(out, {"POST /echo 1.1 ka", "body:payload", "eof"});
}

TEST_CASE("Header values that would split the message are a local error") {
  response_header r;
  r.headers.add("X-Evil", "a\r\nSet-Cookie: b");
  std::string out;
  CHECK_THROWS_AS(serialize(r, "", out), local_error);
  response_header n;
  n.headers.add("Bad Name", "v");
  CHECK_THROWS_AS(serialize(n, "", out), local_error);
}

TEST_CASE("A borrowed buffer is parsed in place; only an unconsumed tail is kept") {
  parser p(role::server);
  const std::string two = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\n"
                          "Content-Length: 5\r\n\r\nhello"
                          "GET /c HTTP/1.1\r\nHo";
  p.receive_borrowed(std::as_bytes(std::span(two.data(), two.size())));
  CHECK(p.borrowing());
  std::vector<std::string> seen;
  std::string body;
  for (;;) {
    auto ev = p.next_event();
    if (std::holds_alternative<need_data>(ev)) break;
    if (auto* b = std::get_if<body_data>(&ev)) {
      // Body bytes are a view of the caller's buffer, not a copy.
      CHECK(reinterpret_cast<const char*>(b->data.data()) >= two.data());
      CHECK(reinterpret_cast<const char*>(b->data.data()) < two.data() + two.size());
    }
    seen.push_back(describe(ev, body));
  }
  CHECK_FALSE(p.borrowing());
  CHECK(p.buffered() == std::string_view("GET /c HTTP/1.1\r\nHo").size());
  // The caller's buffer may go now: the tail was copied.
  p.receive_borrowed(std::as_bytes(std::span(std::string_view("st: a\r\n\r\n"))));
  for (;;) {
    auto ev = p.next_event();
    if (std::holds_alternative<need_data>(ev)) break;
    seen.push_back(describe(ev, body));
  }
  const std::vector<std::string> expected{"GET /a 1.1 ka", "body:",         "POST /b 1.1 ka", "",
                                          "body:hello",    "GET /c 1.1 ka", "body:"};
  CHECK(seen == expected);
  CHECK(p.buffered() == 0);
}
