// WebSocket over a tcp::stream: the handshake I/O around proto::websocket's sans-io
// handshake and frame layer. docs/websocket.md has the design.
#include <sluice/net/websocket.hpp>

#include "layered_close.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <random>
#include <sluice/net/resolve.hpp>
#include <sluice/proto/http_text.hpp>
#include <sluice/timer.hpp>

namespace sluice::websocket {

namespace ws = proto::websocket;
namespace http1 = proto::http1;

namespace {

// Masking keys and handshake nonces: unpredictable bytes from the OS
// (std::random_device: getrandom or RDRAND on Linux, rand_s on Windows), drawn 256 at a
// time per thread so that a client sending small messages makes no syscall per frame.
void random_bytes(std::byte* out, std::size_t n) {
  thread_local std::random_device dev;
  thread_local std::array<std::byte, 256> pool;
  thread_local std::size_t used = pool.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (used == pool.size()) {
      for (std::size_t j = 0; j < pool.size(); j += 4) {
        const auto v = static_cast<std::uint32_t>(dev());
        std::memcpy(pool.data() + j, &v, 4);
      }
      used = 0;
    }
    out[i] = pool[used++];
  }
}

std::array<std::byte, 4> random_mask() {
  std::array<std::byte, 4> m;
  random_bytes(m.data(), m.size());
  return m;
}

std::optional<ws::compression> compression_for(const options& o,
                                               const std::optional<ws::deflate_params>& p) {
  if (!p) return std::nullopt;
  ws::compression c;
  c.params = *p;
  c.threshold = o.compress_threshold;
  c.level = std::clamp(o.compress_level, 1, 9);
  return c;
}

std::string peer_of(const tcp::stream& s) {
  auto ep = s.remote_endpoint();
  return ep ? fmt::format("{}", *ep) : std::string("(unknown peer)");
}

std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// Answers a refused handshake with its status and the reason as the body, then closes
// gracefully (the client reads the answer before the FIN).
task<void> refuse(tcp::stream& s, http1::response_header head, std::string_view reason) {
  head.keep_alive = false;
  head.headers.add("Content-Type", "text/plain; charset=utf-8");
  std::string out;
  http1::serialize(head, fmt::format("{}\n", reason), out);
  (void)co_await s.send_all(std::string_view(out));
  tcp::graceful_close_options g;
  g.deadline = std::chrono::milliseconds(1000);
  (void)co_await s.graceful_close(g);
}

} // namespace

// ------------------------------------------------------------------- stream

stream::stream(tcp::stream s, ws::role r, const options& o, std::string subprotocol,
               std::optional<ws::deflate_params> deflate, std::span<const std::byte> early)
    : s_(std::move(s)), conn_(r, o.limits,
                              r == ws::role::client ? ws::connection::mask_source(random_mask)
                                                    : ws::connection::mask_source(),
                              compression_for(o, deflate)),
      in_(16 * 1024), subprotocol_(std::move(subprotocol)), deflate_(deflate) {
  if (!early.empty()) conn_.receive_data(early);
}

stream::stream(stream&&) noexcept = default;
stream& stream::operator=(stream&&) noexcept = default;
stream::~stream() = default;

task<result<void>> stream::send_frames(std::vector<std::byte> frames) {
  auto r = co_await s_.send_all(std::span<const std::byte>(frames));
  if (!r) co_return std::move(r).error();
  co_return result<void>();
}

// Pongs and the echoing close the connection queued while reading.
task<result<void>> stream::flush_pending() {
  auto out = conn_.take_pending_output();
  if (out.empty()) co_return result<void>();
  co_return co_await send_frames(std::move(out));
}

