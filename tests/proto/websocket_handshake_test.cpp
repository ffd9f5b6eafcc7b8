// The WebSocket opening handshake and permessage-deflate without sockets: the RFC 6455
// key example, SHA-1 and base64 vectors, every refusal with its status, subprotocol and
// extension negotiation on both sides, and compressed messages (RFC 7692's examples,
// context takeover, limits on what inflates, RSV1 rules) split at every byte.
#include <sluice/proto/websocket_handshake.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <string>
#include <string_view>

using namespace sluice::proto;
using namespace sluice::proto::websocket;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}
std::string hex(std::span<const std::byte> b) {
  std::string s;
  for (auto x : b)
    s += fmt::format("{:02x}", static_cast<unsigned>(x));
  return s;
}
std::vector<std::byte> raw(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v)
    out.push_back(std::byte(b));
  return out;
}
connection::mask_source zero_mask() {
  return [] { return std::array<std::byte, 4>{}; };
}

// A request head as http1::parser would produce it from `text`.
http1::request parse_request(std::string_view wire) {
  http1::parser p(http1::role::server);
  p.receive_data(wire);
  auto ev = p.next_event();
  REQUIRE(std::holds_alternative<http1::request_head>(ev));
  return std::get<http1::request_head>(ev).head;
}

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";

std::string upgrade_request(std::string_view extra) {
  return fmt::format("GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: {}\r\n"
                     "Sec-WebSocket-Version: 13\r\n{}\r\n",
                     rfc_key, extra);
}

// Every event of `wire` fed to `c` in pieces of `step`, as text.
std::vector<std::string> events(connection& c, std::span<const std::byte> wire, std::size_t step) {
  std::vector<std::string> out;
  if (step == 0) step = std::max<std::size_t>(wire.size(), 1);
  for (std::size_t i = 0; i < wire.size(); i += step) {
    c.receive_data(wire.subspan(i, std::min(step, wire.size() - i)));
    for (;;) {
      auto ev = c.next_event();
      if (std::holds_alternative<need_data>(ev)) break;
      if (auto* m = std::get_if<message>(&ev))
        out.push_back((m->kind == opcode::text ? "text:" : "binary:") + text(m->payload));
      if (auto* e = std::get_if<protocol_error>(&ev)) {
        out.push_back(fmt::format("error:{}:{}", e->code, e->description));
        return out;
      }
      if (auto* p = std::get_if<peer_close>(&ev))
        out.push_back(fmt::format("close:{}:{}", p->code, p->reason));
    }
  }
  return out;
}

std::vector<std::string> events_all_splits(const std::function<connection()>& make,
                                           std::span<const std::byte> wire) {
  auto c0 = make();
  const auto whole = events(c0, wire, 0);
  for (std::size_t step = 1; step < wire.size(); ++step) {
    INFO("pieces of " << step << " bytes");
    auto c = make();
    REQUIRE(events(c, wire, step) == whole);
  }
  return whole;
}

} // namespace

