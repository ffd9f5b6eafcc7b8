// WebSocket frames without sockets: the RFC 6455 examples, round trips between a client
// and a server connection, every rule the peer can break (with its close code), UTF-8
// across fragments, limits, and the close handshake. Every input is fed whole and split
// at every byte position.
#include <sluice/proto/websocket.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <string>
#include <string_view>

using namespace sluice::proto::websocket;

namespace {

std::vector<std::byte> raw(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v)
    out.push_back(std::byte(b));
  return out;
}
std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

connection::mask_source fixed_mask() {
  return [] {
    return std::array<std::byte, 4>{std::byte(0x37), std::byte(0xfa), std::byte(0x21),
                                    std::byte(0x3d)};
  };
}

// Feeds `wire` to a fresh connection of role `r` in pieces of `step` bytes (0: whole);
// returns the events as text, stopping at the first error.
std::vector<std::string> decode(role r, std::span<const std::byte> wire, std::size_t step,
                                limits l = {}) {
  connection c(r, l, fixed_mask());
  std::vector<std::string> out;
  if (step == 0) step = std::max<std::size_t>(wire.size(), 1);
  for (std::size_t i = 0; i < wire.size(); i += step) {
    c.receive_data(wire.subspan(i, std::min(step, wire.size() - i)));
    for (;;) {
      auto ev = c.next_event();
      if (std::holds_alternative<need_data>(ev)) break;
      if (auto* m = std::get_if<message>(&ev))
        out.push_back((m->kind == opcode::text ? "text:" : "binary:") + text(m->payload));
      if (auto* p = std::get_if<ping>(&ev)) out.push_back("ping:" + text(p->payload));
      if (auto* p = std::get_if<pong>(&ev)) out.push_back("pong:" + text(p->payload));
      if (auto* p = std::get_if<peer_close>(&ev))
        out.push_back(fmt::format("close:{}:{}", p->code, p->reason));
      if (auto* e = std::get_if<protocol_error>(&ev)) {
        out.push_back(fmt::format("error:{}:{}", e->code, e->description));
        return out;
      }
    }
  }
  return out;
}

// The same events whether the wire comes whole or split at every position.
std::vector<std::string> decode_all_splits(role r, std::span<const std::byte> wire, limits l = {}) {
  const auto whole = decode(r, wire, 0, l);
  for (std::size_t step = 1; step < wire.size(); ++step) {
    INFO("pieces of " << step << " bytes");
    REQUIRE(decode(r, wire, step, l) == whole);
  }
  return whole;
}

std::vector<std::byte> long_frame(int b0, std::size_t n, bool mask) {
  std::vector<std::byte> w{std::byte(b0)};
  const int m = mask ? 0x80 : 0;
  if (n < 126) {
    w.push_back(std::byte(m | int(n)));
  } else if (n <= 0xFFFF) {
    w.push_back(std::byte(m | 126));
    w.push_back(std::byte(n >> 8));
    w.push_back(std::byte(n & 0xFF));
  } else {
    w.push_back(std::byte(m | 127));
    for (int i = 7; i >= 0; --i)
      w.push_back(std::byte((n >> (8 * i)) & 0xFF));
  }
  if (mask) w.insert(w.end(), 4, std::byte(0));
  w.insert(w.end(), n, std::byte('z'));
  return w;
}

} // namespace

TEST_CASE("websocket: the examples of RFC 6455 section 5.7") {
  // A single-frame unmasked text message (server to client).
  CHECK(decode_all_splits(role::client, raw({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})) ==
        std::vector<std::string>{"text:Hello"});
  // A single-frame masked text message (client to server).
  CHECK(decode_all_splits(role::server, raw({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                                             0x51, 0x58})) ==
        std::vector<std::string>{"text:Hello"});
  // A fragmented unmasked text message.
  CHECK(decode_all_splits(role::client, raw({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c,
                                             0x6f})) == std::vector<std::string>{"text:Hello"});
  // Unmasked ping, then the masked pong a server would get back.
  CHECK(decode_all_splits(role::client, raw({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})) ==
        std::vector<std::string>{"ping:Hello"});
  CHECK(decode_all_splits(role::server, raw({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                                             0x51, 0x58})) ==
        std::vector<std::string>{"pong:Hello"});
  // 256 bytes and 64 KiB of binary: the 16-bit and 64-bit length forms.
  CHECK(decode(role::client, long_frame(0x82, 256, false), 0) ==
        std::vector<std::string>{"binary:" + std::string(256, 'z')});
  CHECK(decode(role::client, long_frame(0x82, 65536, false), 7) ==
        std::vector<std::string>{"binary:" + std::string(65536, 'z')});
}

