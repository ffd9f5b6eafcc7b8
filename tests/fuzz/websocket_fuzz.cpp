// libFuzzer target: the WebSocket frame decoder. Decodes the input in both roles, cut
// into pieces, with and without permessage-deflate, checking the limits hold (also for
// what inflates) and nothing loops; then checks that messages, fragments and control
// frames encoded from the input, compressed or not, decode back exactly.
#include <sluice/proto/websocket.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>

using namespace sluice::proto::websocket;

namespace {
std::array<std::byte, 4> mask_from(const std::uint8_t* data, std::size_t size) {
  std::array<std::byte, 4> m{};
  for (std::size_t i = 0; i < 4 && i < size; ++i)
    m[i] = std::byte(data[i]);
  return m;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  limits l;
  l.max_frame = 600; // a 510-byte message may grow a little when compressed
  l.max_message = 2048;
  const std::size_t step = 1 + data[0] % 32;
  const std::byte* in = reinterpret_cast<const std::byte*>(data + 1);
  const std::size_t n = size - 1;
  const auto key = mask_from(data, size);

  compression z;
  z.threshold = data[0] % 3 == 0 ? 0 : 16;
  z.params.server_no_context_takeover = (data[0] & 0x40) != 0;
  z.params.client_no_context_takeover = (data[0] & 0x80) != 0;
  const bool deflate = (data[0] & 0x20) != 0;

  // 1. Arbitrary bytes, as a server and as a client, with and without compression:
  // never crash, never loop, never hand out more than the limits allow.
  for (int pass = 0; pass < 4; ++pass) {
    const role r = pass % 2 == 0 ? role::server : role::client;
    connection c(
        r, l, [&] { return key; }, pass >= 2 ? std::optional<compression>(z) : std::nullopt);
    bool done = false;
    for (std::size_t i = 0; i < n && !done; i += step) {
      c.receive_data(std::span(in + i, std::min(step, n - i)));
      for (int guard = 0;; ++guard) {
        if (guard > 100000) std::abort();
        auto ev = c.next_event();
        if (std::holds_alternative<need_data>(ev)) break;
        if (auto* m = std::get_if<message>(&ev); m && m->payload.size() > l.max_message)
          std::abort();
        if (auto* p = std::get_if<ping>(&ev); p && p->payload.size() > 125) std::abort();
        if (auto* e = std::get_if<protocol_error>(&ev)) {
          if (e->code != 1002 && e->code != 1007 && e->code != 1009) std::abort();
          done = true;
          break;
        }
      }
    }
  }

  // 2. Round trip, client to server: binary messages cut from the input, some sent as
  // fragments with pings between them.
  connection enc(
      role::client, l, [&] { return key; }, deflate ? std::optional<compression>(z) : std::nullopt);
  connection dec(role::server, l, {}, deflate ? std::optional<compression>(z) : std::nullopt);
  std::vector<std::byte> wire;
  std::vector<std::span<const std::byte>> sent;
  for (std::size_t i = 0; i < n;) {
    const std::size_t len = std::min<std::size_t>(static_cast<std::uint8_t>(in[i]) * 2, n - i);
    const auto msg = std::span(in + i, len);
    sent.push_back(msg);
    if (len > 3 && (static_cast<std::uint8_t>(in[i]) & 1) != 0) {
      enc.send_fragment(opcode::binary, msg.first(len / 2), false, wire);
      enc.send_ping(msg.first(std::min<std::size_t>(len / 2, 125)), wire);
      enc.send_fragment(opcode::binary, msg.subspan(len / 2), true, wire);
    } else {
      enc.send_message(opcode::binary, msg, wire);
    }
    i += len == 0 ? 1 : len;
  }
  enc.send_close(4000, "fuzz", wire);
  std::size_t k = 0;
  bool closed = false;
  for (std::size_t i = 0; i < wire.size(); i += step) {
    dec.receive_data(std::span(wire).subspan(i, std::min(step, wire.size() - i)));
    for (;;) {
      auto ev = dec.next_event();
      if (std::holds_alternative<need_data>(ev)) break;
      if (auto* m = std::get_if<message>(&ev)) {
        if (k >= sent.size() || m->payload.size() != sent[k].size() ||
            (m->payload.size() != 0 &&
             std::memcmp(m->payload.data(), sent[k].data(), m->payload.size()) != 0))
          std::abort();
        ++k;
        continue;
      }
      if (auto* c = std::get_if<peer_close>(&ev)) {
        if (c->code != 4000 || c->reason != "fuzz") std::abort();
        closed = true;
        continue;
      }
      if (std::holds_alternative<protocol_error>(ev)) std::abort();
    }
  }
  if (!closed || k != sent.size()) std::abort();
  return 0;
}
