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
#include <sluice/net/tcp.hpp>
#include <sluice/proto/http1.hpp>
#include <sluice/server.hpp>
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

/// Deadlines, with nginx's defaults: a request's head must arrive whole within
/// header_timeout of its first byte (at most max_header_timeout); its body may pause at
/// most body_timeout between reads and must average min_body_rate past its first
/// body_timeout (one more second per min_body_rate bytes). Either answers 408 and closes.
/// A client that takes nothing for send_timeout while a response is being sent is
/// reset. An idle keep-alive connection is closed after idle_timeout.
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

/// For a sluice::server that parks idle connections: serves requests like
/// serve_connection() until the connection has been idle between two requests (nothing
/// begun, nothing received) for options.park_after, then returns server::after::park()
/// with the rest of options.idle_timeout —
/// the server holds it with no frame until the next request arrives and calls this
/// again — or closes as serve_connection() would and returns server::after::close().
/// Errors other than the client going away are logged through options.log. `h` and
/// `options` must outlive the call (the server's handler owns them).
SLUICE_HTTP_API task<sluice::server::after> serve_until_idle(tcp::stream& s, const handler& h,
                                                             const server_options& options);

/// A handler for sluice::server::serve() that serves HTTP/1.1 with serve_until_idle(),
/// owning `h` and `options` (shared by every connection, not copied per connection):
///
///   server srv(io, std::move(acceptor));
///   co_await srv.serve(http::parking_handler(hello, options));
SLUICE_HTTP_API sluice::server::parking_handler parking_handler(handler h,
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