TEST_CASE("websocket: a client's frames decode at the server, control frames between fragments") {
  connection client(role::client, {}, fixed_mask());
  std::vector<std::byte> wire;
  client.send_message(opcode::text, bytes("héllo wörld"), wire);
  client.send_fragment(opcode::binary, bytes("part one, "), false, wire);
  client.send_ping(bytes("are you there"), wire);
  client.send_fragment(opcode::binary, bytes("part two, "), false, wire);
  client.send_pong(bytes("unsolicited"), wire);
  client.send_fragment(opcode::binary, bytes("end"), true, wire);
  const std::string euro = "\xE2\x82\xAC"; // one code point split across fragments
  client.send_fragment(opcode::text, bytes(euro.substr(0, 1)), false, wire);
  client.send_fragment(opcode::text, bytes(euro.substr(1)), true, wire);
  client.send_message(opcode::binary, {}, wire);
  client.send_close(4001, "going home", wire);
  CHECK(decode_all_splits(role::server, wire) ==
        std::vector<std::string>{"text:héllo wörld", "ping:are you there", "pong:unsolicited",
                                 "binary:part one, part two, end", "text:" + euro,
                                 "binary:", "close:4001:going home"});
}

TEST_CASE("websocket: pings are answered, closes echoed, from the pending output") {
  connection server(role::server);
  connection client(role::client, {}, fixed_mask());
  std::vector<std::byte> wire;
  client.send_ping(bytes("p1"), wire);
  client.send_close(4001, "bye", wire);
  server.receive_data(wire);
  auto p = server.next_event();
  REQUIRE(std::holds_alternative<ping>(p));
  auto c = server.next_event();
  REQUIRE(std::holds_alternative<peer_close>(c));
  CHECK(std::get<peer_close>(c).code == 4001);
  CHECK(std::get<peer_close>(c).reason == "bye");
  CHECK(server.peer_closed());
  CHECK(server.local_closed());
  // The pong, then the close echoed with the same code and reason.
  CHECK(decode(role::client, server.take_pending_output(), 1) ==
        std::vector<std::string>{"pong:p1", "close:4001:bye"});
  std::vector<std::byte> more;
  CHECK_THROWS_AS(server.send_message(opcode::text, bytes("late"), more), local_error);

  // We closed first: the peer's close is not echoed again; an empty close has no code.
  connection first(role::server);
  std::vector<std::byte> ours;
  first.send_close(close_code::normal, "", ours);
  connection peer(role::client, {}, fixed_mask());
  std::vector<std::byte> theirs;
  peer.send_close(close_code::no_status, "", theirs);
  first.receive_data(theirs);
  auto e = first.next_event();
  REQUIRE(std::holds_alternative<peer_close>(e));
  CHECK(std::get<peer_close>(e).code == close_code::no_status);
  CHECK(first.take_pending_output().empty());
}

TEST_CASE("websocket: every rule the peer can break fails with 1002, saying which") {
  struct bad {
    role r;
    std::vector<std::byte> wire;
    std::string expect;
  };
  const std::vector<bad> cases = {
      {role::server, raw({0x81, 0x02, 'h', 'i'}),
       "error:1002:an unmasked text frame from the client"},
      {role::client, raw({0x81, 0x82, 0, 0, 0, 0, 'h', 'i'}),
       "error:1002:a masked text frame from the server"},
      {role::client, raw({0xC1, 0x00}),
       "error:1002:RSV bits 0x40 set, and no extension was negotiated that uses them"},
      {role::client, raw({0x83, 0x00}), "error:1002:unknown opcode 0x3"},
      {role::client, raw({0x8B, 0x00}), "error:1002:unknown opcode 0xb"},
      {role::client, raw({0x09, 0x00}), "error:1002:a fragmented ping frame"},
      {role::client, long_frame(0x89, 126, false),
       "error:1002:a ping frame of 126 bytes (the limit is 125)"},
      {role::client, raw({0x80, 0x00}),
       "error:1002:a continuation frame with no message to continue"},
      {role::client, raw({0x01, 0x01, 'a', 0x02, 0x00}),
       "error:1002:a binary frame inside a fragmented text message"},
      {role::client, raw({0x82, 0x7E, 0x00, 0x05, 1, 2, 3, 4, 5}),
       "error:1002:a length of 5 in the 16-bit form (it must use the shortest)"},
      {role::client, raw({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}),
       "error:1002:a 64-bit length with its top bit set"},
      {role::client, raw({0x88, 0x00, 0x81, 0x00}),
       "error:1002:a text frame after the close frame"},
      {role::client, raw({0x88, 0x01, 0x03}), "error:1002:a close frame with a 1-byte payload"},
      {role::client, raw({0x88, 0x02, 0x03, 0xED}), "error:1002:close code 1005 may not be sent"},
      {role::client, raw({0x88, 0x02, 0x03, 0xE7}), "error:1002:close code 999 may not be sent"},
      {role::client, raw({0x88, 0x04, 0x03, 0xE8, 0xC0, 0x80}),
       "error:1007:a close reason that is not UTF-8"},
  };
  for (const auto& c : cases) {
    INFO(c.expect);
    auto got = decode_all_splits(c.r, c.wire);
    REQUIRE(!got.empty());
    CHECK(got.back() == c.expect);
  }
  // A close frame is still reported before the error of the frame after it.
  CHECK(decode(role::client, raw({0x88, 0x00, 0x81, 0x00}), 0).front() == "close:1005:");
}

