// A small router for http::serve_connection / http::parking_handler: method plus path
// with parameters, the query split, coroutine and plain (synchronous) handlers, and
// helpers for text and JSON responses.
//
//   http::router r;
//   r.get("/", [](http::routed& q) { return http::text("hello\n"); });           // plain
//   r.get("/users/{id}", [](http::routed& q) -> task<http::response> {             // coroutine
//     co_return http::json(fmt::format("{{\"id\":\"{}\"}}", http::json_escape(q.param("id"))));
//   });
//   co_await srv.serve(http::parking_handler(r.handler(), options));
//
// A path no route matches is answered 404; a path some route matches with another
// method, 405 with an Allow header listing the methods that match; HEAD is served by a
// GET route when no HEAD route matches. Routes are tried in the order they were added.
// A malformed escape in the path or the query is answered 400.
#pragma once

#include <sluice/export.hpp>

#include <functional>
#include <memory>
#include <sluice/http/server.hpp>
#include <sluice/proto/http_text.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::http {

using proto::http1::json_escape;

/// A request as a route sees it: the head, the body, the path parameters and the query.
struct SLUICE_HTTP_API routed {
  const request& head;                                     ///< the request head
  std::string body;                                        ///< the whole body
  std::string path;                                        ///< the decoded path ("/users/7")
  std::vector<std::pair<std::string, std::string>> params; ///< from the pattern, in order
  std::vector<proto::http1::query_param> query;            ///< the query pairs, in order

  /// The path parameter `name` ("" if the route has none of that name).
  const std::string& param(std::string_view name) const noexcept;
  /// The first query value of `name`, or `fallback`.
  std::string query_value(std::string_view name, std::string fallback = {}) const;
};

/// A coroutine route handler.
using route_handler = std::function<task<response>(routed&)>;
/// A plain route handler: returns its response at once.
using sync_route_handler = std::function<response(routed&)>;
/// A streaming route handler (see http::stream_handler): `q.body` is empty, the body
/// is read from `body` as it arrives and the response written to `out`.
using stream_route_handler =
    std::function<task<void>(routed& q, body_reader& body, response_writer& out)>;

/// A text/plain response (UTF-8).
SLUICE_HTTP_API response text(std::string body, int status = 200);
/// An application/json response; `body` must be JSON already (json_escape() helps with
/// strings).
SLUICE_HTTP_API response json(std::string body, int status = 200);

/// Routes requests to handlers by method and path pattern (see the top of this header).
class SLUICE_HTTP_API router {
public:
  /// Adds a route: `method` ("GET"...), `pattern` ("/users/{id}", a last "{rest*}"
  /// takes the rest of the path). Throws std::invalid_argument naming a malformed
  /// pattern.
  router& add(std::string method, std::string_view pattern, route_handler h);
  /// The same with a plain handler.
  router& add(std::string method, std::string_view pattern, sync_route_handler h);

  /// Adds a streaming route (served only through to_service()).
  router& stream(std::string method, std::string_view pattern, stream_route_handler h);

  /// add("GET", ...), with either kind of handler.
  template <class H> router& get(std::string_view pattern, H h) {
    return add("GET", pattern, wrap(std::move(h)));
  }
  /// add("POST", ...).
  template <class H> router& post(std::string_view pattern, H h) {
    return add("POST", pattern, wrap(std::move(h)));
  }
  /// add("PUT", ...).
  template <class H> router& put(std::string_view pattern, H h) {
    return add("PUT", pattern, wrap(std::move(h)));
  }
  /// add("DELETE", ...).
  template <class H> router& del(std::string_view pattern, H h) {
    return add("DELETE", pattern, wrap(std::move(h)));
  }

  /// Answers one request (the http::handler signature).
  task<response> operator()(const request& req, std::string body) const;

  /// An http::handler that shares this router's routes (copy it freely; later add()s
  /// to this router are not seen by it). A streaming route is answered 500 through it:
  /// serve the router with to_service().
  handler to_handler() const;
  /// An http::service with every route: streaming routes get the body and the response
  /// as they go, the others the whole body (and their responses to pipelined requests
  /// leave together). Shares the routes as to_handler() does.
  service to_service() const;

  /// True if `req` goes to a streaming route.
  bool streams(const request& req) const;
  /// Serves `req` with its streaming route (the http::stream_handler signature).
  task<void> stream(const request& req, body_reader& body, response_writer& out) const;

private:
  struct route {
    std::string method;
    proto::http1::route_pattern pattern;
    route_handler h; // one of the three
    sync_route_handler s;
    stream_route_handler st;
    std::string prefix; // the pattern's text before its first parameter
  };
  /// The route for `req` by method (a GET route for HEAD when no HEAD route matches)
  /// and decoded path, with its parameters; nullptr when none.
  const route* find(const request& req, std::string_view path,
                    std::vector<std::pair<std::string, std::string>>& params) const;
  router& add_route(std::string method, std::string_view pattern, route_handler h,
                    sync_route_handler s);
  template <class H> static auto wrap(H h) {
    if constexpr (std::is_convertible_v<H, route_handler>)
      return route_handler(std::move(h));
    else
      return sync_route_handler(std::move(h));
  }
  static task<response> answer(const route& r, routed& q);
  std::vector<route> routes_;
};

} // namespace sluice::http
