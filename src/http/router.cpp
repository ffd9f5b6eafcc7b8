// http::router and the text/JSON response helpers: include/sluice/http/router.hpp.
#include <sluice/http/router.hpp>

#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>

namespace sluice::http {

namespace h1 = proto::http1;

const std::string& routed::param(std::string_view name) const noexcept {
  static const std::string none;
  for (const auto& [n, v] : params)
    if (n == name) return v;
  return none;
}

std::string routed::query_value(std::string_view name, std::string fallback) const {
  for (const auto& q : query)
    if (q.name == name) return q.value;
  return fallback;
}

response text(std::string body, int status) {
  response r;
  r.status = status;
  r.headers.add("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

response json(std::string body, int status) {
  response r;
  r.status = status;
  r.headers.add("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

router& router::add_route(std::string method, std::string_view pattern, route_handler h,
                          sync_route_handler s) {
  auto p = h1::route_pattern::parse(pattern);
  if (!p)
    throw std::invalid_argument(
        fmt::format("http::router: malformed route pattern \"{}\" (it must start with '/'; a "
                    "parameter is \"{{name}}\", a last one may be \"{{name*}}\"; names are unique)",
                    pattern));
  std::string prefix(pattern.substr(0, pattern.find('{')));
  routes_.push_back(
      {std::move(method), std::move(*p), std::move(h), std::move(s), {}, std::move(prefix)});
  return *this;
}

router& router::stream(std::string method, std::string_view pattern, stream_route_handler h) {
  add_route(std::move(method), pattern, {}, {});
  routes_.back().st = std::move(h);
  return *this;
}

const router::route* router::find(const request& req, std::string_view path,
                                  std::vector<std::pair<std::string, std::string>>& params) const {
  const route* head_by_get = nullptr;
  for (const route& r : routes_) {
    if (r.method != req.method && !(req.method == "HEAD" && r.method == "GET" && !head_by_get))
      continue;
    auto p = r.pattern.match(path);
    if (!p) continue;
    if (r.method == req.method) {
      params = std::move(*p);
      return &r;
    }
    head_by_get = &r; // unless a HEAD route comes later
    params = std::move(*p);
  }
  return head_by_get;
}

bool router::streams(const request& req) const {
  // Most requests match no streaming route at all: only those are tried first, and
  // the full search (which route comes first) runs only when one matches.
  const std::string_view path = h1::split_target(req.target).path;
  const bool escaped = path.find('%') != std::string_view::npos;
  bool candidate = false;
  for (const route& r : routes_) {
    if (!r.st || (r.method != req.method && !(req.method == "HEAD" && r.method == "GET"))) continue;
    // A path without escapes that does not begin with the route's literal text cannot
    // match it (an escape may decode into that text: then the pattern decides).
    if (!escaped && !path.starts_with(r.prefix)) continue;
    if (r.pattern.match(path)) {
      candidate = true;
      break;
    }
  }
  if (!candidate) return false;
  std::vector<std::pair<std::string, std::string>> params;
  const route* r = find(req, path, params);
  return r != nullptr && r->st;
}

task<void> router::stream(const request& req, body_reader& body, response_writer& out) const {
  const h1::target_parts parts = h1::split_target(req.target);
  auto path = h1::percent_decode(parts.path);
  auto query = h1::parse_query(parts.query);
  std::vector<std::pair<std::string, std::string>> params;
  const route* r = find(req, parts.path, params);
  if (!path || !query || r == nullptr || !r->st) { // streams() said otherwise
    (void)co_await out.send(text("no streaming route for this request\n", 500));
    co_return;
  }
  routed q{req, std::string(), std::move(*path), std::move(params), std::move(*query)};
  co_await r->st(q, body, out);
}

router& router::add(std::string method, std::string_view pattern, route_handler h) {
  return add_route(std::move(method), pattern, std::move(h), {});
}

router& router::add(std::string method, std::string_view pattern, sync_route_handler h) {
  return add_route(std::move(method), pattern, {}, std::move(h));
}

task<response> router::answer(const route& r, routed& q) {
  if (r.st)
    co_return text(fmt::format("the route for {} {:.200} streams: serve the router with "
                               "to_service()\n",
                               q.head.method, q.head.target),
                   500);
  if (r.s) co_return r.s(q);
  co_return co_await r.h(q);
}

task<response> router::operator()(const request& req, std::string body) const {
  const h1::target_parts parts = h1::split_target(req.target);
  auto path = h1::percent_decode(parts.path);
  auto query = h1::parse_query(parts.query);
  if (!path || !query)
    co_return text(fmt::format("malformed %-escape in the request target {:.200}\n", req.target),
                   400);
  const route* head_by_get = nullptr;
  std::vector<std::pair<std::string, std::string>> head_params;
  std::vector<std::string_view> allowed;
  for (const route& r : routes_) {
    auto params = r.pattern.match(parts.path);
    if (!params) continue;
    if (r.method == req.method) {
      routed q{req, std::move(body), std::move(*path), std::move(*params), std::move(*query)};
      co_return co_await answer(r, q);
    }
    if (req.method == "HEAD" && r.method == "GET" && head_by_get == nullptr) {
      head_by_get = &r; // unless a HEAD route comes later
      head_params = std::move(*params);
    }
    if (std::find(allowed.begin(), allowed.end(), r.method) == allowed.end())
      allowed.push_back(r.method);
  }
  if (head_by_get != nullptr) { // the driver sends the head without the body
    routed q{req, std::move(body), std::move(*path), std::move(head_params), std::move(*query)};
    co_return co_await answer(*head_by_get, q);
  }
  if (allowed.empty()) co_return text("not found\n", 404);
  if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end() &&
      std::find(allowed.begin(), allowed.end(), "HEAD") == allowed.end())
    allowed.push_back("HEAD");
  response r = text("method not allowed\n", 405);
  r.headers.add("Allow", fmt::format("{}", fmt::join(allowed, ", ")));
  co_return r;
}

service router::to_service() const {
  auto shared = std::make_shared<const router>(*this);
  service svc;
  svc.buffered = [shared](const request& req, std::string body) {
    return (*shared)(req, std::move(body));
  };
  if (std::any_of(routes_.begin(), routes_.end(), [](const route& r) { return bool(r.st); })) {
    svc.streaming = [shared](const request& req, body_reader& body, response_writer& out) {
      return shared->stream(req, body, out);
    };
    svc.streams = [shared](const request& req) { return shared->streams(req); };
  }
  return svc;
}

handler router::to_handler() const {
  auto shared = std::make_shared<const router>(*this);
  return [shared](const request& req, std::string body) { return (*shared)(req, std::move(body)); };
}

} // namespace sluice::http
