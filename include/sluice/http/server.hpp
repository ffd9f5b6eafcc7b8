// Serving HTTP/1.1 over a tcp::stream, on any backend: the loop that pumps bytes
// between the stream and proto::http1's parser.
//
//   task<http::response> hello(const http::request& req, std::string body) { ... }
//   co_await http::serve_connection(stream, hello);
//
// Keep-alive and pipelined requests are answered in order; the responses to the
// requests one read brought leave together in one send (bounded by
// server_options::max_batch_*). "Expect: 100-continue" is

// answered with 100 Continue before the body is read. A request the parser rejects is
// answered with its status (400, 413, 414, 431, 417, 501, 505) and "Connection: close".
// Closing is graceful: after the last response the server half-closes (FIN) and
// discards what the client still sends until its FIN — bounded by a deadline and a
// byte cap — so that the client is never sent an RST before reading the response.
#pragma once

#include <sluice/export.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <sluice/net/tcp.hpp>
#include <sluice/proto/http1.hpp>
#include <sluice/server.hpp>
#include <span>
#include <string>

namespace sluice::http {

using request = proto::http1::request;

/// What a handler answers: the server adds Content-Length, Date and Connection.
struct response {
  int status = 200;             ///< 100 to 999
  proto::http1::fields headers; ///< fields to send (no CR, LF or NUL in them)
  std::string body;             ///< sent whole, with a Content-Length
};

using handler = std::function<task<response>(const request&, std::string body)>;

namespace detail {
struct connection;
} // namespace detail

/// The body of a request being served by a stream_handler, read as it arrives. Nothing
/// is read from the connection until next() asks (backpressure: a handler that does not
/// read holds the client back by TCP flow control). The request's deadlines apply
/// (body_timeout and min_body_rate of server_options).
class SLUICE_HTTP_API body_reader {
public:
  /// The next piece of the body, decoded (chunk framing removed), valid until the next
  /// call; empty once the body is complete. Errors: errc::timed_out (the body came too
  /// slowly), errc::protocol_error or errc::message_too_large (the client broke HTTP/1.1
  /// or limits.max_body: the server answers it with its status if no response was
  /// started), or the connection's error. After an error, every call returns it again.
  task<result<std::span<const std::byte>>> next();
  /// The rest of the body as one string, at most `max` bytes (errc::message_too_large
  /// past it, and the bytes read are dropped).
  task<result<std::string>> read_all(std::size_t max);
  /// True once the whole body has been read (at once for a request without one).
  bool complete() const noexcept { return complete_; }
  /// Body bytes handed out so far.
  std::uint64_t received() const noexcept { return received_; }
  /// The trailer fields of a chunked body, once complete.
  const proto::http1::fields& trailers() const noexcept { return trailers_; }

  /// \cond INTERNAL
  body_reader(detail::connection& c, const request& req, std::string& out) noexcept;
  body_reader(const body_reader&) = delete;
  body_reader& operator=(const body_reader&) = delete;
  bool failed() const noexcept { return failed_; }
  int failed_status() const noexcept { return failed_status_; }
  const error& failure() const noexcept { return failure_; }
  /// The client expects a 100 Continue that was not sent (and may not send the body).
  bool awaiting_continue() const noexcept { return continue_pending_ || continue_declined_; }
  /// \endcond

private:
  result<std::span<const std::byte>> fail(int status, error e);
  detail::connection& c_;
  std::string& out_; // responses not sent yet: a 100 Continue goes after them
  bool complete_ = false;
  bool continue_pending_ = false;  ///< to send before reading the body
  bool continue_declined_ = false; ///< a final response went first: never sent
  std::uint64_t received_ = 0;
  proto::http1::fields trailers_;
  error failure_;
  int failed_status_ = 0; ///< what to answer when failure_ is the client's fault
  bool failed_ = false;
  friend class response_writer; // a response started answers or drops the 100 Continue
};

/// The response to a request served by a stream_handler, written as it is produced:
/// start() it, write() pieces, finish(). A client that sent "Expect: 100-continue" and
/// waits for it is sent "100 Continue" when the body is first read, or just before the
/// head when start() is called with a 2xx status before that (the body is wanted);
/// a response started with another status, or by send(), goes without it (the client
/// may then not send the body, and the connection closes after the response). Every write() is sent
/// before it returns, so memory stays bounded by what one write holds; a client that takes nothing
/// for send_timeout is reset (errc::timed_out). For HEAD, the head is sent and the body bytes are
/// counted but not sent. send() answers with a whole response instead (it may wait to leave
/// together with the responses to pipelined requests).
class SLUICE_HTTP_API response_writer {
public:
  /// Starts the response: Content-Length `length`, or chunked when there is none. The
  /// server adds Date and Connection. Throws proto::http1::local_error for a head the
  /// serializer refuses (nothing is sent then), std::logic_error if already started.
  task<result<void>> start(int status, proto::http1::fields headers = {},
                           std::optional<std::uint64_t> length = std::nullopt);
  /// Sends a piece of the body (a chunk, when chunked). Throws std::logic_error before
  /// start(), after finish(), or past the Content-Length.
  task<result<void>> write(std::span<const std::byte> data);
  /// write() of text.
  task<result<void>> write(std::string_view data) {
    return write(std::as_bytes(std::span(data.data(), data.size())));
  }
  /// Ends the body: the last chunk and `trailers` when chunked. Throws std::logic_error
  /// when fewer bytes than the Content-Length were written.
  task<result<void>> finish(proto::http1::fields trailers = {});
  /// The whole response at once (start, write, finish).
  task<result<void>> send(response r);

