#include <sluice/http/server.hpp>

#include <ctime>
#include <fmt/chrono.h>
#include <optional>
#include <sluice/timer.hpp>
#include <stdexcept>

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

} // namespace

// When the wait for more of a request must end: the head's total deadline, or the
// body's (inactivity, and a minimum average rate past its first body_timeout).
struct request_clock {
  using clock = std::chrono::steady_clock;
  clock::time_point head_deadline{}; // set at the head's first byte
  clock::time_point body_start{};    // set when the head is complete
  std::uint64_t body_seen = 0;       // body bytes that had arrived at body_start
  std::size_t request = 0;           // which request (requests answered before it)
};

// A connection's state between two waits for data. The wait and this are all an idle
// connection holds: answering (the handler, the response, the sends) happens in
// answer(), whose frame exists only while there is something to answer.
struct detail::connection {
  connection(tcp::stream& stream, const service& handlers, const server_options& options,
             stop_token token)
      : s(stream), svc(handlers), o(options), stop(token),
        p(h1::role::server, parser_limits(handlers, options)) {}
  // The parser bounds bodies by the larger of the two limits; the buffered path
  // enforces limits.max_body itself when a streaming handler is there too.
  static h1::limits parser_limits(const service& svc, const server_options& o) {
    h1::limits l = o.limits;
    if (svc.streaming)
      l.max_body =
          static_cast<std::size_t>(std::max<std::uint64_t>(l.max_body, o.max_streamed_body));
    return l;
  }
  tcp::stream& s;
  const service& svc;
  const server_options& o;
  stop_token stop;
  h1::parser p;
  // The bytes the parser is reading, lent by the stream's receive pool. The parser
  // copies only a partial head or chunk line, so the buffer goes back before the next
  // wait (docs/runtime.md, "Lent buffers").
  lent_buffer in;
  h1::request current; // a request whose body is still arriving
  std::string remote;  // the client's address as text, made at the first request
  std::string body;
  std::uint64_t body_received = 0; // of the current request
  bool in_request = false;
  request_clock rc;
  connection_report report;
};

