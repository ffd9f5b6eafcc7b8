#include <sluice/http/server.hpp>

#include <ctime>
#include <fmt/chrono.h>
#include <optional>
#include <sluice/timer.hpp>

namespace sluice::http {

namespace h1 = proto::http1;

namespace {

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// The Date header's value (RFC 9110 IMF-fixdate), formatted once per second per thread.
std::string_view http_date() {
  thread_local std::time_t second = -1;
  thread_local char text[40];
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != second) {
    second = now;
    const auto end =
        fmt::format_to_n(text, sizeof text - 1, "{:%a, %d %b %Y %H:%M:%S} GMT", fmt::gmtime(now));
    length = end.size;
  }
  return {text, length};
}

void log_to(const server_options& o, std::string_view message) {
  if (o.log)
    o.log(message);
  else
    fmt::print(stderr, "sluice::http: {}\n", message);
}

// A 500 for a request the handler could not answer (it threw, or its response could
// not be written); the connection goes on when `keep_alive`.
void internal_error(std::string& out, bool keep_alive, std::string_view date) {
  h1::response head;
  head.status = 500;
  head.keep_alive = keep_alive;
  head.headers.add("Content-Type", "text/plain");
  h1::serialize(head, "internal server error\n", out, date);
}

// Awaits `a` (kept by reference: one awaiter in the frame, not a chain of moved
// copies) ignoring the coroutine's stop token when `on`, as shield() would.
template <class A> class shield_if {
public:
  shield_if(A& a, bool on) : a_(a), on_(on) {}
  bool await_ready() { return a_.await_ready(); }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    if (on_) return a_.await_suspend(std::coroutine_handle<>(h)); // no token
    return a_.await_suspend(h);
  }
  decltype(auto) await_resume() { return a_.await_resume(); }

private:
  A& a_;
  bool on_;
};

// A connection's state between two waits for data. The wait and this are all an idle
// connection holds: answering (the handler, the response, the sends) happens in
// answer(), whose frame exists only while there is something to answer.
struct connection {
  connection(tcp::stream& stream, const handler& handler_fn, const server_options& options,
             stop_token token)
      : s(stream), h(handler_fn), o(options), stop(token), p(h1::role::server, options.limits) {}
  tcp::stream& s;
  const handler& h;
  const server_options& o;
  stop_token stop;
  h1::parser p;
  // The bytes the parser is reading, lent by the stream's receive pool. The parser
  // copies only a partial head or chunk line, so the buffer goes back before the next
  // wait (docs/runtime.md, "Lent buffers").
  lent_buffer in;
  h1::request current; // a request whose body is still arriving
  std::string body;
  bool in_request = false;
  connection_report report;
};

enum class next { need_data, close, finished };

