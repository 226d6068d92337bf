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
