// http_client: fetches a URL with sluice's HTTP/1.1 client and prints the status line,
// the header fields and the size of the body (read as it arrives, never held whole).
//
//   http_client http://127.0.0.1:8080/hello/you?greeting=hi
//   http_client --method POST --data 'some text' http://127.0.0.1:8080/echo
//   http_client --repeat 3 http://127.0.0.1:8080/   (one connection, kept alive)
//   http_client --pipeline 8 http://127.0.0.1:8080/  (8 GETs in one write)
//   http_client --header 'Accept-Encoding: gzip' --header-timeout-ms 500 URL
//
// Exits 0 when every response arrived whole, 1 with the error (naming the URL and the
// cause) otherwise, 2 for bad arguments.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <sluice/http/client.hpp>
#include <sluice/sluice.hpp>
#include <string>
#include <string_view>
#include <vector>

using namespace sluice;

namespace {

int usage() {
  std::fprintf(stderr, "usage: http_client [--method M] [--data TEXT] [--header 'NAME: VALUE']... "
                       "[--repeat N] [--pipeline N] [--header-timeout-ms MS] "
                       "http://HOST[:PORT]/PATH\n");
  return 2;
}

// --pipeline N: N requests for the URL's path in one write on one connection.
task<int> pipelined(http::client& web, std::string method, std::string url, long n,
                    proto::http1::fields headers) {
  const auto u = proto::http1::parse_url(url);
  if (!u) co_return 2;
  std::vector<http::client_request> requests;
  for (long i = 0; i < n; ++i)
    requests.push_back({method, u->target, headers, {}});
  auto r = co_await web.pipeline(url, std::move(requests));
  if (!r) {
    fmt::print(stderr, "http_client: {}\n", r.error().message());
    co_return 1;
  }
  for (const auto& one : *r)
    fmt::print("{} {} bytes\n", one.status, one.body.size());
  fmt::print("connections opened: {}\n", web.connections_opened());
  co_return 0;
}

task<int> fetch(http::client& web, std::string method, std::string url, std::string data,
                proto::http1::fields headers) {
  if (!data.empty() && !headers.find("content-type")) headers.add("Content-Type", "text/plain");
  auto r = co_await web.open(method, url, std::move(headers), std::move(data));
  if (!r) {
    fmt::print(stderr, "http_client: {}\n", r.error().message());
    co_return 1;
  }
  fmt::print("HTTP/1.{} {} {}\n", r->minor_version, r->status, r->reason);
  for (const auto& f : r->headers.all())
    fmt::print("{}: {}\n", f.name, f.value);
  std::uint64_t size = 0;
  for (;;) {
    auto piece = co_await r->next();
    if (!piece) {
      fmt::print(stderr, "http_client: {}\n", piece.error().message());
      co_return 1;
    }
    if (piece->empty()) break;
    size += piece->size();
  }
  fmt::print("\nbody: {} bytes\n", size);
  co_return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::string method = "GET", data, url;
  proto::http1::fields headers;
  long repeat = 1, pipeline = 0, header_timeout = 30'000;
  auto number = [&](const char* name, std::string_view v, long lo, long hi, long& out) {
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || p != v.data() + v.size() || out < lo || out > hi) {
      std::fprintf(stderr, "http_client: %s: \"%.*s\" is not a number in [%ld, %ld]\n", name,
                   int(v.size()), v.data(), lo, hi);
      std::exit(2);
    }
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    }
    if (a.starts_with("--") && i + 1 < argc) {
      const std::string_view v = argv[++i];
      if (a == "--method") {
        method = std::string(v);
      } else if (a == "--data") {
        data = std::string(v);
      } else if (a == "--header") {
        const auto colon = v.find(':');
        if (colon == std::string_view::npos || colon == 0) return usage();
        std::string_view value = v.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
          value.remove_prefix(1);
        headers.add(std::string(v.substr(0, colon)), std::string(value));
      } else if (a == "--repeat") {
        number("--repeat", v, 1, 1'000'000, repeat);
      } else if (a == "--pipeline") {
        number("--pipeline", v, 1, 10'000, pipeline);
      } else if (a == "--header-timeout-ms") {
        number("--header-timeout-ms", v, 1, 3'600'000, header_timeout);
      } else {
        return usage();
      }
      continue;
    }
    if (a.starts_with("--") || !url.empty()) return usage();
    url = std::string(a);
  }
  if (url.empty()) return usage();
  io_context io;
  http::client_options o;
  o.header_timeout = std::chrono::milliseconds(header_timeout);
  http::client web(io, o);
  auto all = [&]() -> task<int> {
    if (pipeline > 0) co_return co_await pipelined(web, method, url, pipeline, headers);
    for (long i = 0; i < repeat; ++i)
      if (int rc = co_await fetch(web, method, url, data, headers); rc != 0) co_return rc;
    if (repeat > 1) fmt::print("connections opened: {}\n", web.connections_opened());
    co_return 0;
  };
  return sync_wait(io, all());
}
