// Request targets, route patterns and JSON escaping (proto/http_text.hpp): every rule
// of each, and the malformed cases that must be refused rather than guessed at.
#include <catch2/catch.hpp>
#include <sluice/proto/http_text.hpp>

using namespace sluice::proto::http1;

TEST_CASE("split_target splits the path from the query and drops a fragment") {
  CHECK(split_target("/a/b?x=1&y").path == "/a/b");
  CHECK(split_target("/a/b?x=1&y").query == "x=1&y");
  CHECK(split_target("/a").query.empty());
  CHECK(split_target("/a?").query.empty());
  CHECK(split_target("/a?q=1#frag").query == "q=1");
  CHECK(split_target("/a#frag").path == "/a");
}

TEST_CASE("percent_decode decodes %XX, '+' only in queries, and refuses a broken escape") {
  CHECK(percent_decode("a%20b%2Fc") == "a b/c");
  CHECK(percent_decode("%e2%82%ac") == "\xe2\x82\xac");
  CHECK(percent_decode("a+b") == "a+b");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("") == "");
  for (const char* bad : {"%", "%4", "a%4", "%zz", "%g1", "100%"})
    CHECK_FALSE(percent_decode(bad).has_value());
}

TEST_CASE("parse_query keeps the pairs in order, decodes both sides, allows bare names") {
  auto q = parse_query("a=1&b=two+words&c=%26%3D&flag&&d=");
  REQUIRE(q);
  REQUIRE(q->size() == 5);
  CHECK((*q)[0].name == "a");
  CHECK((*q)[0].value == "1");
  CHECK((*q)[1].value == "two words");
  CHECK((*q)[2].value == "&=");
  CHECK((*q)[3].name == "flag");
  CHECK((*q)[3].value.empty());
  CHECK((*q)[4].name == "d");
  CHECK(parse_query("")->empty());
  CHECK_FALSE(parse_query("a=%2").has_value());
  CHECK_FALSE(parse_query("%zz=1").has_value());
}

TEST_CASE("route_pattern refuses malformed patterns") {
  for (const char* bad : {"", "users", "/{", "/{}", "/{id", "/id}", "/{a}/{a}", "/{rest*}/x",
                          "/x{id}", "/{a/b}", "/{*}"})
    CHECK_FALSE(route_pattern::parse(bad).has_value());
  for (const char* good :
       {"/", "/users", "/users/{id}", "/a/{b}/c/{d}", "/files/{path*}", "/{all*}"})
    CHECK(route_pattern::parse(good).has_value());
}

TEST_CASE("route_pattern matches literals and parameters segment by segment, decoded") {
  auto p = route_pattern::parse("/users/{id}/posts/{post}");
  REQUIRE(p);
  auto m = p->match("/users/7/posts/hello%20world");
  REQUIRE(m);
  REQUIRE(m->size() == 2);
  CHECK((*m)[0] == std::pair<std::string, std::string>{"id", "7"});
  CHECK((*m)[1] == std::pair<std::string, std::string>{"post", "hello world"});
  CHECK_FALSE(p->match("/users/7/posts").has_value());
  CHECK_FALSE(p->match("/users/7/posts/1/more").has_value());
  CHECK_FALSE(p->match("/users//posts/1").has_value()); // a parameter is never empty
  CHECK_FALSE(p->match("/users/7/posts/%zz").has_value());
  // An escaped '/' stays inside its segment.
  auto slash = p->match("/users/a%2Fb/posts/1");
  REQUIRE(slash);
  CHECK((*slash)[0].second == "a/b");

  auto root = route_pattern::parse("/");
  REQUIRE(root);
  CHECK(root->match("/").has_value());
  CHECK_FALSE(root->match("/x").has_value());
  auto lit = route_pattern::parse("/a/b");
  CHECK(lit->match("/a/b").has_value());
  CHECK_FALSE(lit->match("/a/b/").has_value()); // a trailing slash is another path
  CHECK_FALSE(lit->match("/a").has_value());
}