task<result<std::optional<message>>> stream::receive() {
  for (;;) {
    // After recv_disconnect nothing more is delivered, buffered or not.
    if (s_.lifecycle().receive_side() != proto::side_state::open && s_.is_open())
      co_return error(errc::shut_down, "websocket receive");
    if (peer_close_) co_return std::optional<message>();
    auto ev = conn_.next_event();
    if (auto* m = std::get_if<ws::message>(&ev)) {
      message out{m->kind, std::vector<std::byte>(m->payload.begin(), m->payload.end())};
      co_return std::optional(std::move(out));
    }
    if (std::holds_alternative<ws::ping>(ev)) { // the pong is queued: send it
      auto f = co_await flush_pending();
      if (!f) co_return std::move(f).error();
      continue;
    }
    if (std::holds_alternative<ws::pong>(ev)) continue;
    if (auto* c = std::get_if<ws::peer_close>(&ev)) {
      peer_close_ = close_info{c->code, c->reason};
      // Our echoing close (if we had not closed), then the FIN: both sides are done.
      auto f = co_await flush_pending();
      if (f && !fin_sent_) {
        fin_sent_ = true;
        (void)co_await s_.shutdown_send();
      }
      co_return std::optional<message>();
    }
    if (auto* e = std::get_if<ws::protocol_error>(&ev)) {
      const error failure(e->code == close_code::message_too_big ? errc::message_too_large
                                                                 : errc::protocol_error,
                          fmt::format("websocket receive from {}: {} (closing with {})",
                                      peer_of(s_), e->description, e->code));
      // Fail the connection (RFC 6455 7.1.7): our close frame with the code, a FIN.
      if (!conn_.local_closed()) {
        std::vector<std::byte> out;
        conn_.send_close(e->code, "", out);
        (void)co_await send_frames(std::move(out));
      }
      if (!fin_sent_) {
        fin_sent_ = true;
        (void)co_await s_.shutdown_send();
      }
      co_return failure;
    }
    // need_data
    auto n = co_await s_.recv(in_);
    if (!n) co_return std::move(n).error();
    if (*n == 0)
      co_return error(errc::connection_aborted,
                      fmt::format("websocket receive from {}: the TCP stream ended without a "
                                  "close frame (1006)",
                                  peer_of(s_)));
    conn_.receive_data(std::span(in_).first(*n));
  }
}

task<result<void>> stream::send_text(std::string_view text) {
  std::vector<std::byte> out;
  try {
    if (conn_.local_closed()) co_return error(errc::shut_down, "websocket send: after our close");
    conn_.send_message(opcode::text, as_bytes(text), out);
  } catch (const ws::local_error& e) {
    co_return error(errc::protocol_error, e.what());
  }
  co_return co_await send_frames(std::move(out));
}

task<result<void>> stream::send_binary(std::span<const std::byte> data) {
  std::vector<std::byte> out;
  if (conn_.local_closed()) co_return error(errc::shut_down, "websocket send: after our close");
  conn_.send_message(opcode::binary, data, out);
  co_return co_await send_frames(std::move(out));
}

task<result<void>> stream::ping(std::span<const std::byte> data) {
  if (data.size() > 125)
    co_return error(errc::message_too_large,
                    fmt::format("websocket ping of {} bytes (the limit is 125)", data.size()));
  if (conn_.local_closed()) co_return error(errc::shut_down, "websocket ping: after our close");
  std::vector<std::byte> out;
  conn_.send_ping(data, out);
  co_return co_await send_frames(std::move(out));
}

task<result<void>> stream::send_disconnect(std::uint16_t code, std::string_view reason) {
  if (!conn_.local_closed()) {
    // Ask the lifecycle first, so a closed or unconnected stream fails as TCP would.
    if (auto d = s_.lifecycle().begin_send(); d.action == proto::verdict::fail)
      co_return error(d.error, "websocket send_disconnect");
    std::vector<std::byte> out;
    try {
      conn_.send_close(code, reason, out);
    } catch (const ws::local_error& e) {
      co_return error(errc::protocol_error, e.what());
    }
    auto r = co_await send_frames(std::move(out));
    if (!r) co_return r;
  } else if (fin_sent_) {
    co_return error(errc::shut_down, "websocket send_disconnect: our close frame was sent");
  }
  fin_sent_ = true;
  auto r = co_await s_.send_disconnect();
  if (!r) co_return std::move(r).error();
  co_return result<void>();
}