TEST_CASE("websocket: text is validated as UTF-8 as it arrives, across fragments: 1007") {
  // Fails at the first bad byte, before the rest of the frame has arrived.
  connection c(role::client, {}, fixed_mask());
  c.receive_data(raw({0x81, 0x7E, 0x01, 0x00, 'o', 'k', 0xFF}));
  auto e = c.next_event();
  REQUIRE(std::holds_alternative<protocol_error>(e));
  CHECK(std::get<protocol_error>(e).code == close_code::invalid_payload);
  CHECK(c.failed());

  for (const auto& bad : {raw({0xC0, 0x80}), raw({0xED, 0xA0, 0x80}), raw({0xF4, 0x90, 0x80, 0x80}),
                          raw({0xE0, 0x80, 0x80}), raw({0x80}), raw({0xF8})}) {
    std::vector<std::byte> w{std::byte(0x81), std::byte(bad.size())};
    w.insert(w.end(), bad.begin(), bad.end());
    auto got = decode_all_splits(role::client, w);
    REQUIRE(got.size() == 1);
    CHECK(got[0].rfind("error:1007:", 0) == 0);
  }
  // A message that ends in the middle of a code point.
  auto cut = decode_all_splits(role::client, raw({0x01, 0x01, 0xE2, 0x80, 0x01, 0x82}));
  CHECK(cut ==
        std::vector<std::string>{"error:1007:a text message that ends inside a UTF-8 sequence"});
  // Binary is not text: any bytes go.
  CHECK(decode(role::client, raw({0x82, 0x02, 0xFF, 0xC0}), 1).size() == 1);

  utf8_validator v;
  CHECK(v.feed(bytes("\xF0\x9F")));
  CHECK(!v.complete());
  CHECK(v.feed(bytes("\x98\x80 done")));
  CHECK(v.complete());
}

TEST_CASE("websocket: frame and message limits: 1009, decided from the header") {
  limits l;
  l.max_frame = 1000;
  l.max_message = 1500;
  // Only the header of a too-big frame is needed to refuse it.
  auto header_only = long_frame(0x82, 1001, false);
  header_only.resize(4);
  CHECK(decode(role::client, header_only, 1, l) ==
        std::vector<std::string>{"error:1009:a binary frame of 1001 bytes (the limit is 1000)"});
  std::vector<std::byte> w = long_frame(0x02, 1000, false); // a fragment of 1000
  auto second = long_frame(0x80, 600, false);
  w.insert(w.end(), second.begin(), second.end());
  CHECK(
      decode(role::client, w, 0, l) ==
      std::vector<std::string>{"error:1009:a message of at least 1600 bytes (the limit is 1500)"});
  auto fits = long_frame(0x02, 1000, false);
  auto rest = long_frame(0x80, 500, false);
  fits.insert(fits.end(), rest.begin(), rest.end());
  CHECK(decode(role::client, fits, 97, l) ==
        std::vector<std::string>{"binary:" + std::string(1500, 'z')});
}

TEST_CASE("websocket: local misuse is a local_error") {
  connection c(role::server);
  std::vector<std::byte> out;
  CHECK_THROWS_AS(c.send_message(opcode::text, bytes("\xC0\x80"), out), local_error);
  CHECK_THROWS_AS(c.send_message(opcode::ping, bytes("x"), out), local_error);
  CHECK_THROWS_AS(c.send_ping(std::vector<std::byte>(126), out), local_error);
  CHECK_THROWS_AS(c.send_close(1005, "reason", out), local_error);
  CHECK_THROWS_AS(c.send_close(1006, "", out), local_error);
  CHECK_THROWS_AS(c.send_close(1000, std::string(124, 'r'), out), local_error);
  c.send_fragment(opcode::text, bytes("a"), false, out);
  CHECK_THROWS_AS(c.send_message(opcode::text, bytes("b"), out), local_error);
  CHECK_THROWS_AS(c.send_fragment(opcode::binary, bytes("b"), true, out), local_error);
  c.send_fragment(opcode::text, bytes("b"), true, out);
  c.send_close(1000, "done", out);
  CHECK_THROWS_AS(c.send_close(1000, "again", out), local_error);
  CHECK(decode(role::client, out, 1) == std::vector<std::string>{"text:ab", "close:1000:done"});
  CHECK_THROWS_AS(connection(role::client), local_error); // no mask source
  CHECK(valid_close_code(4999));
  CHECK(!valid_close_code(5000));
  CHECK(!valid_close_code(1015));
  CHECK(valid_close_code(1014));
}
