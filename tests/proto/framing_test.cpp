// The framing protocol without sockets: a pair of connections, every input fed whole
// and split at every byte position.
#include <sluice/proto/framing.hpp>

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

using namespace sluice::proto::framing;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// Feeds `wire` in pieces of `step` bytes (0 = whole) and records the events as text.
std::vector<std::string> decode(std::span<const std::byte> wire, std::size_t step, bool eof,
                                limits l = {}) {
  connection c(l);
  std::vector<std::string> out;
  auto drain = [&] {
    for (;;) {
      auto ev = c.next_event();
      if (std::holds_alternative<need_data>(ev)) return true;
      if (auto* m = std::get_if<message>(&ev)) out.push_back("msg:" + text(m->payload));
      if (auto* p = std::get_if<peer_close>(&ev)) out.push_back("close:" + text(p->data));
      if (auto* e = std::get_if<protocol_error>(&ev)) {
        out.push_back(std::string("error:") + to_string(e->what));
        return false;
      }
      if (std::holds_alternative<end_of_stream>(ev)) {
        out.push_back("eof");
        return false;
      }
    }
  };
  if (step == 0) step = wire.size() == 0 ? 1 : wire.size();
  for (std::size_t i = 0; i < wire.size(); i += step) {
    c.receive_data(wire.subspan(i, std::min(step, wire.size() - i)));
    if (!drain()) return out;
  }
  if (eof) {
    c.receive_eof();
    drain();
  }
  return out;
}

std::vector<std::byte> wire_of(std::initializer_list<std::string_view> messages,
                               const std::string_view* close_data) {
  connection c;
  std::vector<std::byte> w;
  for (auto m : messages)
    c.send_message(bytes(m), w);
  if (close_data) c.send_close(bytes(*close_data), w);
  return w;
}

} // namespace

TEST_CASE("Messages and the CLOSE frame round-trip, fed whole and byte by byte") {
  const std::string_view reason = "going away: maintenance";
  const auto w = wire_of({"hello", "", std::string_view("x\0y", 3), "last"}, &reason);
  const std::vector<std::string> expected = {
      "msg:hello", "msg:", std::string("msg:x\0y", 7), "msg:last", "close:going away: maintenance",
      "eof"};
  for (std::size_t step = 0; step <= w.size(); ++step) {
    INFO("step " << step);
    CHECK(decode(w, step, true) == expected);
  }
}

TEST_CASE("The wire format is type, big-endian length, payload") {
  connection c;
  std::vector<std::byte> w;
  c.send_message(bytes("ab"), w);
  c.send_close(bytes("z"), w);
  const std::vector<unsigned char> expected = {0x01, 0, 0, 0, 2, 'a', 'b', 0x02, 0, 0, 0, 1, 'z'};
  REQUIRE(w.size() == expected.size());
  for (std::size_t i = 0; i < w.size(); ++i)
    CHECK(static_cast<unsigned char>(w[i]) == expected[i]);
}

TEST_CASE("An unknown frame type is a protocol error") {
  const unsigned char w[] = {0x07, 0, 0, 0, 0};
  CHECK(decode(std::as_bytes(std::span(w)), 0, false) ==
        std::vector<std::string>{"error:unknown_frame_type"});
}

TEST_CASE("A message at the limit passes and one byte more is message_too_large") {
  limits l;
  l.max_message = 10;
  connection sender(l);
  std::vector<std::byte> w;
  sender.send_message(bytes("0123456789"), w);
  CHECK(decode(w, 1, false, l) == std::vector<std::string>{"msg:0123456789"});
  const unsigned char over[] = {0x01, 0, 0, 0, 11};
  CHECK(decode(std::as_bytes(std::span(over)), 0, false, l) ==
        std::vector<std::string>{"error:message_too_large"});
  CHECK_THROWS_AS(sender.send_message(bytes("0123456789A"), w), local_error);
}

TEST_CASE("Disconnect data at the limit passes and one byte more is rejected") {
  limits l;
  l.max_disconnect_data = 4;
  connection c(l);
  std::vector<std::byte> w;
  c.send_close(bytes("abcd"), w);
  CHECK(decode(w, 0, false, l) == std::vector<std::string>{"close:abcd"});
  const unsigned char over[] = {0x02, 0, 0, 0, 5};
  CHECK(decode(std::as_bytes(std::span(over)), 0, false, l) ==
        std::vector<std::string>{"error:disconnect_data_too_large"});
  connection d(l);
  CHECK_THROWS_AS(d.send_close(bytes("abcde"), w), local_error);
}

TEST_CASE("Bytes after the CLOSE frame are frame_after_close") {
  const std::string_view reason = "r";
  auto w = wire_of({}, &reason);
  w.push_back(std::byte{0x01});
  CHECK(decode(w, 0, false) == std::vector<std::string>{"close:r", "error:frame_after_close"});
}

TEST_CASE("End of stream inside a frame is truncated_frame, at every cut") {
  const auto w = wire_of({"0123456789"}, nullptr);
  for (std::size_t cut = 1; cut < w.size(); ++cut) {
    INFO("cut " << cut);
    CHECK(decode(std::span(w).first(cut), 0, true) ==
          std::vector<std::string>{"error:truncated_frame"});
  }
}

TEST_CASE("End of stream without CLOSE is reported, and peer_closed() stays false") {
  const auto w = wire_of({"m"}, nullptr);
  CHECK(decode(w, 0, true) == std::vector<std::string>{"msg:m", "eof"});
}

TEST_CASE("Local misuse is a local_error, not a protocol event") {
  connection c;
  std::vector<std::byte> w;
  c.send_close({}, w);
  CHECK_THROWS_AS(c.send_message(bytes("late"), w), local_error);
  CHECK_THROWS_AS(c.send_close({}, w), local_error);
}

TEST_CASE("Limits are clamped to the hard maximum") {
  limits l;
  l.max_message = std::size_t(1) << 40;
  connection c(l);
  CHECK(c.frame_limits().max_message == hard_max_message);
}