task<result<std::size_t>> stream::recv_disconnect(std::span<std::byte> buffer) {
  // The disconnect data: the close code (big-endian) and the reason, as on the wire.
  std::vector<std::byte> data;
  if (peer_close_ && peer_close_->code != close_code::no_status) {
    const auto r = as_bytes(peer_close_->reason);
    data.resize(2 + r.size());
    data[0] = std::byte(peer_close_->code >> 8);
    data[1] = std::byte(peer_close_->code & 0xFF);
    std::copy(r.begin(), r.end(), data.begin() + 2);
  }
  co_return co_await detail::layered_recv_disconnect(s_, buffer, data, disconnect_delivered_);
}

task<stream::close_report> stream::graceful_close(std::uint16_t code, std::string_view reason,
                                                  tcp::graceful_close_options o) {
  auto send_close = [&]() -> task<result<void>> {
    if (conn_.local_closed()) co_return result<void>(); // sent already
    co_return co_await send_disconnect(code, reason);
  };
  co_return co_await detail::close_handshake<close_report>(
      s_, o, send_close, [&] { return peer_close_.has_value(); }, [&] { return receive(); },
      [](const message& m) { return m.data.size(); });
}

// ---------------------------------------------------------------- handshake

namespace {

task<result<stream>> accept_request(tcp::stream& s, const http1::request& req,
                                    std::span<const std::byte> early, const options& o) {
  auto d = ws::server_handshake(req, o.handshake);
  if (auto* no = std::get_if<ws::refused>(&d)) {
    const std::string why = no->reason;
    const int status = no->response.status;
    const std::string peer = peer_of(s); // before the close
    co_await refuse(s, std::move(no->response), why);
    co_return error(errc::protocol_error,
                    fmt::format("websocket accept from {}: {} ({})", peer, why, status));
  }
  auto& ok = std::get<ws::accepted>(d);
  std::string head;
  http1::serialize_head(ok.response, std::nullopt, head);
  auto sent = co_await s.send_all(std::string_view(head));
  if (!sent) co_return std::move(sent).error();
  co_return stream(std::move(s), ws::role::server, o, std::move(ok.subprotocol), ok.deflate, early);
}

task<result<stream>> accept_within(tcp::stream& s, const options& o) {
  http1::parser p(http1::role::server, o.http_limits);
  std::vector<std::byte> buf(4096);
  for (;;) {
    auto ev = p.next_event();
    if (auto* h = std::get_if<http1::request_head>(&ev)) {
      const auto request = std::move(h->head);
      // What follows the head: the body of a request that is refused anyway, or frames
      // a client sent before our 101.
      const std::vector<std::byte> early(p.unparsed().begin(), p.unparsed().end());
      co_return co_await accept_request(s, request, early, o);
    }
    if (auto* e = std::get_if<http1::parse_error>(&ev)) {
      http1::response_header head;
      head.status = e->status;
      const std::string why = e->message;
      const std::string peer = peer_of(s);
      co_await refuse(s, std::move(head), why);
      co_return error(errc::protocol_error,
                      fmt::format("websocket accept from {}: {} ({})", peer, why, e->status));
    }
    if (std::holds_alternative<http1::end_of_input>(ev))
      co_return error(
          errc::end_of_stream,
          fmt::format("websocket accept from {}: the peer closed before a request", peer_of(s)));
    auto n = co_await s.recv(buf);
    if (!n) co_return std::move(n).error();
    if (*n == 0)
      p.receive_eof();
    else
      p.receive_data(std::span<const std::byte>(buf).first(*n));
  }
}

} // namespace

namespace {
// `t` bounded by the handshake timeout; running out is reported as "`late` within N ms".
task<result<stream>> bounded(task<result<stream>> t, std::chrono::milliseconds limit,
                             std::string late) {
  auto r = co_await with_timeout(std::move(t), limit);
  if (!r && r.error() == errc::timed_out)
    co_return error(errc::timed_out, fmt::format("{} within {} ms", late, limit.count()));
  co_return r;
}
} // namespace