namespace {
using detail::connection;

// The deadline of the next wait for a request's body: inactivity (body_timeout) and
// the minimum average rate (one more second of allowance per min_body_rate bytes).
std::chrono::steady_clock::time_point body_deadline(connection& c,
                                                    std::chrono::steady_clock::time_point now,
                                                    std::chrono::milliseconds& bound) {
  auto& rc = c.rc;
  rc.head_deadline = {};
  if (rc.body_start == request_clock::clock::time_point{}) {
    rc.body_start = now;
    rc.body_seen = c.body_received;
  }
  auto deadline = now + c.o.body_timeout;
  bound = c.o.body_timeout;
  if (c.o.min_body_rate != 0) {
    const auto earned =
        std::chrono::milliseconds((c.body_received - rc.body_seen) * 1000 / c.o.min_body_rate);
    deadline = std::min(deadline, rc.body_start + c.o.body_timeout + earned);
  }
  return deadline;
}

// Sends `out` whole, in as many sends as the client's window takes, each bounded by
// send_timeout: a client that stops reading is reset, and holds no more than `out`
// meanwhile.
task<result<void>> send_out(connection& c, std::string& out) {
  ++c.report.sends;
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
  co_return result<void>();
}

std::string_view date_for(const connection& c) {
  return c.o.date_header ? http_date() : std::string_view();
}

// Appends a text/plain response the server writes itself (an error): `text` is the
// body.
void plain_response(const connection& c, std::string& out, int status, std::string_view text,
                    bool keep_alive) {
  h1::response_header head;
  head.status = status;
  head.keep_alive = keep_alive;
  head.headers.add("Content-Type", "text/plain");
  h1::serialize(head, text, out, date_for(c));
}

// A 500 for a request the handler could not answer (it threw, or its response could
// not be written); the connection goes on when `keep_alive`.
void internal_error(connection& c, std::string& out, bool keep_alive) {
  ++c.report.internal_errors;
  plain_response(c, out, 500, "internal server error\n", keep_alive);
}

// Answers a request the client got wrong (a parse error, a body over its limit or too
// slow) with `status` and `message`; the connection closes after it.
void reject(connection& c, std::string& out, int status, std::string_view message) {
  c.report.rejected_status = status;
  plain_response(c, out, status, fmt::format("{}\n", message), false);
}

// Appends the response `r` to request `req` to `out`: HEAD gets the head alone.
// Throws local_error, with `out` cut back, for a response that must not be sent.
void append_response(connection& c, const h1::request& req, response& r, bool keep_alive,
                     std::string& out) {
  const std::size_t mark = out.size();
  h1::response_header head;
  head.status = r.status;
  head.headers = std::move(r.headers);
  head.keep_alive = keep_alive;
  try {
    h1::serialize(head, r.body, out, date_for(c));
    // HEAD: the same head as GET (Content-Length included), without the body (which
    // the serializer left out anyway for 1xx, 204 and 304).
    const int s = r.status;
    const bool has_body = s / 100 != 1 && s != 204 && s != 304;
    if (req.method == "HEAD" && has_body) out.resize(out.size() - r.body.size());
  } catch (...) {
    out.resize(mark); // never a malformed or partial response
    throw;
  }
}

bool streams(const service& svc, const h1::request& req) {
  if (!svc.streaming) return false;
  return !svc.buffered || !svc.streams || svc.streams(req);
}

enum class next { need_data, close, finished };

task<result<bool>> stream_one(connection& c, std::string& out);

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
      if (c.remote.empty()) {
        auto peer = c.s.remote_endpoint();
        c.remote = peer ? peer->to_string() : std::string("unknown");
      }
      c.current.remote = c.remote;
      c.body.clear();
      c.body_received = 0;
      c.in_request = true;
      if (streams(c.svc, c.current)) {
        // The handler reads the body and writes its response itself; what the batch
        // holds leaves before its first bytes.
        auto kept = co_await stream_one(c, out);
        if (!kept) co_return std::move(kept).error();
        ++batched;
        if (!*kept) {
          then = next::close;
          flush = true;
        } else if (batched >= c.o.max_batch_responses || out.size() >= c.o.max_batch_bytes) {
          flush = true;
        }
      } else if (c.svc.streaming && c.current.content_length > c.o.limits.max_body) {
        reject(c, out, 413,
               fmt::format("Content-Length {} exceeds the limit of {}", c.current.content_length,
                           c.o.limits.max_body));
        then = next::close;
        flush = true;
      } else {
        const bool body_follows = c.current.chunked || c.current.content_length != 0;
        if (c.current.expect_continue && body_follows && c.p.buffered() == 0) {
          out += "HTTP/1.1 100 Continue\r\n\r\n"; // after the answers before it
          flush = true;
        }
      }
    } else if (auto* data = std::get_if<h1::body_data>(&ev)) {
      c.body.append(reinterpret_cast<const char*>(data->data.data()), data->data.size());
      c.body_received += data->data.size();
      if (c.body.size() > c.o.limits.max_body) { // (only with a streaming handler there too)
        reject(c, out, 413,
               fmt::format("chunked body exceeds the limit of {} bytes", c.o.limits.max_body));
        then = next::close;
        flush = true;
      }
    } else if (std::holds_alternative<h1::message_end>(ev)) {
      c.in_request = false;
      ++c.report.requests;
      const h1::request req = std::exchange(c.current, h1::request());
      const bool keep_alive = req.keep_alive && !c.stop.stop_requested();
      std::optional<response> r;
      try {
        r = co_await shield(c.svc.buffered(req, std::exchange(c.body, std::string())));
      } catch (const std::exception& e) {
        log_to(c.o, fmt::format("the handler of {} {:.200} failed: {}", req.method, req.target,
                                e.what()));
      } catch (...) {
        log_to(c.o, fmt::format("the handler of {} {:.200} failed (an exception of unknown "
                                "type)",
                                req.method, req.target));
      }
      if (r) {
        try {
          append_response(c, req, *r, keep_alive, out);
        } catch (const proto::http1::local_error& e) {
          log_to(c.o, fmt::format("the response to {} {:.200} cannot be sent: {}", req.method,
                                  req.target, e.what()));
          r.reset();
        }
      }
      if (!r) {
        internal_error(c, out, keep_alive);
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
      reject(c, out, err->status, err->message);
      then = next::close;
      flush = true;
    }
    if (flush && !out.empty()) {
      auto sent = co_await send_out(c, out);
      if (!sent) co_return std::move(sent).error();
      batched = 0;
    }
    if (then) {
      if (*then == next::finished) c.s.close();
      co_return *then;
    }
  }
}

