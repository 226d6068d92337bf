#include <catch2/catch.hpp>

#include "membrane/http/origin_policy.hpp"

using membrane::http::OriginPolicy;

TEST_CASE("by default only loopback origins are allowed") {
  const OriginPolicy policy({}, {}, true);
  CHECK(policy.origin_allowed(""));  // non-browser clients send none
  CHECK(policy.origin_allowed("http://localhost:6274"));
  CHECK(policy.origin_allowed("http://127.0.0.1:3000"));
  CHECK(policy.origin_allowed("https://[::1]:8443"));
  CHECK_FALSE(policy.origin_allowed("http://evil.example"));
  CHECK_FALSE(policy.origin_allowed("http://localhost.evil.example"));
  CHECK_FALSE(policy.origin_allowed("null"));
}

TEST_CASE("a loopback listener rejects a rebinding Host") {
  const OriginPolicy policy({}, {}, true);
  CHECK(policy.host_allowed("127.0.0.1:8080"));
  CHECK(policy.host_allowed("localhost:8080"));
  CHECK(policy.host_allowed("[::1]:8080"));
  CHECK_FALSE(policy.host_allowed("attacker.example:8080"));
  CHECK_FALSE(policy.host_allowed(""));
}

TEST_CASE("a non-loopback listener allows any Host unless a list is given") {
  CHECK(OriginPolicy({}, {}, false).host_allowed("mcp.example.com"));
  const OriginPolicy listed({}, {"mcp.example.com", "mcp.example.com:8443"}, false);
  CHECK(listed.host_allowed("MCP.example.com"));
  CHECK(listed.host_allowed("mcp.example.com:8443"));
  CHECK_FALSE(listed.host_allowed("mcp.example.com:9999"));
  CHECK_FALSE(listed.host_allowed("other.example.com"));
}

TEST_CASE("configured origins match scheme, host and port (with a port wildcard)") {
  const OriginPolicy policy({"https://app.example.com", "http://localhost:*"}, {}, true);
  CHECK(policy.origin_allowed("https://app.example.com"));
  CHECK_FALSE(policy.origin_allowed("http://app.example.com"));
  CHECK_FALSE(policy.origin_allowed("https://app.example.com:444"));
  CHECK(policy.origin_allowed("http://localhost:1234"));
  CHECK_FALSE(policy.origin_allowed("http://127.0.0.1:1234"));  // not listed once a list is given
  CHECK(OriginPolicy({"*"}, {}, true).origin_allowed("http://anything.example"));
}
