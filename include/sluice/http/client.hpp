// An HTTP/1.1 client on proto::http1's parser (client role), over tcp::stream on any
// backend.
//
//   http::client web(io);
//   auto r = co_await web.get("http://127.0.0.1:8080/hello");
//   if (!r) fmt::print("{}\n", r.error().message()); // names the URL and the cause
//   else    fmt::print("{} {} bytes\n", r->status, r->body.size());
//
// Connections are kept per host (host:port) and reused for the next request to it
// (keep-alive); a kept connection the server closed meanwhile is replaced, and the
// request sent again, once, when nothing of its response had come. Requests can be
// pipelined on one connection (pipeline()). Response bodies are read whole (request())
// or as they arrive (open()). Every wait is bounded: connect, the response head (a
// total deadline from the request sent), the body (between two reads), and sends.
//
// Hosts are names (looked up with resolve(), each address tried in turn within the
// connect deadline) or IP addresses. Only http:// (no TLS).
//
// Preconditions: a client is used from its io_context's thread, outlives the
// coroutines using it, and every response_stream it opened.
#pragma once

#include <sluice/export.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <sluice/net/tcp.hpp>
#include <sluice/proto/http1.hpp>
#include <sluice/proto/http_text.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

/// How a client bounds and reuses its connections.
struct client_options {
  std::chrono::milliseconds connect_timeout{10000}; ///< TCP connect
  /// The whole response head, from the request sent (a server that trickles it, or
  /// takes long to answer).
  std::chrono::milliseconds header_timeout{30000};
  std::chrono::milliseconds body_timeout{60000}; ///< between two reads of a body
  std::chrono::milliseconds send_timeout{60000}; ///< a server that stops reading
  /// Sizes the parser accepts; max_body bounds request() and pipeline() (bodies read
  /// whole), not open().
  proto::http1::limits limits;
  /// Connections kept open per host between requests.
  std::size_t max_idle_per_host = 4;
  /// Sent with every request unless the request has its own.
  std::string user_agent = "sluice";
};

/// A response read whole.
struct client_response {
  int status = 0;                ///< 100 to 999
  std::string reason;            ///< as the server sent it
  int minor_version = 1;         ///< HTTP/1.x
  proto::http1::fields headers;  ///< the header fields
  std::string body;              ///< decoded (chunked framing removed)
  proto::http1::fields trailers; ///< of a chunked body
};

/// One request for pipeline().
struct client_request {
  std::string method = "GET";   ///< "GET", "POST", ...
  std::string target = "/";     ///< "/path?query"
  proto::http1::fields headers; ///< extra fields (Host, Content-Length are added)
  std::string body;             ///< sent with a Content-Length when non-empty
};

class client;

namespace detail {
struct client_connection;
} // namespace detail

/// A response whose body is read as it arrives (client::open). Move-only. The
/// connection goes back to the client for reuse when the body has been read to its end;
/// destroyed earlier, it is closed.
class SLUICE_HTTP_API response_stream {
public:
  /// Takes over `o`'s connection and state.
  response_stream(response_stream&& o) noexcept;
  /// Closes its own connection (if the body was not read to its end), takes `o`'s.
  response_stream& operator=(response_stream&& o) noexcept;
  /// Closes the connection unless the body was read to its end.
  ~response_stream();

  int status = 0;               ///< 100 to 999
  std::string reason;           ///< as the server sent it
  int minor_version = 1;        ///< HTTP/1.x
  proto::http1::fields headers; ///< the header fields

  /// The next piece of the body, valid until the next call; empty at its end. Errors
  /// name the URL: a server that stalls past body_timeout, one that breaks HTTP/1.1 or
  /// closes mid-body.
  task<result<std::span<const std::byte>>> next();
  /// The trailer fields of a chunked body, once it has ended.
  const proto::http1::fields& trailers() const noexcept { return trailers_; }
  /// True once the body has ended.
  bool complete() const noexcept { return complete_; }

  /// \cond INTERNAL
  response_stream(client& owner, std::unique_ptr<detail::client_connection> c,
                  std::string what) noexcept;
  /// \endcond

private:
  friend class client;
  client* owner_ = nullptr;
  std::unique_ptr<detail::client_connection> conn_;
  std::string what_; // "GET http://host:port/path", for errors
  proto::http1::fields trailers_;
  bool complete_ = false;
  bool keep_ = false;
};

/// An HTTP/1.1 client (see the top of this header).
class SLUICE_HTTP_API client {
public:
  /// A client on `io`'s loop.
  explicit client(io_context& io, client_options options = {});
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client();

  /// GET `url`, the body read whole (at most limits.max_body).
  task<result<client_response>> get(std::string_view url, proto::http1::fields headers = {});
  /// POST `body` to `url` (with `content_type`), the response read whole.
  task<result<client_response>> post(std::string_view url, std::string body,
                                     std::string_view content_type = "application/octet-stream",
                                     proto::http1::fields headers = {});
  /// Any method; the response read whole.
  task<result<client_response>> request(std::string method, std::string_view url,
                                        proto::http1::fields headers = {}, std::string body = {});
  /// Sends the request and returns once the response head has arrived; the body is then
  /// read from the response_stream as it arrives.
  task<result<response_stream>> open(std::string method, std::string_view url,
                                     proto::http1::fields headers = {}, std::string body = {});
  /// Sends every request to the host of `base_url` ("http://host:port") on one
  /// connection, in one write, and reads the responses in order (HTTP/1.1
  /// pipelining). An error ends it: the responses read before it are lost with it.
  task<result<std::vector<client_response>>> pipeline(std::string_view base_url,
                                                      std::vector<client_request> requests);

  /// Connections kept open for reuse now (all hosts).
  std::size_t idle_connections() const noexcept;
  /// Connections opened so far (a reused one is not counted again).
  std::size_t connections_opened() const noexcept { return opened_; }
  /// Closes the kept connections.
  void close_idle() noexcept;

  /// \cond INTERNAL
  void give_back(std::unique_ptr<detail::client_connection> c) noexcept;
  const client_options& options() const noexcept { return options_; }
  /// \endcond

private:
  struct target;
  task<result<std::unique_ptr<detail::client_connection>>>
  connection_to(const proto::http1::url_parts& u, const std::string& what, bool fresh);
  task<result<response_stream>> exchange(std::string method, const proto::http1::url_parts& u,
                                         proto::http1::fields headers, std::string body,
                                         std::string what);
  io_context& io_;
  client_options options_;
  std::map<std::string, std::vector<std::unique_ptr<detail::client_connection>>> idle_;
  std::size_t opened_ = 0;
};

} // namespace sluice::http
