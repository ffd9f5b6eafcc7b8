// libFuzzer target: the text helpers HTTP handlers and the client run on what a peer
// or a user sent (proto/http_text.hpp). Each must refuse or handle any input without a
// crash, and keep its invariants: a parsed URL's pieces are consistent, JSON escaping
// yields only printable ASCII plus valid UTF-8, a matched route's parameters come from
// the path.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sluice/proto/http_text.hpp>
#include <string>
#include <string_view>

using namespace sluice::proto::http1;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// True if `s` is valid UTF-8 (what json_escape must always produce).
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xE  ? 3
                    : (c >> 3) == 0x1E ? 4
                                       : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  const target_parts t = split_target(in);
  check(t.path.size() + t.query.size() <= in.size());
  (void)percent_decode(in, false);
  (void)percent_decode(in, true);
  if (auto q = parse_query(t.query))
    for (const auto& p : *q)
      check(p.name.size() + p.value.size() <= t.query.size());

  std::string why;
  if (auto u = parse_url(in, &why)) {
    check(!u->host.empty());
    check(u->port != 0);
    check(!u->target.empty() && u->target.front() == '/');
    for (unsigned char c : u->target)
      check(c > 0x20 && c != 0x7f);
  } else {
    check(!why.empty());
  }

  const std::string escaped = json_escape(in);
  check(valid_utf8(escaped));
  for (unsigned char c : escaped)
    check(c >= 0x20 && c != 0x7f);

  // The first line as a route pattern, the rest as a path to match against it.
  const auto nl = in.find('\n');
  if (nl != std::string_view::npos) {
    if (auto pattern = route_pattern::parse(in.substr(0, nl))) {
      if (auto params = pattern->match(in.substr(nl + 1))) {
        for (const auto& [name, value] : *params)
          check(!name.empty());
      }
    }
  }
  return 0;
}