TEST_CASE("websocket handshake: SHA-1, base64 and the RFC 6455 key example") {
  CHECK(hex(detail::sha1(bytes("abc"))) == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(hex(detail::sha1(bytes(""))) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  // 56 bytes: the length no longer fits the first block.
  CHECK(hex(detail::sha1(bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))) ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  const std::string million(1'000'000, 'a');
  CHECK(hex(detail::sha1(bytes(million))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

  CHECK(detail::base64(bytes("")) == "");
  CHECK(detail::base64(bytes("f")) == "Zg==");
  CHECK(detail::base64(bytes("fo")) == "Zm8=");
  CHECK(detail::base64(bytes("foobar")) == "Zm9vYmFy");
  CHECK(text(*detail::unbase64("Zm9vYg==")) == "foob");
  CHECK(!detail::unbase64("Zm9vYg="));  // not a multiple of 4
  CHECK(!detail::unbase64("Zm9v!mFy")); // not the alphabet
  CHECK(!detail::unbase64("Zg=a"));     // data after padding
  CHECK(!detail::unbase64("Zh=="));     // non-zero dropped bits

  CHECK(accept_key(rfc_key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  std::array<std::byte, 16> nonce{};
  for (std::size_t i = 0; i < 16; ++i)
    nonce[i] = std::byte(i);
  CHECK(make_key(nonce) == "AAECAwQFBgcICQoLDA0ODw==");
}

TEST_CASE("websocket handshake: a server accepts RFC 6455's request with a 101") {
  auto d = server_handshake(parse_request(upgrade_request("")));
  REQUIRE(std::holds_alternative<accepted>(d));
  const auto& a = std::get<accepted>(d);
  CHECK(a.response.status == 101);
  CHECK(*a.response.headers.find("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(*a.response.headers.find("upgrade") == "websocket");
  CHECK(a.subprotocol.empty());
  CHECK(!a.deflate);
  CHECK(!a.response.headers.find("sec-websocket-extensions"));
  // Tokens are case-insensitive and may sit in lists.
  auto d2 = server_handshake(parse_request(
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: foo, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
      "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0ODw==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  CHECK(std::holds_alternative<accepted>(d2));
}

TEST_CASE("websocket handshake: each broken request is refused with its status and reason") {
  struct bad {
    std::string wire;
    int status;
    std::string reason;
    std::string field; // a field the refusal must carry, "name: value"
  };
  const std::string key = fmt::format("Sec-WebSocket-Key: {}\r\n", rfc_key);
  const std::vector<bad> cases = {
      {"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
       405, "a WebSocket handshake must be GET, not POST", "allow: GET"},
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 426,
       "not a WebSocket handshake (no \"Upgrade: websocket\" with \"Connection: upgrade\")",
       "upgrade: websocket"},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n" + key +
           "Sec-WebSocket-Version: 13\r\n\r\n",
       426, "not a WebSocket handshake (no \"Upgrade: websocket\" with \"Connection: upgrade\")",
       "upgrade: websocket"},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 8\r\n\r\n",
       426, "Sec-WebSocket-Version 8 (only 13 is spoken)", "sec-websocket-version: 13"},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "\r\n",
       426, "no Sec-WebSocket-Version (13 is spoken)", "sec-websocket-version: 13"},
      {"GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 13\r\n\r\n",
       400, "a WebSocket handshake needs HTTP/1.1", ""},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n",
       400, "no Sec-WebSocket-Key", ""},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
       400, "Sec-WebSocket-Key 'c2hvcnQ=' is not 16 bytes in base64", ""},
      {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key +
           "Sec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\nabc",
       400, "a WebSocket handshake with a body", ""},
  };
  for (const auto& c : cases) {
    INFO(c.wire);
    auto d = server_handshake(parse_request(c.wire));
    REQUIRE(std::holds_alternative<refused>(d));
    const auto& r = std::get<refused>(d);
    CHECK(r.response.status == c.status);
    CHECK(r.reason == c.reason);
    CHECK(!r.response.keep_alive);
    if (!c.field.empty()) {
      const auto colon = c.field.find(':');
      const std::string* v = r.response.headers.find(c.field.substr(0, colon));
      REQUIRE(v);
      CHECK(*v == c.field.substr(colon + 2));
    }
  }
  // HTTP/1.1's parser already answers a request without Host 400; a head built by
  // hand is checked too.
  auto no_host = parse_request(upgrade_request(""));
  no_host.headers = {};
  no_host.headers.add("Upgrade", "websocket");
  no_host.headers.add("Connection", "Upgrade");
  no_host.headers.add("Sec-WebSocket-Key", std::string(rfc_key));
  no_host.headers.add("Sec-WebSocket-Version", "13");
  auto d = server_handshake(no_host);
  REQUIRE(std::holds_alternative<refused>(d));
  CHECK(std::get<refused>(d).reason == "a WebSocket handshake without Host");
}

TEST_CASE("websocket handshake: subprotocols in the server's order of preference") {
  handshake_options o;
  o.subprotocols = {"v2.chat", "v1.chat"};
  auto d = server_handshake(
      parse_request(upgrade_request("Sec-WebSocket-Protocol: v1.chat, v2.chat\r\n")), o);
  REQUIRE(std::holds_alternative<accepted>(d));
  CHECK(std::get<accepted>(d).subprotocol == "v2.chat");
  CHECK(*std::get<accepted>(d).response.headers.find("sec-websocket-protocol") == "v2.chat");
  // Split over two fields.
  auto d2 =
      server_handshake(parse_request(upgrade_request(
                           "Sec-WebSocket-Protocol: x\r\nSec-WebSocket-Protocol: v1.chat\r\n")),
                       o);
  CHECK(std::get<accepted>(d2).subprotocol == "v1.chat");
  // None in common: accepted without one (the client decides whether to go on).
  auto d3 = server_handshake(parse_request(upgrade_request("Sec-WebSocket-Protocol: mqtt\r\n")), o);
  CHECK(std::get<accepted>(d3).subprotocol.empty());
  CHECK(!std::get<accepted>(d3).response.headers.find("sec-websocket-protocol"));
}

TEST_CASE("websocket handshake: permessage-deflate offers, accepted or declined") {
  handshake_options on;
  on.accept_deflate = true;
  auto answer = [&](std::string_view ext, std::optional<handshake_options> given = {}) {
    const handshake_options o = given.value_or(on);
    auto d = server_handshake(
        parse_request(upgrade_request(fmt::format("Sec-WebSocket-Extensions: {}\r\n", ext))), o);
    const auto& a = std::get<accepted>(d);
    const std::string* v = a.response.headers.find("sec-websocket-extensions");
    CHECK((v != nullptr) == a.deflate.has_value());
    return v ? *v : std::string("declined");
  };
  CHECK(answer("permessage-deflate") == "permessage-deflate");
  // What browsers send.
  CHECK(answer("permessage-deflate; client_max_window_bits") == "permessage-deflate");
  CHECK(answer("permessage-deflate; client_max_window_bits=10") ==
        "permessage-deflate; client_max_window_bits=10");
  // The client's window may be 8: only our decompressor reads it.
  CHECK(answer("permessage-deflate; client_max_window_bits=8") ==
        "permessage-deflate; client_max_window_bits=8");
  CHECK(answer("permessage-deflate; server_max_window_bits=12; server_no_context_takeover") ==
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12");
  CHECK(answer("permessage-deflate; client_no_context_takeover") ==
        "permessage-deflate; client_no_context_takeover");
  // A quoted value is a value.
  CHECK(answer("permessage-deflate; server_max_window_bits=\"10\"") ==
        "permessage-deflate; server_max_window_bits=10");
  // Declined: unknown, repeated, invalid parameters; a server window of 8.
  CHECK(answer("permessage-deflate; foo") == "declined");
  CHECK(answer("permessage-deflate; server_no_context_takeover; server_no_context_takeover") ==
        "declined");
  CHECK(answer("permessage-deflate; server_max_window_bits") == "declined");
  CHECK(answer("permessage-deflate; server_max_window_bits=16") == "declined");
  CHECK(answer("permessage-deflate; client_max_window_bits=07") == "declined");
  CHECK(answer("permessage-deflate; server_no_context_takeover=1") == "declined");
  CHECK(answer("permessage-deflate; server_max_window_bits=8") == "declined");
  CHECK(answer("x-webkit-deflate-frame") == "declined");
  // The first offer that can be taken wins.
  CHECK(answer("permessage-deflate; server_max_window_bits=8, permessage-deflate; "
               "client_max_window_bits") == "permessage-deflate");
  // The server's own wishes.
  handshake_options small = on;
  small.deflate_no_context_takeover = true;
  small.deflate_max_window_bits = 10;
  CHECK(answer("permessage-deflate; client_max_window_bits", small) ==
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10");
  handshake_options off; // a server's default: offers declined
  CHECK(!off.accept_deflate);
  CHECK(answer("permessage-deflate", off) == "declined");
}

TEST_CASE("websocket handshake: a client checks the server's answer") {
  handshake_options o;
  o.subprotocols = {"chat"};
  o.accept_deflate = true; // the server side of this exchange
  const auto req = client_request("example.com:8080", "/ws?x=1", rfc_key, o);
  CHECK(req.method == "GET");
  CHECK(req.target == "/ws?x=1");
  CHECK(*req.headers.find("host") == "example.com:8080");
  CHECK(*req.headers.find("sec-websocket-extensions") ==
        "permessage-deflate; client_max_window_bits");
  CHECK(*req.headers.find("sec-websocket-protocol") == "chat");
  // The server's side of the same exchange, through the serializer and parser.
  std::string wire;
  http1::serialize(req, "", wire);
  auto d = server_handshake(parse_request(wire), o);
  REQUIRE(std::holds_alternative<accepted>(d));
  auto r = check_response(std::get<accepted>(d).response, rfc_key, o);
  REQUIRE(r);
  CHECK(r->subprotocol == "chat");
  REQUIRE(r->deflate);
  CHECK(*r->deflate == deflate_params{});

  auto failure = [&](http1::response_header h) {
    auto res = check_response(h, rfc_key, o);
    REQUIRE(!res);
    return res.error().context();
  };
  http1::response_header ok = std::get<accepted>(d).response;
  http1::response_header h;
  h.status = 404;
  CHECK(failure(h) == "websocket handshake: the server answered 404 Not Found");
  h = ok;
  h.headers = {};
  h.headers.add("Upgrade", "websocket");
  h.headers.add("Connection", "Upgrade");
  h.headers.add("Sec-WebSocket-Accept", "wrong");
  CHECK(failure(h) == "websocket handshake: Sec-WebSocket-Accept 'wrong' does not match the key "
                      "(expected 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')");
  auto with = [&](std::string name, std::string value) {
    http1::response_header x;
    x.status = 101;
    x.headers.add("Upgrade", "websocket");
    x.headers.add("Connection", "Upgrade");
    x.headers.add("Sec-WebSocket-Accept", accept_key(rfc_key));
    x.headers.add(std::move(name), std::move(value));
    return x;
  };
  CHECK(failure(with("Sec-WebSocket-Protocol", "mqtt")) ==
        "websocket handshake: the server chose subprotocol 'mqtt', which was not offered");
  CHECK(failure(with("Sec-WebSocket-Extensions", "x-foo")) ==
        "websocket handshake: the server chose extension 'x-foo', which was not offered");
  CHECK(failure(with("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")) ==
        "websocket handshake: invalid permessage-deflate parameters 'permessage-deflate; "
        "client_max_window_bits'");
  CHECK(failure(with("Sec-WebSocket-Extensions", "permessage-deflate, permessage-deflate")) ==
        "websocket handshake: the server chose permessage-deflate twice");
  CHECK(failure(with("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=8")) ==
        "websocket handshake: client_max_window_bits=8, which zlib cannot compress with");
  auto fine = check_response(
      with("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=11"), rfc_key,
      o);
  REQUIRE(fine);
  CHECK(fine->deflate->client_max_window_bits == 11);
}

TEST_CASE("websocket deflate: RFC 7692's examples decode, split at every byte") {
  compression z;
  auto client = [&] { return connection(role::client, {}, zero_mask(), z); };
  // 7.2.3.1: "Hello" compressed, one frame.
  CHECK(events_all_splits(client, raw({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) ==
        std::vector<std::string>{"text:Hello"});
  // 7.2.3.1: the same, in two fragments (RSV1 only on the first).
  CHECK(events_all_splits(client, raw({0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07,
                                       0x00})) == std::vector<std::string>{"text:Hello"});
  // 7.2.3.2: two messages sharing the LZ77 window (the second refers back).
  CHECK(events_all_splits(client, raw({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xc1,
                                       0x05, 0xf2, 0x00, 0x11, 0x00, 0x00})) ==
        std::vector<std::string>{"text:Hello", "text:Hello"});
  // 7.2.3.3: a stored (uncompressed) block.
  CHECK(events_all_splits(client, raw({0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c,
                                       0x6c, 0x6f, 0x00})) ==
        std::vector<std::string>{"text:Hello"});
}

TEST_CASE("websocket deflate: round trips, with and without context takeover") {
  for (bool reset : {false, true}) {
    INFO("no context takeover: " << reset);
    compression z;
    z.threshold = 0;
    z.params.server_no_context_takeover = reset;
    z.params.client_no_context_takeover = reset;
    connection client(role::client, {}, zero_mask(), z), server(role::server, {}, {}, z);
    std::vector<std::byte> wire;
    const std::string big(100'000, 'x');
    const std::vector<std::string> sent = {"Hello", "Hello", "", big, "h\xc3\xa9llo"};
    for (const auto& m : sent)
      client.send_message(opcode::text, bytes(m), wire);
    // A fragmented compressed message: RSV1 on the first frame only.
    client.send_fragment(opcode::binary, bytes("abcabc"), false, wire);
    client.send_fragment(opcode::binary, bytes("abcabc"), true, wire);
    // Compressed, 100 000 repeated bytes take a few hundred.
    CHECK(wire.size() < 1000);
    std::vector<std::string> expect;
    for (const auto& m : sent)
      expect.push_back("text:" + m);
    expect.push_back("binary:abcabcabcabc");
    CHECK(events(server, wire, 0) == expect);

    // And back, server to client, through the same connections.
    std::vector<std::byte> back;
    server.send_message(opcode::binary, bytes(big), back);
    server.send_message(opcode::binary, bytes(big), back);
    CHECK(events(client, back, 0) == std::vector<std::string>{"binary:" + big, "binary:" + big});
  }
}

TEST_CASE("websocket deflate: below the threshold a message goes uncompressed") {
  compression z; // threshold 64
  connection client(role::client, {}, zero_mask(), z);
  std::vector<std::byte> wire;
  client.send_message(opcode::text, bytes("short"), wire);
  CHECK((static_cast<unsigned>(wire[0]) & 0x40) == 0);
  wire.clear();
  client.send_message(opcode::text, bytes(std::string(64, 'a')), wire);
  CHECK((static_cast<unsigned>(wire[0]) & 0x40) == 0x40);
}

TEST_CASE("websocket deflate: limits hold on what inflates, RSV1 rules, bad data") {
  compression z;
  z.threshold = 0;
  limits small;
  small.max_message = 4000;
  // 1 MB of zeros compresses to about a kilobyte: refused at the limit, not inflated whole.
  {
    connection sender(role::client, {}, zero_mask(), z), receiver(role::server, small, {}, z);
    std::vector<std::byte> wire;
    sender.send_message(opcode::binary, std::vector<std::byte>(1'000'000), wire);
    CHECK(wire.size() < small.max_message);
    CHECK(events(receiver, wire, 0) ==
          std::vector<std::string>{fmt::format("error:1009:a compressed message of {} bytes "
                                               "inflating past 4000 bytes (the limit)",
                                               wire.size() - 8)});
  }
  auto client = [&] { return connection(role::client, {}, zero_mask(), z); };
  // RSV1 on a continuation, on a control frame; RSV2.
  CHECK(events_all_splits(client, raw({0x01, 0x01, 'a', 0xc0, 0x00})) ==
        std::vector<std::string>{"error:1002:RSV1 (compressed) on a continuation frame: only a "
                                 "message's first frame carries it"});
  CHECK(
      events_all_splits(client, raw({0xc9, 0x00})) ==
      std::vector<std::string>{
          "error:1002:RSV1 (compressed) on a ping frame: only a message's first frame carries it"});
  CHECK(events_all_splits(client, raw({0xa1, 0x00})) ==
        std::vector<std::string>{
            "error:1002:RSV bits 0x20 set, and no extension was negotiated that uses them"});
  // Not deflate data; a final block; invalid UTF-8 inside compressed text.
  auto bad = events_all_splits(client, raw({0xc2, 0x02, 0xff, 0xff}));
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].rfind("error:1007:permessage-deflate: the message does not inflate (", 0) == 0);
  // "Hello" with BFINAL set (0xf3 instead of 0xf2).
  CHECK(events_all_splits(client, raw({0xc1, 0x07, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})) ==
        std::vector<std::string>{
            "error:1007:permessage-deflate: a compressed message with a final deflate block"});
  {
    connection sender(role::server, {}, {}, z);
    std::vector<std::byte> wire;
    sender.send_message(opcode::binary, bytes("\xff\xfe not text"), wire);
    wire[0] = std::byte(0xc1); // relabel as text
    auto c = client();
    CHECK(events(c, wire, 0) ==
          std::vector<std::string>{"error:1007:invalid UTF-8 in a compressed text message"});
  }
  // Bad local settings.
  compression bits = z;
  bits.params.client_max_window_bits = 8; // a client cannot compress with it; a server reads it
  CHECK_THROWS_AS(connection(role::client, {}, zero_mask(), bits), local_error);
  CHECK_NOTHROW(connection(role::server, {}, {}, bits));
}