TEST_CASE("A last {name*} takes the rest of the path, possibly empty") {
  auto p = route_pattern::parse("/files/{path*}");
  REQUIRE(p);
  auto deep = p->match("/files/a/b%20c/d.txt");
  REQUIRE(deep);
  CHECK((*deep)[0].second == "a/b c/d.txt");
  auto empty = p->match("/files");
  REQUIRE(empty);
  CHECK((*empty)[0].second.empty());
  CHECK(p->match("/files/")->at(0).second.empty());
  CHECK_FALSE(p->match("/other/x").has_value());
}

TEST_CASE("json_escape escapes quotes, backslashes and control characters") {
  CHECK(json_escape("plain") == "plain");
  CHECK(json_escape("say \"hi\"\\") == "say \\\"hi\\\"\\\\");
  CHECK(json_escape("a\nb\tc\rd\be\ff") == "a\\nb\\tc\\rd\\be\\ff");
  CHECK(json_escape(std::string_view("\x00\x01\x1f\x7f", 4)) == "\\u0000\\u0001\\u001f\\u007f");
  CHECK(json_escape("</script>") == "</script>"); // JSON needs no more than RFC 8259 asks
}

TEST_CASE("json_escape keeps valid UTF-8 and replaces each byte of an invalid sequence") {
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(json_escape("\xC3\xA9") == "\xC3\xA9");                        // é, 2 bytes
  CHECK(json_escape("\xE2\x82\xAC") == "\xE2\x82\xAC");                // €, 3 bytes
  CHECK(json_escape("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");        // U+1F600, 4 bytes
  CHECK(json_escape("\x80") == fffd);                                  // a lone continuation
  CHECK(json_escape("\xC0\x80") == fffd + fffd);                       // overlong
  CHECK(json_escape("\xE0\x80\x80") == fffd + fffd + fffd);            // overlong, 3 bytes
  CHECK(json_escape("\xED\xA0\x80") == fffd + fffd + fffd);            // a surrogate
  CHECK(json_escape("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd); // past U+10FFFF
  CHECK(json_escape("\xF5") == fffd);
  CHECK(json_escape("ok\xE2\x82") == "ok" + fffd + fffd); // cut short at the end
  CHECK(json_escape("\xE2\x82x") == fffd + fffd + "x");
}

TEST_CASE("parse_url takes an http:// URL apart") {
  auto u = parse_url("http://example.com:8080/a/b?x=1#frag");
  REQUIRE(u);
  CHECK(u->host == "example.com");
  CHECK(u->port == 8080);
  CHECK(u->target == "/a/b?x=1");
  CHECK(u->authority == "example.com:8080");
  auto bare = parse_url("HTTP://127.0.0.1");
  REQUIRE(bare);
  CHECK(bare->port == 80);
  CHECK(bare->target == "/");
  CHECK(bare->authority == "127.0.0.1");
  auto query_only = parse_url("http://h?q=1");
  REQUIRE(query_only);
  CHECK(query_only->target == "/?q=1");
  auto v6 = parse_url("http://[::1]:9/x");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 9);
  CHECK(v6->authority == "[::1]:9");
}

TEST_CASE("parse_url refuses what it cannot connect to, and says why") {
  const std::pair<const char*, const char*> bad[] = {
      {"https://h/", "https is not supported"},
      {"ftp://h/", "not an http:// URL"},
      {"http://", "no host"},
      {"http:///a", "no host"},
      {"http://h:/", "an invalid port"},
      {"http://h:0/", "a port outside 1-65535"},
      {"http://h:65536/", "a port outside 1-65535"},
      {"http://h:8x/", "an invalid port"},
      {"http://u:p@h/", "userinfo"},
      {"http://[::1/", "without its ']'"},
      {"http://[::1]x/", "text after the IPv6 host"},
      {"http://h/a b", "a space or control character"},
      {"http://h\x01/", "an invalid character in the host"},
  };
  for (const auto& [url, why] : bad) {
    CAPTURE(url);
    std::string reason;
    CHECK(!parse_url(url, &reason));
    CHECK(reason.find(why) != std::string::npos);
  }
}
