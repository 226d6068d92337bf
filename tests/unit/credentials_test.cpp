#include <catch2/catch.hpp>

#include "upstream/credentials.hpp"

using membrane::upstream::read_token_response;

TEST_CASE("a token endpoint's answer gives the token and its lifetime, or why there is none") {
  auto answer = read_token_response(
      200, R"({"access_token":"t-1","token_type":"Bearer","expires_in":3600,"scope":"mcp"})");
  CHECK(answer.error.empty());
  CHECK(answer.access_token == "t-1");
  CHECK(answer.lifetime == std::chrono::seconds(3600));

  CHECK(read_token_response(200, R"({"access_token":"t"})").lifetime == std::chrono::seconds(300));
  CHECK(read_token_response(200, R"({"access_token":""})").error ==
        "the response has no access_token");
  CHECK(read_token_response(401, R"({"error":"invalid_client"})").error ==
        "HTTP 401 invalid_client");
  CHECK(read_token_response(200, "<html>").error == "HTTP 200");
}

// Found by tests/fuzz/jwks_fuzz.cpp (which also reads token responses): expires_in 1e300 was
// converted to long (undefined behaviour), and a lifetime of 1e17 s overflowed the refresh time.
TEST_CASE("expires_in is bounded to [1 s, 1 day] before it is converted") {
  using std::chrono::seconds;
  CHECK(read_token_response(200, R"({"access_token":"t","expires_in":1e300})").lifetime ==
        seconds(86400));
  CHECK(read_token_response(200, R"({"access_token":"t","expires_in":1e17})").lifetime ==
        seconds(86400));
  CHECK(read_token_response(200, R"({"access_token":"t","expires_in":-1e300})").lifetime ==
        seconds(1));
  CHECK(read_token_response(200, R"({"access_token":"t","expires_in":0.5})").lifetime ==
        seconds(1));
}