  /// True once start() (or send()) was called.
  bool started() const noexcept { return started_; }
  /// True once finish() (or send()) was called.
  bool finished() const noexcept { return finished_; }

  /// \cond INTERNAL
  response_writer(detail::connection& c, const request& req, body_reader& body, std::string& out,
                  bool keep_alive) noexcept
      : c_(c), req_(req), body_(body), out_(out), keep_alive_(keep_alive) {}
  response_writer(const response_writer&) = delete;
  response_writer& operator=(const response_writer&) = delete;
  bool keep_alive() const noexcept { return keep_alive_; }
  void close_after() noexcept { keep_alive_ = false; }
  const error& failure() const noexcept { return failure_; }
  bool failed() const noexcept { return failed_; }
  /// finish() would end the body properly: chunked, or the whole Content-Length written.
  bool can_finish() const noexcept { return chunked_ || (length_ && written_ == *length_); }
  /// Sends what start() / send() / finish() left in the batch.
  task<result<void>> flush();
  /// \endcond

private:
  result<void> fail(error e);
  detail::connection& c_;
  const request& req_;
  body_reader& body_;
  std::string& out_; // responses serialized, not yet sent (pipelined ones before this)
  bool keep_alive_;
  bool started_ = false;
  bool finished_ = false;
  bool chunked_ = false;
  bool head_only_ = false; // HEAD, or a status without a body
  std::optional<std::uint64_t> length_;
  std::uint64_t written_ = 0;
  bool failed_ = false;
  error failure_;
};

/// A handler that reads the request body and writes the response as they go (large
/// uploads and downloads in bounded memory):
///
///   task<void> echo(const http::request& req, http::body_reader& body,
///                   http::response_writer& out) {
///     (void)co_await out.start(200, {}, std::nullopt); // chunked
///     for (;;) {
///       auto piece = co_await body.next();
///       if (!piece || piece->empty()) break;
///       if (!co_await out.write(*piece)) break;
///     }
///     (void)co_await out.finish();
///   }
///
/// A handler that throws before it started its response is answered 500; after, the
/// connection is reset (the client sees a truncated response, never a wrong one). A
/// handler that returns without finishing: a chunked response, or one whose whole
/// Content-Length was written, is finished for it; one short of it is reset. A body the handler
/// left unread is read and discarded, up to server_options::max_unread_body; past it the connection
/// closes after the response.
using stream_handler =
    std::function<task<void>(const request&, body_reader& body, response_writer& out)>;

/// Both kinds of handler on one connection: requests for which `streams` says true (all
/// of them when it is empty) go to `streaming`; the others are read whole and answered
/// by `buffered`, whose responses to pipelined requests leave together.
struct service {
  handler buffered;                            ///< may be empty when `streaming` takes all
  stream_handler streaming;                    ///< may be empty
  std::function<bool(const request&)> streams; ///< which requests `streaming` takes
};

/// Deadlines, with nginx's defaults: a request's head must arrive whole within
/// header_timeout of its first byte (at most max_header_timeout); its body may pause at
/// most body_timeout between reads and must average min_body_rate past its first
/// body_timeout (one more second per min_body_rate bytes). Either answers 408 and closes.
/// A client that takes nothing for send_timeout while a response is being sent is
/// reset. An idle keep-alive connection is closed after idle_timeout. A new connection
/// is not idle until its first request: a drain waits for that request (within
/// header_timeout) and answers it with "Connection: close", and it is never parked
/// before it.
inline constexpr std::chrono::milliseconds max_header_timeout{30'000};

/// How serve_connection() serves: limits, deadlines, batching, logging.
struct server_options {
  proto::http1::limits limits;                    ///< sizes the parser accepts (head, body, fields)
  std::chrono::milliseconds idle_timeout{60'000}; ///< between requests
  std::chrono::milliseconds header_timeout{10'000}; ///< a whole request head
  std::chrono::milliseconds body_timeout{60'000};   ///< between two reads of a body
  std::size_t min_body_rate = 1024;                 ///< bytes/s, 0: no minimum
  std::chrono::milliseconds send_timeout{60'000};   ///< a client that stops reading

  /// With serve_until_idle (parking): how long an idle connection keeps its frame,
  /// waiting for the next request, before it is parked. A busy client's next request
  /// comes sooner and costs no wake-up; 0 parks at once.
  std::chrono::milliseconds park_after{10};

  std::chrono::milliseconds linger_timeout{2'000}; ///< waiting for the client's FIN
  std::size_t linger_max_bytes = 256 * 1024;       ///< discarded while waiting for it
  /// Responses to pipelined requests leave together, in one send per read, up to
  /// these bounds per send.
  std::size_t max_batch_responses = 64;
  std::size_t max_batch_bytes = 256 * 1024; ///< (see max_batch_responses)
  /// A stream_handler's request body it left unread is read and discarded up to this
  /// many bytes, to keep the connection; past it the connection closes after the
  /// response.
  std::size_t max_unread_body = 256 * 1024;
  /// The largest body a stream_handler may read (limits.max_body bounds the bodies of
  /// buffered handlers, which are held whole); past it, 413. No bound by default: a
  /// streamed body is never held whole.
  std::uint64_t max_streamed_body = ~std::uint64_t(0);
  /// TCP_NODELAY on the connection: responses are not held back by Nagle's algorithm
  /// waiting for the client's ACK (they are already batched).
  bool tcp_nodelay = true;
  /// A Date header on every response (formatted once per second).
  bool date_header = true;
  /// Where failures of handlers go (a handler that threw is answered 500); standard
  /// error by default.
  std::function<void(std::string_view)> log;
};

/// What happened to one connection.
struct connection_report {
  std::size_t requests = 0; ///< requests read whole and answered
  int rejected_status = 0;  ///< the status of a rejected request, or 0
  std::size_t sends = 0;    ///< send operations that carried responses
  /// Requests answered 500: the handler threw, or its response could not be written.
  std::size_t internal_errors = 0;
  bool peer_fin_seen = false; ///< the client finished its side cleanly (FIN)
};

/// Serves one connection until the client closes, asks to close, breaks the protocol or
/// times out, or the stop token it runs under is stopped (a sluice::server's drain):
/// then a request in flight (even one whose body is still arriving) gets its full
/// response with "Connection: close", an idle connection is closed at once, and no new
/// request is started. The token cancels only the wait for the next request; the rest
/// of a request in flight, its handler and the closing are shielded from it (and
/// bounded by the deadlines). Every close is graceful (FIN, then the client's FIN
/// awaited, bounded). Network errors end it with that error. The caller owns the
/// stream (a sluice::server, say); it is closed on return.
SLUICE_HTTP_API task<result<connection_report>> serve_connection(tcp::stream& s, handler h,
                                                                 server_options options = {});
/// The same with a handler that streams (see stream_handler).
SLUICE_HTTP_API task<result<connection_report>> serve_connection(tcp::stream& s, stream_handler h,
                                                                 server_options options = {});
/// The same with both kinds (see service).
SLUICE_HTTP_API task<result<connection_report>> serve_connection(tcp::stream& s, service h,
                                                                 server_options options = {});

/// For a sluice::server that parks idle connections: serves requests like
/// serve_connection() until the connection has been idle between two requests (nothing
/// begun, nothing received) for options.park_after, then returns server::after::park()
/// with the rest of options.idle_timeout —
/// the server holds it with no frame until the next request arrives and calls this
/// again — or closes as serve_connection() would and returns server::after::close().
/// Errors other than the client going away are logged through options.log. `h` and
/// `options` must outlive the call (the server's handler owns them).
SLUICE_HTTP_API task<sluice::server::after> serve_until_idle(tcp::stream& s, const service& h,
                                                             const server_options& options);

/// A handler for sluice::server::serve() that serves HTTP/1.1 with serve_until_idle(),
/// owning `h` and `options` (shared by every connection, not copied per connection):
///
///   server srv(io, std::move(acceptor));
///   co_await srv.serve(http::parking_handler(hello, options));
SLUICE_HTTP_API sluice::server::parking_handler parking_handler(handler h,
                                                                server_options options = {});
/// The same with a handler that streams.
SLUICE_HTTP_API sluice::server::parking_handler parking_handler(stream_handler h,
                                                                server_options options = {});
/// The same with both kinds.
SLUICE_HTTP_API sluice::server::parking_handler parking_handler(service h,
                                                                server_options options = {});

} // namespace sluice::http

// fmt: "3 requests in 1 sends, 0 internal errors, rejected with 408, peer FIN seen".
/// \cond SPECIALIZATIONS
template <>
struct fmt::formatter<sluice::http::connection_report> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::http::connection_report& r, Ctx& ctx) const {
    std::string s = fmt::format("{} requests in {} sends, {} internal errors", r.requests, r.sends,
                                r.internal_errors);
    if (r.rejected_status != 0) s += fmt::format(", rejected with {}", r.rejected_status);
    if (r.peer_fin_seen) s += ", peer FIN seen";
    return fmt::formatter<std::string_view>::format(s, ctx);
  }
};
/// \endcond
