// libFuzzer target: the WebSocket opening handshake. The input is read as a request head
// (server side) and as a response head (client side, against a fixed key). Whatever the
// bytes, a decision comes out: a 101 carries the right accept value and only a
// subprotocol that was offered, a refusal a 4xx status and a reason; an agreed
// permessage-deflate always builds a connection pair that round-trips a message.
#include <sluice/proto/websocket_handshake.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

using namespace sluice::proto;
using namespace sluice::proto::websocket;

namespace {

template <class Event>
auto head_of(http1::role r, std::string_view text) -> std::optional<decltype(Event::head)> {
  http1::parser p(r);
  p.receive_data(text);
  p.receive_eof();
  auto ev = p.next_event();
  if (auto* h = std::get_if<Event>(&ev)) return std::move(h->head);
  return std::nullopt;
}

// Both ends with `params`: a 300-byte message goes each way, compressed.
void round_trip(const deflate_params& params) {
  compression z;
  z.params = params;
  z.threshold = 0;
  connection client(
      role::client, {}, [] { return std::array<std::byte, 4>{}; }, z);
  connection server(role::server, {}, {}, z);
  const std::vector<std::byte> msg(300, std::byte{'a'});
  for (int dir = 0; dir < 2; ++dir) {
    std::vector<std::byte> wire;
    (dir == 0 ? client : server).send_message(opcode::binary, msg, wire);
    auto& to = dir == 0 ? server : client;
    to.receive_data(wire);
    auto ev = to.next_event();
    auto* m = std::get_if<message>(&ev);
    if (!m || !std::equal(m->payload.begin(), m->payload.end(), msg.begin(), msg.end()))
      std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  handshake_options o;
  o.subprotocols = {"chat", "superchat"};
  o.accept_deflate = size % 3 != 0;
  o.deflate_no_context_takeover = size % 2 == 0;
  o.deflate_max_window_bits = static_cast<std::uint8_t>(8 + size % 8);

  if (auto req = head_of<http1::request_head>(http1::role::server, text)) {
    auto d = server_handshake(*req, o);
    if (auto* a = std::get_if<accepted>(&d)) {
      const std::string* key = req->headers.find("sec-websocket-key");
      const std::string* acc = a->response.headers.find("sec-websocket-accept");
      if (a->response.status != 101 || !key || !acc || *acc != accept_key(*key)) std::abort();
      if (!a->subprotocol.empty() && std::find(o.subprotocols.begin(), o.subprotocols.end(),
                                               a->subprotocol) == o.subprotocols.end())
        std::abort();
      // (A client offering an 8-bit window cannot be zlib: our client end refuses it.)
      if (a->deflate && a->deflate->client_max_window_bits >= 9) round_trip(*a->deflate);
      // What the server answered, the client must accept.
      auto back = check_response(a->response, *key, o);
      if (!back && req->headers.find("sec-websocket-extensions") == nullptr) std::abort();
    } else {
      const auto& r = std::get<refused>(d);
      if (r.response.status < 400 || r.response.status > 499 || r.reason.empty()) std::abort();
    }
  }

  constexpr std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==";
  if (auto resp = head_of<http1::response_head>(http1::role::client, text)) {
    auto n = check_response(*resp, key, o);
    if (n) {
      if (resp->status != 101) std::abort();
      if (n->deflate) round_trip(*n->deflate);
    } else if (n.error().context().empty()) {
      std::abort();
    }
  }
  return 0;
}