task<result<stream>> accept(tcp::stream s, options o) {
  const auto limit = o.handshake_timeout;
  std::string late = fmt::format("websocket accept from {}: no handshake", peer_of(s));
  co_return co_await bounded(accept_within(s, o), limit, std::move(late));
}

task<result<stream>> accept(tcp::stream s, const http1::request& request,
                            std::span<const std::byte> early, options o) {
  const auto limit = o.handshake_timeout;
  std::string late = fmt::format("websocket accept from {}: could not answer", peer_of(s));
  co_return co_await bounded(accept_request(s, request, early, o), limit, std::move(late));
}

namespace {

task<result<stream>> handshake(tcp::stream& s, std::string host, std::string target,
                               const options& o) {
  std::array<std::byte, 16> nonce;
  random_bytes(nonce.data(), nonce.size());
  const std::string key = ws::make_key(nonce);
  std::string out;
  http1::serialize(ws::client_request(host, target, key, o.handshake, o.request_fields), "", out);
  auto sent = co_await s.send_all(std::string_view(out));
  if (!sent) co_return std::move(sent).error();

  http1::parser p(http1::role::client, o.http_limits);
  std::vector<std::byte> buf(4096);
  for (;;) {
    auto ev = p.next_event();
    if (auto* h = std::get_if<http1::response_head>(&ev)) {
      if (h->head.status == 100) continue; // an interim answer: the real one follows
      auto n = ws::check_response(h->head, key, o.handshake);
      if (!n) co_return std::move(n).error();
      const std::vector<std::byte> early(p.unparsed().begin(), p.unparsed().end());
      co_return stream(std::move(s), ws::role::client, o, std::move(n->subprotocol), n->deflate,
                       early);
    }
    if (auto* e = std::get_if<http1::parse_error>(&ev))
      co_return error(
          errc::protocol_error,
          fmt::format("websocket handshake: the response is not HTTP/1.1: {}", e->message));
    if (std::holds_alternative<http1::end_of_input>(ev))
      co_return error(errc::end_of_stream, "websocket handshake: the server closed without "
                                           "answering");
    auto n = co_await s.recv(buf);
    if (!n) co_return std::move(n).error();
    if (*n == 0)
      p.receive_eof();
    else
      p.receive_data(std::span<const std::byte>(buf).first(*n));
  }
}

} // namespace

task<result<stream>> connect(tcp::stream s, std::string_view host, std::string_view target,
                             options o) {
  const std::string what = fmt::format("websocket connect to {}{}", host, target);
  const auto limit = o.handshake_timeout;
  auto r = co_await bounded(handshake(s, std::string(host), std::string(target), o), limit,
                            what + ": no handshake");
  if (!r && r.error() != errc::timed_out)
    co_return error(r.error().code(), fmt::format("{}: {}", what, r.error().context()));
  co_return r;
}

task<result<stream>> connect(io_context& io, std::string_view url, options o) {
  std::string why;
  std::optional<proto::http1::url_parts> u;
  const auto colon = url.find("://");
  const auto scheme = colon == std::string_view::npos ? std::string_view() : url.substr(0, colon);
  auto is = [&](std::string_view x) {
    return scheme.size() == x.size() && std::equal(scheme.begin(), scheme.end(), x.begin(),
                                                   [](char a, char b) { return (a | 0x20) == b; });
  };
  if (is("ws")) {
    u = proto::http1::parse_url(fmt::format("http{}", url.substr(colon)), &why);
  } else {
    why = is("wss") ? "wss:// (TLS) is not spoken here" : "the scheme must be ws://";
  }
  if (!u)
    co_return error(errc::invalid_endpoint, fmt::format("websocket connect to {}: {}", url, why));
  auto eps = co_await resolve(io, u->host, std::to_string(u->port));
  if (!eps) co_return std::move(eps).error();
  auto s = co_await tcp::connect(io, std::move(*eps), o.handshake_timeout);
  if (!s)
    co_return error(s.error().code(),
                    fmt::format("websocket connect to {}: {}", url, s.error().context()));
  (void)s->set_nodelay(true);
  co_return co_await connect(std::move(*s), u->authority, u->target, std::move(o));
}

} // namespace sluice::websocket