// Serves one request with the streaming handler, from its head (just parsed) on:
// runs the handler, then finishes what it left — its response (a 500 or the client's
// error status if it never started one), the unread body. True: the connection may
// serve the next request.
task<result<bool>> stream_one(connection& c, std::string& out) {
  const h1::request req = std::exchange(c.current, h1::request());
  const bool keep_alive = req.keep_alive && !c.stop.stop_requested();
  body_reader body(c, req, out);
  response_writer w(c, req, body, out, keep_alive);
  std::string failure; // why the handler failed, if it did
  try {
    co_await shield(c.svc.streaming(req, body, w));
  } catch (const std::exception& e) {
    failure = fmt::format("the handler of {} {:.200} failed: {}", req.method, req.target, e.what());
  } catch (...) {
    failure = fmt::format("the handler of {} {:.200} failed (an exception of unknown type)",
                          req.method, req.target);
  }
  if (!failure.empty()) log_to(c.o, failure);
  // The connection broke under the handler: nothing more can be said on it.
  if (w.failed()) co_return w.failure();
  if (body.failed() && body.failed_status() == 0) co_return body.failure();
  // A request without a body: its end is read now, so that complete() says so.
  if (!body.complete() && !body.failed() && !req.chunked && req.content_length == 0)
    (void)co_await body.next();

  // What the handler left unread is discarded, within bounds, to keep the connection
  // (not when the client still waits for a 100 Continue nobody sent: it may not send).
  if (!body.complete() && !body.failed() && !body.awaiting_continue()) {
    const std::uint64_t stop_at = body.received() + c.o.max_unread_body;
    while (!body.complete() && body.received() <= stop_at) {
      auto piece = co_await body.next();
      if (!piece) break;
    }
    if (body.failed() && body.failed_status() == 0) co_return body.failure();
  }
  if (!body.complete()) w.close_after();

  if (!w.started()) {
    if (body.failed_status() != 0) { // the client's fault: its status, and close
      reject(c, out, body.failed_status(), body.failure().context());
      co_return false;
    }
    if (failure.empty())
      log_to(c.o, fmt::format("the handler of {} {:.200} returned without a response", req.method,
                              req.target));
    internal_error(c, out, w.keep_alive());
  } else if (!w.finished()) {
    if (!failure.empty() || !w.can_finish() || body.failed()) {
      // A response cut short: the client must not take it for a whole one.
      if (body.failed())
        log_to(c.o, fmt::format("the body of {} {:.200} failed ({}): its response is cut short",
                                req.method, req.target, body.failure().message()));
      else if (failure.empty())
        log_to(c.o, fmt::format("the handler of {} {:.200} ended its response before its "
                                "Content-Length",
                                req.method, req.target));
      c.s.abort();
      co_return error(
          make_error_code(errc::connection_aborted),
          fmt::format("the response to {} {:.200} was cut short", req.method, req.target));
    }
    auto done = co_await w.finish();
    if (!done) co_return std::move(done).error();
  }
  if (body.complete()) ++c.report.requests;
  c.in_request = false;
  // A drain that began during the request: its response (whose head may have left
  // saying keep-alive) is the last.
  co_return w.keep_alive() && body.complete() && !c.stop.stop_requested();
}

} // namespace

