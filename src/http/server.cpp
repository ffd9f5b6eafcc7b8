#include <sluice/http/server.hpp>

#include <array>
#include <sluice/timer.hpp>

namespace sluice::http {

namespace h1 = proto::http1;

namespace {

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// FIN, then discard until the peer's FIN (bounded), then close. Never RST first:
// a client still sending would otherwise lose the response it has not read.
task<bool> close_gracefully(tcp::stream& s, const server_options& o) {
  (void)co_await s.shutdown_send();
  std::array<std::byte, 16 * 1024> sink;
  std::size_t discarded = 0;
  bool fin = false;
  while (discarded <= o.linger_max_bytes) {
    auto n = co_await with_timeout(s.recv(sink), o.linger_timeout);
    if (!n) break;
    if (*n == 0) {
      fin = true;
      break;
    }
    discarded += *n;
  }
  s.close();
  co_return fin;
}

} // namespace

task<result<connection_report>> serve_connection(tcp::stream& s, handler h, server_options o) {
  const stop_token stop = co_await this_stop_token();
  connection_report report;
  h1::parser p(h1::role::server, o.limits);
  std::array<std::byte, 16 * 1024> buf;
  std::string out;
  std::string body;
  h1::request current;
  bool in_request = false;

  for (;;) {
    auto ev = p.next_event();
    if (std::holds_alternative<h1::need_data>(ev)) {
      const bool idle = !in_request && p.buffered() == 0;
      // Idle between requests and asked to stop: close now.
      if (stop.stop_requested() && idle) break;
      // An idle wait ends when stop is requested; a request in progress is read to
      // its end whatever happens (bounded by the idle timeout).
      // (Two co_awaits, not a ?: inside one: GCC 12 destroys the temporaries of a
      // conditional expression in a coroutine twice.)
      result<std::size_t> n = error(errc::operation_aborted);
      if (idle)
        n = co_await with_timeout(s.recv(buf), o.idle_timeout);
      else
        n = co_await shield(with_timeout(s.recv(buf), o.idle_timeout));
      if (!n) {
        if (n.error() == errc::timed_out) break;                 // idle too long
        if (idle && n.error() == errc::operation_aborted) break; // stop requested
        co_return std::move(n).error();
      }
      if (*n == 0)
        p.receive_eof();
      else
        p.receive_data(std::span(buf).first(*n));
      continue;
    }
    if (auto* head = std::get_if<h1::request_head>(&ev)) {
      current = std::move(head->head);
      body.clear();
      in_request = true;
      const bool body_follows = current.chunked || current.content_length != 0;
      if (current.expect_continue && body_follows && p.buffered() == 0) {
        auto sent = co_await shield(s.send_all(as_bytes("HTTP/1.1 100 Continue\r\n\r\n")));
        if (!sent) co_return std::move(sent).error();
      }
      continue;
    }
    if (auto* data = std::get_if<h1::body_data>(&ev)) {
      body.append(reinterpret_cast<const char*>(data->data.data()), data->data.size());
      continue;
    }
    if (std::holds_alternative<h1::message_end>(ev)) {
      in_request = false;
      ++report.requests;
      response r = co_await shield(h(current, std::move(body)));
      h1::response head;
      head.status = r.status;
      head.headers = std::move(r.headers);
      head.keep_alive = current.keep_alive && !stop.stop_requested();
      out.clear();
      h1::serialize(head, r.body, out);
      // HEAD: the same head as GET (Content-Length included), without the body.
      if (current.method == "HEAD") out.resize(out.size() - r.body.size());
      auto sent = co_await shield(s.send_all(as_bytes(out)));
      if (!sent) co_return std::move(sent).error();
      if (!head.keep_alive) break;
      continue;
    }
    if (std::holds_alternative<h1::end_of_input>(ev)) {
      report.peer_fin_seen = true;
      s.close();
      co_return report;
    }
    if (auto* err = std::get_if<h1::parse_error>(&ev)) {
      report.rejected_status = err->status;
      h1::response head;
      head.status = err->status;
      head.keep_alive = false;
      head.headers.add("Content-Type", "text/plain");
      out.clear();
      h1::serialize(head, err->message + "\n", out);
      auto sent = co_await shield(s.send_all(as_bytes(out)));
      if (!sent) co_return std::move(sent).error();
      break;
    }
  }
  report.peer_fin_seen = co_await shield(close_gracefully(s, o));
  co_return report;
}

} // namespace sluice::http