// Turns the parser's events into answers until it needs more data, the connection is
// to be closed, or the client finished. Responses to pipelined requests are batched:
// they are serialized one after the other and leave in one send when the parser has
// nothing complete left (or the batch reaches its bound), so a read of N requests
// costs one send, not N.
task<result<next>> answer(connection& c) {
  std::string out; // serialized responses not sent yet
  std::size_t batched = 0;
  for (;;) {
    auto ev = c.p.next_event();
    // What to do once `out` has gone, if it must go now.
    std::optional<next> then;
    bool flush = false;
    if (std::holds_alternative<h1::need_data>(ev)) {
      then = next::need_data;
      flush = true;
    } else if (auto* rh = std::get_if<h1::request_head>(&ev)) {
      c.current = std::move(rh->head);
      c.body.clear();
      c.in_request = true;
      const bool body_follows = c.current.chunked || c.current.content_length != 0;
      if (c.current.expect_continue && body_follows && c.p.buffered() == 0) {
        out += "HTTP/1.1 100 Continue\r\n\r\n"; // after the answers before it
        flush = true;
      }
    } else if (auto* data = std::get_if<h1::body_data>(&ev)) {
      c.body.append(reinterpret_cast<const char*>(data->data.data()), data->data.size());
    } else if (std::holds_alternative<h1::message_end>(ev)) {
      c.in_request = false;
      ++c.report.requests;
      const h1::request req = std::exchange(c.current, h1::request());
      const bool keep_alive = req.keep_alive && !c.stop.stop_requested();
      std::optional<response> r;
      try {
        r = co_await shield(c.h(req, std::exchange(c.body, std::string())));
      } catch (const std::exception& e) {
        log_to(c.o, fmt::format("the handler of {} {:.200} failed: {}", req.method, req.target,
                                e.what()));
      } catch (...) {
        log_to(c.o, fmt::format("the handler of {} {:.200} failed (an exception of unknown "
                                "type)",
                                req.method, req.target));
      }
      const std::string_view date = c.o.date_header ? http_date() : std::string_view();
      const std::size_t mark = out.size();
      if (r) {
        h1::response head;
        head.status = r->status;
        head.headers = std::move(r->headers);
        head.keep_alive = keep_alive;
        try {
          h1::serialize(head, r->body, out, date);
          // HEAD: the same head as GET (Content-Length included), without the body
          // (which the serializer left out anyway for 1xx, 204 and 304).
          const int s = r->status;
          const bool has_body = s / 100 != 1 && s != 204 && s != 304;
          if (req.method == "HEAD" && has_body) out.resize(out.size() - r->body.size());

        } catch (const proto::http1::local_error& e) {
          out.resize(mark); // never a malformed or partial response
          log_to(c.o, fmt::format("the response to {} {:.200} cannot be sent: {}", req.method,
                                  req.target, e.what()));
          r.reset();
        }
      }
      if (!r) {
        ++c.report.internal_errors;
        internal_error(out, keep_alive, date);
      }
      ++batched;

      if (!keep_alive) {
        then = next::close;
        flush = true;
      } else if (batched >= c.o.max_batch_responses || out.size() >= c.o.max_batch_bytes) {
        flush = true;
      }
    } else if (std::holds_alternative<h1::end_of_input>(ev)) {
      // The client finished sending: what it asked for before its FIN is answered.
      c.report.peer_fin_seen = true;
      then = next::finished;
      flush = true;
    } else if (auto* err = std::get_if<h1::parse_error>(&ev)) {
      c.report.rejected_status = err->status;
      h1::response head;
      head.status = err->status;
      head.keep_alive = false;
      head.headers.add("Content-Type", "text/plain");
      h1::serialize(head, err->message + "\n", out, c.o.date_header ? http_date() : "");
      then = next::close;
      flush = true;
    }
    if (flush && !out.empty()) {
      ++c.report.sends;
      // Sent in as many sends as the client's window takes, each bounded by
      // send_timeout: a client that stops reading is reset, and holds no more than
      // this batch meanwhile.
      const auto all = as_bytes(out);
      for (std::size_t done = 0; done < all.size();) {
        auto w = c.s.send(all.subspan(done));
        w.set_deadline(std::chrono::steady_clock::now() + c.o.send_timeout, c.o.send_timeout);
        auto n = co_await shield_if(w, true);
        if (!n) {
          if (n.error() == errc::timed_out) c.s.abort();
          co_return std::move(n).error();
        }
        done += *n;
      }
      out.clear();
      batched = 0;
    }
    if (then) {
      if (*then == next::finished) c.s.close();
      co_return *then;
    }
  }
}

// Answers 408 to a request whose head or body came too slowly, then the connection
// closes. Its own frame: an idle connection does not carry this send's.
task<void> request_timeout(connection& c, std::string what) {
  c.report.rejected_status = 408;
  h1::response head;
  head.status = 408;
  head.keep_alive = false;
  head.headers.add("Content-Type", "text/plain");
  std::string out;
  h1::serialize(head, what + "\n", out, c.o.date_header ? http_date() : "");
  auto w = c.s.send_all(as_bytes(out));
  w.set_deadline(std::chrono::steady_clock::now() + c.o.send_timeout, c.o.send_timeout);
  (void)co_await shield_if(w, true);
}

// When the wait for more of a request must end: the head's total deadline, or the
// body's (inactivity, and a minimum average rate past its first body_timeout).
struct request_clock {
  using clock = std::chrono::steady_clock;
  clock::time_point head_deadline{}; // set at the head's first byte
  clock::time_point body_start{};    // set when the head is complete
  std::size_t body_seen = 0;         // body bytes that had arrived at body_start
  std::size_t request = 0;           // which request (requests answered before it)
};

// How a run of serve() ended.
enum class ended { closed, idle };

