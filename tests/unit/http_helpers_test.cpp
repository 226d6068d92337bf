#include <catch2/catch.hpp>

#include "gateway/responses.hpp"
#include "http/client.hpp"

using membrane::http::UpstreamUrl;

TEST_CASE("upstream URLs are parsed into host, port, target and Host header") {
  std::string error;
  auto url = UpstreamUrl::parse("http://127.0.0.1:3001/mcp?x=1", error);
  REQUIRE(url);
  CHECK_FALSE(url->tls);
  CHECK(url->host == "127.0.0.1");
  CHECK(url->port == 3001);
  CHECK(url->target == "/mcp?x=1");
  CHECK(url->host_header == "127.0.0.1:3001");

  url = UpstreamUrl::parse("https://[::1]/mcp", error);
  REQUIRE(url);
  CHECK(url->tls);
  CHECK(url->host == "::1");
  CHECK(url->port == 443);
  CHECK(url->host_header == "[::1]");

  url = UpstreamUrl::parse("http://example.com", error);
  REQUIRE(url);
  CHECK(url->target == "/");
}

TEST_CASE("bad upstream URLs are refused with a reason") {
  std::string error;
  for (const char* bad : {"ftp://x/", "http://", "http://host:0/", "http://host:99999/",
                          "http://u:p@host/", "http://[::1/"}) {
    INFO(bad);
    CHECK_FALSE(UpstreamUrl::parse(bad, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("Accept negotiation honours wildcards and q=0") {
  using membrane::gateway::accepts;
  CHECK(accepts("application/json, text/event-stream", "text/event-stream"));
  CHECK(accepts("*/*", "application/json"));
  CHECK(accepts("text/*;q=0.5", "text/event-stream"));
  CHECK_FALSE(accepts("application/json", "text/event-stream"));
  CHECK_FALSE(accepts("", "application/json"));
  CHECK_FALSE(accepts("text/event-stream;q=0", "text/event-stream"));
}

TEST_CASE("media types ignore parameters and case") {
  using membrane::gateway::media_type_is;
  CHECK(media_type_is("application/json; charset=utf-8", "application/json"));
  CHECK(media_type_is("Application/JSON", "application/json"));
  CHECK_FALSE(media_type_is("text/plain", "application/json"));
  CHECK_FALSE(media_type_is("application/json-seq", "application/json"));
}

TEST_CASE("query parameters are found and percent-decoded") {
  using membrane::gateway::query_parameter;
  CHECK(query_parameter("/sse/x/message?sessionId=m1.abc_-", "sessionId") == "m1.abc_-");
  CHECK(query_parameter("/p?a=1&sessionId=a%2Db", "sessionId") == "a-b");
  CHECK(query_parameter("/p?a=1", "sessionId").empty());
  CHECK(query_parameter("/p", "sessionId").empty());
}