// --- body_reader and response_writer ------------------------------------------------

body_reader::body_reader(detail::connection& c, const request& req, std::string& out) noexcept
    : c_(c), out_(out),
      continue_pending_(req.expect_continue && (req.chunked || req.content_length != 0)) {}

result<std::span<const std::byte>> body_reader::fail(int status, error e) {
  failed_ = true;
  failed_status_ = status;
  failure_ = std::move(e);
  return failure_;
}

task<result<std::span<const std::byte>>> body_reader::next() {
  if (failed_) co_return failure_;
  if (complete_) co_return std::span<const std::byte>();
  connection& c = c_;
  if (continue_pending_) {
    continue_pending_ = false;
    // The client waits for it before sending the body, unless it sent some already.
    if (c.p.buffered() == 0) {
      out_ += "HTTP/1.1 100 Continue\r\n\r\n"; // after the answers before it
      auto sent = co_await send_out(c, out_);
      if (!sent) co_return fail(0, std::move(sent).error());
    }
  }
  for (;;) {
    auto ev = c.p.next_event();
    if (auto* data = std::get_if<h1::body_data>(&ev)) {
      received_ += data->data.size();
      c.body_received += data->data.size();
      co_return data->data;
    }
    if (auto* end = std::get_if<h1::message_end>(&ev)) {
      complete_ = true;
      trailers_ = std::move(end->trailers);
      co_return std::span<const std::byte>();
    }
    if (auto* err = std::get_if<h1::parse_error>(&ev))
      co_return fail(
          err->status,
          error(err->status == 413 ? errc::message_too_large : errc::protocol_error, err->message));
    if (std::holds_alternative<h1::end_of_input>(ev) ||
        std::holds_alternative<h1::request_head>(ev))
      co_return fail(400, error(errc::protocol_error, "the request body ended early"));
    // need_data: wait for more, bounded by the body's deadlines.
    c.in.release();
    std::chrono::milliseconds bound{};
    const auto deadline = body_deadline(c, std::chrono::steady_clock::now(), bound);
    auto wait = c.s.recv_some();
    wait.set_deadline(deadline, bound);
    auto got = co_await shield_if(wait, true);
    if (!got) {
      if (got.error() == errc::timed_out)
        co_return fail(408, error(errc::timed_out, "request body too slow"));
      co_return fail(0, std::move(got).error());
    }
    if (got->empty()) {
      c.p.receive_eof();
    } else {
      c.in = std::move(*got);
      c.p.receive_borrowed(c.in.data());
    }
  }
}

task<result<std::string>> body_reader::read_all(std::size_t max) {
  std::string all;
  for (;;) {
    auto piece = co_await next();
    if (!piece) co_return piece.error();
    if (piece->empty()) co_return all;
    if (piece->size() > max - all.size())
      co_return error(errc::message_too_large,
                      fmt::format("http::body_reader::read_all: the body is over {} bytes", max));
    all.append(reinterpret_cast<const char*>(piece->data()), piece->size());
  }
}

result<void> response_writer::fail(error e) {
  failed_ = true;
  failure_ = std::move(e);
  return failure_;
}

task<result<void>> response_writer::flush() {
  if (failed_) co_return failure_;
  if (out_.empty()) co_return result<void>();
  auto sent = co_await send_out(c_, out_);
  if (!sent) co_return fail(std::move(sent).error());
  co_return result<void>();
}

