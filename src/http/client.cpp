// http::client: include/sluice/http/client.hpp.
#include <sluice/http/client.hpp>

#include <charconv>
#include <fmt/format.h>
#include <sluice/net/resolve.hpp>
#include <sluice/timer.hpp>
#include <system_error>

namespace sluice::http {

namespace h1 = proto::http1;
using clock = std::chrono::steady_clock;

// One connection to a host, with the parser reading its responses.
struct detail::client_connection {
  // Bodies are bounded by the caller (request() and pipeline() by limits.max_body),
  // not by the parser: open() streams bodies of any size.
  client_connection(tcp::stream stream, std::string host_key, h1::limits l)
      : s(std::move(stream)), key(std::move(host_key)), p(h1::role::client, unbounded(l)) {}
  static h1::limits unbounded(h1::limits l) {
    l.max_body = ~std::size_t(0);
    return l;
  }
  tcp::stream s;
  std::string key; // "host:port"
  h1::parser p;
  // The bytes the parser reads, lent by the stream's receive pool; released each time
  // the parser asks for more (it copies what it has not consumed).
  lent_buffer in;
  std::uint64_t received = 0; // bytes received for the current response
  bool reused = false;        // taken from the idle list (the server may have closed it)
};

namespace {

using detail::client_connection;

// Why a wait for the server ended early, as an error naming the request.
error receive_error(const error& e, const std::string& what, std::string_view phase,
                    std::chrono::milliseconds bound) {
  if (e == errc::timed_out)
    return error(errc::timed_out,
                 fmt::format("{}: {} did not arrive within {} ms", what, phase, bound.count()));
  return error(e.code(), fmt::format("{}: receiving {}", what, phase));
}

// The parser's next event, reading from the connection while it needs data, the wait
// bounded by `deadline`. A body_data event points into c.in: valid until the next call.
task<result<h1::event>> next_event(client_connection& c, clock::time_point deadline,
                                   std::chrono::milliseconds bound, const std::string& what,
                                   std::string_view phase) {
  for (;;) {
    auto ev = c.p.next_event();
    if (!std::holds_alternative<h1::need_data>(ev)) co_return ev;
    c.in.release();
    auto wait = c.s.recv_some();
    wait.set_deadline(deadline, bound);
    auto got = co_await wait;
    if (!got) co_return receive_error(got.error(), what, phase, bound);
    if (got->empty()) {
      c.p.receive_eof();
    } else {
      c.received += got->size();
      c.in = std::move(*got);
      c.p.receive_borrowed(c.in.data());
    }
  }
}

// `e` (an operation's error, with its own context) as the cause of `what` failing.
error because(const std::string& what, const error& e, std::string_view doing = {}) {
  std::string context = what + ": ";
  if (!doing.empty()) context += fmt::format("{}: ", doing);
  context += e.context().empty() ? std::string_view("failed") : std::string_view(e.context());
  return error(e.code(), std::move(context));
}

error malformed(const std::string& what, const h1::parse_error& e) {
  return error(errc::protocol_error, fmt::format("{}: malformed response: {}", what, e.message));
}

// Serializes one request for `u`'s host: Host and User-Agent added unless given.
result<void> write_request(std::string& out, const std::string& method, const std::string& target,
                           const std::string& authority, h1::fields headers,
                           const std::string& body, const client_options& o,
                           const std::string& what) {
  h1::request head;
  head.method = method;
  head.target = target;
  if (!headers.find("host")) head.headers.add("Host", authority);
  if (!headers.find("user-agent") && !o.user_agent.empty())
    head.headers.add("User-Agent", o.user_agent);
  for (const auto& f : headers.all())
    head.headers.add(f.name, f.value);
  const std::size_t mark = out.size();
  try {
    h1::serialize(head, body, out);
  } catch (const h1::local_error& e) {
    out.resize(mark);
    return error(std::make_error_code(std::errc::invalid_argument),
                 fmt::format("{}: the request cannot be written: {}", what, e.what()));
  }
  return {};
}

result<proto::http1::url_parts> parse(std::string_view url, std::string_view method) {
  std::string why;
  auto u = h1::parse_url(url, &why);
  if (!u) return error(errc::invalid_endpoint, fmt::format("{} {:.200}: {}", method, url, why));
  return std::move(*u);
}

std::string describe(std::string_view method, const h1::url_parts& u) {
  return fmt::format("{} http://{}{:.200}", method, u.authority, u.target);
}

// Reads the body of the response whose head was just parsed, whole, within `max`.
task<result<void>> read_body(response_stream& rs, std::string& body, std::size_t max,
                             const std::string& what) {
  for (;;) {
    auto piece = co_await rs.next();
    if (!piece) co_return std::move(piece).error();
    if (piece->empty()) co_return result<void>();
    if (piece->size() > max - body.size())
      co_return error(
          errc::message_too_large,
          fmt::format("{}: the response body is over the limit of {} bytes", what, max));
    body.append(reinterpret_cast<const char*>(piece->data()), piece->size());
  }
}

} // namespace

// --- response_stream -------------------------------------------------------------

response_stream::response_stream(client& owner, std::unique_ptr<client_connection> c,
                                 std::string what) noexcept
    : owner_(&owner), conn_(std::move(c)), what_(std::move(what)) {}

response_stream::response_stream(response_stream&& o) noexcept = default;
response_stream& response_stream::operator=(response_stream&& o) noexcept = default;
response_stream::~response_stream() = default; // a connection not read to its end closes

task<result<std::span<const std::byte>>> response_stream::next() {
  if (complete_) co_return std::span<const std::byte>();
  if (!conn_)
    co_return error(errc::not_connected,
                    fmt::format("{}: the body cannot be read any more (an earlier error)", what_));
  const auto& o = owner_->options();
  auto ev = co_await next_event(*conn_, clock::now() + o.body_timeout, o.body_timeout, what_,
                                "the response body");
  if (!ev) {
    conn_.reset();
    co_return std::move(ev).error();
  }
  if (auto* data = std::get_if<h1::body_data>(&*ev)) co_return data->data;
  if (auto* end = std::get_if<h1::message_end>(&*ev)) {
    complete_ = true;
    trailers_ = std::move(end->trailers);
    // Back for reuse when the server keeps it open and sent nothing more.
    if (keep_ && conn_->p.buffered() == 0) {
      conn_->in.release();
      owner_->give_back(std::move(conn_));
    }
    conn_.reset();
    co_return std::span<const std::byte>();
  }
  if (auto* bad = std::get_if<h1::parse_error>(&*ev)) {
    conn_.reset();
    co_return malformed(what_, *bad);
  }
  conn_.reset();
  co_return error(errc::protocol_error,
                  fmt::format("{}: unexpected data in the response body", what_));
}

// --- client ----------------------------------------------------------------------

client::client(io_context& io, client_options options) : io_(io), options_(std::move(options)) {}

client::~client() = default;

std::size_t client::idle_connections() const noexcept {
  std::size_t n = 0;
  for (const auto& [key, list] : idle_)
    n += list.size();
  return n;
}

void client::close_idle() noexcept { idle_.clear(); }

void client::give_back(std::unique_ptr<client_connection> c) noexcept {
  auto& list = idle_[c->key];
  if (list.size() >= options_.max_idle_per_host) return; // closed
  c->reused = true;
  c->received = 0;
  list.push_back(std::move(c));
}

task<result<std::unique_ptr<client_connection>>>
client::connection_to(const h1::url_parts& u, const std::string& what, bool fresh) {
  const std::string key = fmt::format("{}:{}", u.host, u.port);
  if (!fresh) {
    auto it = idle_.find(key);
    while (it != idle_.end() && !it->second.empty()) {
      auto c = std::move(it->second.back());
      it->second.pop_back();
      // Bytes or an end of stream waiting on an idle connection: the server closed it
      // (or broke the protocol); not reusable.
      if (!c->s.available()) co_return std::move(c);
    }
  }
  // The connect deadline covers the lookup and every address tried, in the order the
  // resolver gives them (IPv6 then IPv4 for localhost on many systems).
  const auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
  auto eps =
      co_await with_timeout(resolve(io_, u.host, std::to_string(u.port)), options_.connect_timeout);
  if (!eps) co_return because(what, eps.error());
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  auto s =
      co_await tcp::connect(io_, std::move(*eps), std::max(left, std::chrono::milliseconds(1)));
  if (!s) co_return because(what, s.error());
  (void)s->set_nodelay(true);
  ++opened_;
  co_return std::make_unique<client_connection>(std::move(*s), key, options_.limits);
}

task<result<response_stream>> client::exchange(std::string method, const h1::url_parts& u,
                                               h1::fields headers, std::string body,
                                               std::string what) {
  std::string out;
  if (auto w = write_request(out, method, u.target, u.authority, std::move(headers), body, options_,
                             what);
      !w)
    co_return std::move(w).error();
  // A kept connection the server closed meanwhile fails before any of the response
  // comes: then once more on a new connection.
  for (int attempt = 0;; ++attempt) {
    auto c = co_await connection_to(u, what, attempt > 0);
    if (!c) co_return std::move(c).error();
    client_connection& conn = **c;
    const bool may_retry = conn.reused && attempt == 0;
    conn.p.expect_response_to(method);
    auto send = conn.s.send_all(std::as_bytes(std::span(out.data(), out.size())));
    send.set_deadline(clock::now() + options_.send_timeout, options_.send_timeout);
    auto sent = co_await send;
    if (!sent) {
      if (may_retry) continue;
      if (sent.error() == errc::timed_out)
        co_return error(errc::timed_out, fmt::format("{}: the server took nothing for {} ms", what,
                                                     options_.send_timeout.count()));
      co_return error(sent.error().code(), fmt::format("{}: sending the request", what));
    }
    const auto head_deadline = clock::now() + options_.header_timeout;
    for (;;) {
      auto ev = co_await next_event(conn, head_deadline, options_.header_timeout, what,
                                    "the response head");
      if (!ev) {
        if (may_retry && conn.received == 0 && ev.error() != errc::timed_out) break;
        co_return std::move(ev).error();
      }
      if (auto* rh = std::get_if<h1::response_head>(&*ev)) {
        if (rh->head.status / 100 == 1 && rh->head.status != 101) {
          // An interim response (100 Continue, 103 Early Hints): its end, then the real one.
          auto end = co_await next_event(conn, head_deadline, options_.header_timeout, what,
                                         "the response head");
          if (!end) co_return std::move(end).error();
          conn.p.expect_response_to(method);
          continue;
        }
        response_stream rs(*this, std::move(*c), what);
        rs.status = rh->head.status;
        rs.reason = std::move(rh->head.reason);
        rs.minor_version = rh->head.minor_version;
        rs.headers = std::move(rh->head.headers);
        rs.keep_ = rh->head.keep_alive;
        co_return rs;
      }
      if (auto* bad = std::get_if<h1::parse_error>(&*ev)) co_return malformed(what, *bad);
      if (std::holds_alternative<h1::end_of_input>(ev.value())) {
        if (may_retry && conn.received == 0) break;
        co_return error(
            errc::connection_reset,
            fmt::format("{}: the server closed the connection without a response", what));
      }
      co_return error(errc::protocol_error,
                      fmt::format("{}: unexpected data before the response head", what));
    }
  }
}

task<result<response_stream>> client::open(std::string method, std::string_view url,
                                           h1::fields headers, std::string body) {
  auto u = parse(url, method);
  if (!u) co_return std::move(u).error();
  std::string what = describe(method, *u);
  co_return co_await exchange(std::move(method), *u, std::move(headers), std::move(body),
                              std::move(what));
}

task<result<client_response>> client::request(std::string method, std::string_view url,
                                              h1::fields headers, std::string body) {
  auto u = parse(url, method);
  if (!u) co_return std::move(u).error();
  const std::string what = describe(method, *u);
  auto rs = co_await exchange(std::move(method), *u, std::move(headers), std::move(body), what);
  if (!rs) co_return std::move(rs).error();
  client_response r;
  r.status = rs->status;
  r.reason = std::move(rs->reason);
  r.minor_version = rs->minor_version;
  r.headers = std::move(rs->headers);
  if (const std::string* length = r.headers.find("content-length")) {
    std::uint64_t n = 0;
    const auto [p, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
    if (ec == std::errc() && n > options_.limits.max_body)
      co_return error(errc::message_too_large,
                      fmt::format("{}: the response body of {} bytes is over the limit of {}", what,
                                  n, options_.limits.max_body));
  }
  auto whole = co_await read_body(*rs, r.body, options_.limits.max_body, what);
  if (!whole) co_return std::move(whole).error();
  r.trailers = rs->trailers();
  co_return r;
}

task<result<client_response>> client::get(std::string_view url, h1::fields headers) {
  return request("GET", url, std::move(headers));
}

task<result<client_response>> client::post(std::string_view url, std::string body,
                                           std::string_view content_type, h1::fields headers) {
  if (!headers.find("content-type")) headers.add("Content-Type", std::string(content_type));
  return request("POST", url, std::move(headers), std::move(body));
}

task<result<std::vector<client_response>>> client::pipeline(std::string_view base_url,
                                                            std::vector<client_request> requests) {
  auto u = parse(base_url, "pipeline to");
  if (!u) co_return std::move(u).error();
  const std::string what =
      fmt::format("{} requests pipelined to http://{}", requests.size(), u->authority);
  std::vector<client_response> out;
  if (requests.empty()) co_return out;
  std::string wire;
  for (auto& r : requests)
    if (auto w = write_request(wire, r.method, r.target, u->authority, std::move(r.headers), r.body,
                               options_, what);
        !w)
      co_return std::move(w).error();
  // Always a new connection: a kept one might have been closed by the server, and a
  // pipeline cannot be replayed safely in part.
  auto c = co_await connection_to(*u, what, true);
  if (!c) co_return std::move(c).error();
  client_connection& conn = **c;
  auto send = conn.s.send_all(std::as_bytes(std::span(wire.data(), wire.size())));
  send.set_deadline(clock::now() + options_.send_timeout, options_.send_timeout);
  auto sent = co_await send;
  if (!sent) co_return error(sent.error().code(), fmt::format("{}: sending the requests", what));
  bool keep = true;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const std::string one = fmt::format("{} (response {}, to {} {:.200})", what, i + 1,
                                        requests[i].method, requests[i].target);
    conn.p.expect_response_to(requests[i].method);
    client_response r;
    const auto head_deadline = clock::now() + options_.header_timeout;
    bool have_head = false;
    bool done = false;
    while (!done) {
      const auto deadline = have_head ? clock::now() + options_.body_timeout : head_deadline;
      const auto bound = have_head ? options_.body_timeout : options_.header_timeout;
      auto ev = co_await next_event(conn, deadline, bound, one,
                                    have_head ? "the response body" : "the response head");
      if (!ev) co_return std::move(ev).error();
      if (auto* rh = std::get_if<h1::response_head>(&*ev)) {
        if (rh->head.status / 100 == 1 && rh->head.status != 101) continue; // its end follows
        have_head = true;
        r.status = rh->head.status;
        r.reason = std::move(rh->head.reason);
        r.minor_version = rh->head.minor_version;
        r.headers = std::move(rh->head.headers);
        keep = rh->head.keep_alive;
      } else if (auto* data = std::get_if<h1::body_data>(&*ev)) {
        if (data->data.size() > options_.limits.max_body - r.body.size())
          co_return error(errc::message_too_large,
                          fmt::format("{}: the response body is over the limit of {} bytes", one,
                                      options_.limits.max_body));
        r.body.append(reinterpret_cast<const char*>(data->data.data()), data->data.size());
      } else if (auto* end = std::get_if<h1::message_end>(&*ev)) {
        if (!have_head) continue; // the end of an interim response
        r.trailers = std::move(end->trailers);
        done = true;
      } else if (auto* bad = std::get_if<h1::parse_error>(&*ev)) {
        co_return malformed(one, *bad);
      } else {
        co_return error(errc::connection_reset,
                        fmt::format("{}: the server closed the connection first", one));
      }
    }
    out.push_back(std::move(r));
    if (!keep && i + 1 < requests.size())
      co_return error(
          errc::connection_reset,
          fmt::format("{}: the server closed the connection after {} responses", what, i + 1));
  }
  if (keep && conn.p.buffered() == 0) {
    conn.in.release();
    give_back(std::move(*c));
  }
  co_return out;
}

} // namespace sluice::http
