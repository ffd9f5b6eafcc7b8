#include <sluice/net/endpoint.hpp>

#include <catch2/catch.hpp>

using namespace sluice;

TEST_CASE("Endpoints parse and format IPv4 and IPv6") {
  auto a = endpoint::parse("127.0.0.1:8080");
  REQUIRE(a);
  CHECK(a->is_v4());
  CHECK(a->port() == 8080);
  CHECK(fmt::format("{}", *a) == "127.0.0.1:8080");
  auto b = endpoint::parse("[::1]:443");
  REQUIRE(b);
  CHECK(b->is_v6());
  CHECK(b->to_string() == "[::1]:443");
  CHECK(*b == endpoint::loopback_v6(443));
  auto c = endpoint::parse("::1", 80);
  REQUIRE(c);
  CHECK(c->to_string() == "[::1]:80");
  CHECK(endpoint::parse("0.0.0.0:0")->port() == 0);
  CHECK(endpoint::parse("[2001:db8::1]:65535")->to_string() == "[2001:db8::1]:65535");
}

TEST_CASE("Bad endpoint text is a clear error naming the text and the problem") {
  struct bad_case {
    const char* text;
    const char* says;
  };
  const bad_case cases[] = {
      {"", "empty"},
      {"127.0.0.1", "missing ':port'"},
      {"127.0.0.1:", "missing port"},
      {"127.0.0.1:99999", "out of range"},
      {"127.0.0.1:80x", "not a decimal number"},
      {"256.0.0.1:80", "not a valid IPv4 address"},
      {"localhost:80", "not a valid IPv4 address"},
      {"::1:80", "needs brackets"},
      {"[::1:80", "missing ']'"},
      {"[::1]80", "expected ':port'"},
      {"[::g]:80", "not a valid IPv6 address"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto r = endpoint::parse(c.text);
    REQUIRE(!r);
    CHECK(r.error() == errc::invalid_endpoint);
    CHECK(r.error().message().find(c.says) != std::string::npos);
  }
}