task<result<void>> response_writer::start(int status, proto::http1::fields headers,
                                          std::optional<std::uint64_t> length) {
  if (started_) throw std::logic_error("http::response_writer::start: the response was started");
  h1::response_header head;
  head.status = status;
  head.headers = std::move(headers);
  head.keep_alive = keep_alive_;
  const bool no_body = status / 100 == 1 || status == 204 || status == 304;
  const std::size_t mark = out_.size();
  const bool send_continue = body_.continue_pending_ && status / 100 == 2 && c_.p.buffered() == 0;
  if (send_continue) out_ += "HTTP/1.1 100 Continue\r\n\r\n";
  try {
    h1::serialize_head(head, no_body ? std::optional<std::uint64_t>(0) : length, out_,
                       date_for(c_));
  } catch (...) {
    out_.resize(mark);
    throw;
  }
  if (body_.continue_pending_ && !send_continue) body_.continue_declined_ = true;
  body_.continue_pending_ = false;
  started_ = true;
  length_ = no_body ? std::optional<std::uint64_t>(0) : length;
  chunked_ = !length_;
  head_only_ = no_body || req_.method == "HEAD";
  co_return co_await flush(); // the client learns the status now
}

task<result<void>> response_writer::write(std::span<const std::byte> data) {
  if (!started_ || finished_)
    throw std::logic_error(started_ ? "http::response_writer::write after finish()"
                                    : "http::response_writer::write before start()");
  if (length_ && data.size() > *length_ - written_)
    throw std::logic_error(fmt::format("http::response_writer::write: {} bytes past the "
                                       "Content-Length of {}",
                                       data.size() - (*length_ - written_), *length_));
  written_ += data.size();
  if (failed_) co_return failure_;
  if (head_only_ || data.empty()) co_return result<void>();
  if (chunked_) h1::serialize_chunk_size(data.size(), out_);
  static constexpr char crlf[] = "\r\n";
  const std::span<const std::byte> parts[] = {as_bytes(out_), data,
                                              chunked_ ? std::as_bytes(std::span(crlf, 2))
                                                       : std::span<const std::byte>()};
  const std::size_t count = chunked_ ? 3 : 2;
  ++c_.report.sends;
  auto w = c_.s.send_all(std::span(parts, count));
  w.set_deadline(std::chrono::steady_clock::now() + c_.o.send_timeout, c_.o.send_timeout);
  auto n = co_await shield_if(w, true);
  out_.clear();
  if (!n) {
    if (n.error() == errc::timed_out) c_.s.abort();
    co_return fail(std::move(n).error());
  }
  co_return result<void>();
}

task<result<void>> response_writer::finish(proto::http1::fields trailers) {
  if (!started_) throw std::logic_error("http::response_writer::finish before start()");
  if (finished_) co_return failed_ ? result<void>(failure_) : result<void>();
  if (length_ && written_ < *length_)
    throw std::logic_error(
        fmt::format("http::response_writer::finish: {} of {} bytes written", written_, *length_));
  finished_ = true;
  if (chunked_ && !head_only_) {
    const std::size_t mark = out_.size();
    try {
      h1::serialize_last_chunk(trailers, out_);
    } catch (...) {
      out_.resize(mark);
      h1::serialize_last_chunk({}, out_); // the body still ends properly
      throw;
    }
  }
  // It leaves with the responses to pipelined requests, or when the handler is done.
  co_return failed_ ? result<void>(failure_) : result<void>();
}

task<result<void>> response_writer::send(response r) {
  if (started_) throw std::logic_error("http::response_writer::send: the response was started");
  append_response(c_, req_, r, keep_alive_, out_);
  if (body_.continue_pending_) body_.continue_declined_ = true;
  body_.continue_pending_ = false;
  started_ = true;
  finished_ = true;
  co_return failed_ ? result<void>(failure_) : result<void>();
}

