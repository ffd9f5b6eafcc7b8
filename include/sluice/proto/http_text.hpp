// Text that HTTP handlers take apart and put together: request targets (path and
// query, percent-decoding), route patterns with parameters, and JSON string escaping.
// Sans-io, like the rest of sluice::proto: std and fmt only.
#pragma once

#include <sluice/export.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::proto::http1 {

/// A request target split at its '?' (a '#' fragment, which clients should not send,
/// is dropped).
struct target_parts {
  std::string_view path;  ///< "/users/7"
  std::string_view query; ///< "a=1&b=2", without the '?'
};
/// Splits `target` ("/users/7?a=1") into its path and query.
SLUICE_PROTO_API target_parts split_target(std::string_view target) noexcept;

/// Decodes %XX escapes (and '+' as a space when `plus_is_space`, as in a query);
/// std::nullopt for a '%' not followed by two hex digits.
SLUICE_PROTO_API std::optional<std::string> percent_decode(std::string_view text,
                                                           bool plus_is_space = false);

/// One name=value pair of a query, decoded.
struct query_param {
  std::string name;  ///< decoded name
  std::string value; ///< decoded value ("" for a bare name)
};
/// The pairs of `query` ("a=1&b=two%20words&flag"), in order; std::nullopt if an escape
/// is malformed.
SLUICE_PROTO_API std::optional<std::vector<query_param>> parse_query(std::string_view query);

/// A route pattern: literal segments and parameters, "/users/{id}/posts/{post}"; a last
/// segment "{rest*}" takes the rest of the path (possibly empty).
class SLUICE_PROTO_API route_pattern {
public:
  /// Parses `pattern`; std::nullopt for a malformed one (not starting with '/', an
  /// unclosed '{', an empty or repeated name, a "{name*}" that is not last).
  static std::optional<route_pattern> parse(std::string_view pattern);

  /// Matches a request path (percent-decoded per segment); the parameters by name, in
  /// pattern order, or std::nullopt if it does not match.
  std::optional<std::vector<std::pair<std::string, std::string>>>
  match(std::string_view path) const;

  /// The pattern as given.
  const std::string& text() const noexcept { return text_; }

private:
  struct segment {
    std::string text; // a literal, or the parameter's name
    bool param = false;
    bool rest = false;
  };
  std::string text_;
  std::vector<segment> segments_;
};

/// An absolute http:// URL taken apart (what a client connects to and asks for).
struct url_parts {
  std::string host;        ///< "example.com", "127.0.0.1" or "::1" (no brackets)
  std::uint16_t port = 80; ///< the given port, or 80
  std::string target;      ///< "/path?query" ("/" when the URL has no path)
  std::string authority;   ///< the Host header's value: "host" or "host:port" as given
};
/// Parses "http://host[:port][/path][?query]" (IPv6 hosts in brackets; the scheme
/// case-insensitive; a '#' fragment dropped). std::nullopt, with `why` set when given,
/// for another scheme (https is not spoken here), userinfo, an empty host, a port
/// outside 1-65535, or characters that cannot be in a request target.
SLUICE_PROTO_API std::optional<url_parts> parse_url(std::string_view url,
                                                    std::string* why = nullptr);

/// The contents of a JSON string for `text` (RFC 8259), without the quotes: '"', '\\'
/// and control characters escaped; valid UTF-8 kept as it is, and each byte of an
/// invalid sequence replaced by U+FFFD, so the output is always valid JSON.
SLUICE_PROTO_API std::string json_escape(std::string_view text);

} // namespace sluice::proto::http1