// Serves requests until the connection closes or — with `park_when_idle` — until it is
// idle between two requests (no request begun, nothing buffered, nothing received):
// then it returns `idle` holding nothing, for the caller to wait with no frame.
task<result<ended>> serve(tcp::stream& s, const handler& h, const server_options& o,
                          connection_report& report, bool park_when_idle) {
  // (The token first: g++ 12 mishandles a co_await inside a braced initializer.)
  const stop_token stop = co_await this_stop_token();
  connection c(s, h, o, stop);
  // Small responses go out at once instead of waiting for the client's ACK (Nagle).
  if (o.tcp_nodelay) (void)s.set_nodelay(true);
  request_clock rc;

  for (;;) {
    auto step = co_await answer(c);
    if (!step) {
      report = c.report;
      co_return std::move(step).error();
    }
    if (*step == next::finished) {
      report = c.report;
      co_return ended::closed;
    }
    if (*step == next::close) break;
    const bool idle = !c.in_request && c.p.buffered() == 0;
    // Idle between requests and asked to stop: close now.
    if (c.stop.stop_requested() && idle) break;
    // Parking: an idle connection first waits here, frame and all, for park_after (a
    // busy client's next request usually comes sooner, and then costs no wake-up),
    // then is handed back to the server to wait with no frame.
    const bool may_park = idle && park_when_idle && o.park_after < o.idle_timeout;
    if (may_park && o.park_after.count() <= 0 && !s.available()) {
      c.in.release();
      report = c.report;
      co_return ended::idle;
    }
    // An idle wait ends when stop is requested; a request in progress is read to its
    // end whatever happens (bounded by its deadlines).
    c.in.release(); // the parser asked for more: it copied what it still needs
    const auto now = request_clock::clock::now();
    auto deadline = now + o.idle_timeout;
    auto bound = o.idle_timeout;
    if (rc.request != c.report.requests) rc = {.request = c.report.requests}; // a new request

    if (!idle && !c.in_request) { // part of a head: its total deadline, from its first byte
      rc.body_start = {};
      if (rc.head_deadline == request_clock::clock::time_point{})
        rc.head_deadline = now + std::min(o.header_timeout, max_header_timeout);
      deadline = rc.head_deadline;
      bound = std::min(o.header_timeout, max_header_timeout);
    } else if (c.in_request) { // the body: inactivity, and the minimum average rate
      rc.head_deadline = {};
      if (rc.body_start == request_clock::clock::time_point{}) {
        rc.body_start = now;
        rc.body_seen = c.body.size();
      }
      deadline = now + o.body_timeout;
      bound = o.body_timeout;
      if (o.min_body_rate != 0) {
        // One more second of allowance per min_body_rate bytes received.
        const auto earned =
            std::chrono::milliseconds((c.body.size() - rc.body_seen) * 1000 / o.min_body_rate);
        deadline = std::min(deadline, rc.body_start + o.body_timeout + earned);
      }
    } else {
      rc = {};
      if (may_park) {
        deadline = now + o.park_after;
        bound = o.park_after;
      }
    }
    auto wait = s.recv_some();
    wait.set_deadline(deadline, bound);
    auto got = co_await shield_if(wait, !idle);

    if (!got) {
      if (got.error() == errc::timed_out && !idle) { // a request too slow to arrive
        co_await request_timeout(c, c.in_request ? "request body too slow"
                                                 : "request head not complete in time");
        break;
      }
      if (got.error() == errc::timed_out && may_park) { // idle for park_after: park
        report = c.report;
        co_return ended::idle;
      }
      if (got.error() == errc::timed_out) break;                 // idle too long
      if (idle && got.error() == errc::operation_aborted) break; // stop requested
      report = c.report;
      co_return std::move(got).error();
    }
    if (got->empty()) {
      c.p.receive_eof();
    } else {
      c.in = std::move(*got);
      c.p.receive_borrowed(c.in.data());
    }
  }
  c.in.release();
  const auto closed = co_await shield(s.graceful_close({.deadline = o.linger_timeout,
                                                        .max_discard = o.linger_max_bytes,
                                                        .reset_at_deadline = false}));
  c.report.peer_fin_seen = closed.peer_fin_seen;
  report = c.report;
  co_return ended::closed;
}

} // namespace

task<result<connection_report>> serve_connection(tcp::stream& s, handler h, server_options o) {
  connection_report report;
  auto r = co_await serve(s, h, o, report, false);
  if (!r) co_return std::move(r).error();
  co_return report;
}

task<sluice::server::after> serve_until_idle(tcp::stream& s, const handler& h,
                                             const server_options& o) {
  connection_report report;
  auto r = co_await serve(s, h, o, report, true);
  // It waited park_after of its idle time already.
  if (r && *r == ended::idle)
    co_return sluice::server::after::park(o.idle_timeout -
                                          std::max(o.park_after, std::chrono::milliseconds(0)));
  // The client going away, or the drain, is not worth a line.
  if (!r && r.error() != errc::operation_aborted && r.error() != errc::connection_reset &&
      r.error() != errc::broken_pipe && r.error() != errc::not_a_socket)
    log_to(o, r.error().message());
  co_return sluice::server::after::close();
}

sluice::server::parking_handler parking_handler(handler h, server_options o) {
  return [h = std::move(h), o = std::move(o)](tcp::stream& s, stop_token) {
    return serve_until_idle(s, h, o);
  };
}

} // namespace sluice::http