namespace {

// Answers 408 to a request whose head or body came too slowly, then the connection
// closes. Its own frame: an idle connection does not carry this send's.
task<void> request_timeout(connection& c, std::string_view what) {
  std::string out;
  reject(c, out, 408, what);
  auto w = c.s.send_all(as_bytes(out));
  w.set_deadline(std::chrono::steady_clock::now() + c.o.send_timeout, c.o.send_timeout);
  (void)co_await shield_if(w, true);
}

// How a run of serve() ended.
enum class ended { closed, idle };

// Serves requests until the connection closes or — with `park_when_idle` — until it is
// idle between two requests (no request begun, nothing buffered, nothing received):
// then it returns `idle` holding nothing, for the caller to wait with no frame.
task<result<ended>> serve(tcp::stream& s, const service& h, const server_options& o,
                          connection_report& report, bool park_when_idle) {
  // (The token first: g++ 12 mishandles a co_await inside a braced initializer.)
  const stop_token stop = co_await this_stop_token();
  connection c(s, h, o, stop);
  // Small responses go out at once instead of waiting for the client's ACK (Nagle).
  if (o.tcp_nodelay) (void)s.set_nodelay(true);
  request_clock& rc = c.rc;

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
    // Before its first request a connection is not idle in the keep-alive sense: its
    // client connected to send one, and closing it then fails that request (a client
    // retries only on a reused connection). So a drain awaits the first request
    // (within header_timeout) and answers it with Connection: close, and such a
    // connection is not parked (a drain closes parked connections at once).
    const bool awaiting_first = idle && c.report.requests == 0;
    // Idle between requests and asked to stop: close now.
    if (c.stop.stop_requested() && idle && !awaiting_first) break;
    const bool first_in_drain = awaiting_first && c.stop.stop_requested();
    // Parking: an idle connection first waits here, frame and all, for park_after (a
    // busy client's next request usually comes sooner, and then costs no wake-up),
    // then is handed back to the server to wait with no frame.
    const bool may_park =
        idle && !awaiting_first && park_when_idle && o.park_after < o.idle_timeout;
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
      deadline = body_deadline(c, now, bound);
    } else {
      rc = {};
      if (may_park) {
        deadline = now + o.park_after;
        bound = o.park_after;
      } else if (first_in_drain) {
        bound = std::min(o.header_timeout, max_header_timeout);
        deadline = now + bound;
      }
    }
    auto wait = s.recv_some();
    wait.set_deadline(deadline, bound);
    auto got = co_await shield_if(wait, !idle || first_in_drain);

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
      if (got.error() == errc::timed_out) break; // idle too long
      if (idle && got.error() == errc::operation_aborted) {
        // The drain began: the first request is now awaited shielded (once).
        if (awaiting_first && !first_in_drain && c.stop.stop_requested()) continue;
        break; // stop requested
      }
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

task<result<connection_report>> serve_connection(tcp::stream& s, service h, server_options o) {
  connection_report report;
  auto r = co_await serve(s, h, o, report, false);
  if (!r) co_return std::move(r).error();
  co_return report;
}

task<result<connection_report>> serve_connection(tcp::stream& s, handler h, server_options o) {
  return serve_connection(s, service{std::move(h), {}, {}}, std::move(o));
}

task<result<connection_report>> serve_connection(tcp::stream& s, stream_handler h,
                                                 server_options o) {
  return serve_connection(s, service{{}, std::move(h), {}}, std::move(o));
}

task<sluice::server::after> serve_until_idle(tcp::stream& s, const service& h,
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

sluice::server::parking_handler parking_handler(service h, server_options o) {
  return [h = std::move(h), o = std::move(o)](tcp::stream& s, stop_token) {
    return serve_until_idle(s, h, o);
  };
}

sluice::server::parking_handler parking_handler(handler h, server_options o) {
  return parking_handler(service{std::move(h), {}, {}}, std::move(o));
}

sluice::server::parking_handler parking_handler(stream_handler h, server_options o) {
  return parking_handler(service{{}, std::move(h), {}}, std::move(o));
}

} // namespace sluice::http
