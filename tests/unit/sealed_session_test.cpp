#include <catch2/catch.hpp>

#include "membrane/mcp/sealed_session.hpp"

using membrane::mcp::SessionClaims;
using membrane::mcp::SessionSealer;
using membrane::mcp::SessionTransport;

namespace {
const std::string secret = "0123456789abcdef0123456789abcdef";

SessionClaims sample_claims() {
  SessionClaims claims;
  claims.upstream = "everything";
  claims.upstream_session = "6d1ccc2f-0f59-4161-840c-0b379f222fb1";
  claims.created_at = 1'790'000'000;
  claims.initialize_params = {{"protocolVersion", "2025-11-25"},
                              {"clientInfo", {{"name", "héllo"}, {"version", "1"}}}};
  return claims;
}
}  // namespace

TEST_CASE("a sealed session id opens to the same claims with the same key") {
  const auto sealer = SessionSealer::from_secret(secret);
  const auto sealed = sealer.seal(sample_claims(), SessionTransport::streamable_http);
  const auto opened = SessionSealer::from_secret(secret).unseal(sealed, "everything",
                                                                SessionTransport::streamable_http);
  REQUIRE(opened);
  CHECK(opened->upstream == "everything");
  CHECK(opened->upstream_session == sample_claims().upstream_session);
  CHECK(opened->created_at == sample_claims().created_at);
  CHECK(opened->initialize_params == sample_claims().initialize_params);
}

TEST_CASE("a session id is visible ASCII as the MCP spec requires") {
  const auto sealed =
      SessionSealer::from_secret(secret).seal(sample_claims(), SessionTransport::streamable_http);
  for (const char c : sealed) {
    CHECK(c >= 0x21);
    CHECK(c <= 0x7e);
  }
}

TEST_CASE("the same claims seal to different ids (random nonce)") {
  const auto sealer = SessionSealer::from_secret(secret);
  CHECK(sealer.seal(sample_claims(), SessionTransport::streamable_http) !=
        sealer.seal(sample_claims(), SessionTransport::streamable_http));
}

TEST_CASE("a tampered session id does not open") {
  const auto sealer = SessionSealer::from_secret(secret);
  const auto sealed = sealer.seal(sample_claims(), SessionTransport::streamable_http);
  for (std::size_t i = 3; i < sealed.size(); i += 7) {
    std::string tampered = sealed;
    tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
    CHECK_FALSE(sealer.unseal(tampered, "everything", SessionTransport::streamable_http));
  }
  CHECK_FALSE(sealer.unseal(sealed.substr(0, sealed.size() - 1), "everything",
                            SessionTransport::streamable_http));
  CHECK_FALSE(sealer.unseal(sealed + "A", "everything", SessionTransport::streamable_http));
}

TEST_CASE("a session id sealed with another key does not open") {
  const auto sealed =
      SessionSealer::from_secret(secret).seal(sample_claims(), SessionTransport::streamable_http);
  const auto other = SessionSealer::from_secret("another secret of enough length!!");
  CHECK_FALSE(other.unseal(sealed, "everything", SessionTransport::streamable_http));
  CHECK_FALSE(
      SessionSealer::random().unseal(sealed, "everything", SessionTransport::streamable_http));
}

TEST_CASE("a session id is bound to its upstream and its transport") {
  const auto sealer = SessionSealer::from_secret(secret);
  const auto sealed = sealer.seal(sample_claims(), SessionTransport::streamable_http);
  CHECK_FALSE(sealer.unseal(sealed, "other", SessionTransport::streamable_http));
  CHECK_FALSE(sealer.unseal(sealed, "everything", SessionTransport::legacy_sse));
}

TEST_CASE("garbage never opens and never throws") {
  const auto sealer = SessionSealer::from_secret(secret);
  const std::vector<std::string> samples = {"",
                                            "m1.",
                                            "m1.x",
                                            "definitely-not-a-session",
                                            "m1.!!!!",
                                            "m1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                            std::string(10'000, 'A')};
  for (const auto& garbage : samples) {
    CHECK_FALSE(sealer.unseal(garbage, "everything", SessionTransport::streamable_http));
  }
}

TEST_CASE("a session key shorter than 16 bytes is refused") {
  CHECK_THROWS_AS(SessionSealer::from_secret("short"), std::invalid_argument);
}

TEST_CASE("base64url round-trips every length and rejects non-canonical text") {
  for (std::size_t length = 0; length < 40; ++length) {
    std::string bytes;
    for (std::size_t i = 0; i < length; ++i)
      bytes.push_back(static_cast<char>(i * 37 + 11));
    const auto encoded = membrane::mcp::base64url_encode(bytes);
    CHECK(encoded.find_first_of("+/=") == std::string::npos);
    CHECK(membrane::mcp::base64url_decode(encoded) == bytes);
  }
  CHECK_FALSE(membrane::mcp::base64url_decode("A"));   // impossible length
  CHECK_FALSE(membrane::mcp::base64url_decode("AB"));  // leftover bits set
  CHECK_FALSE(membrane::mcp::base64url_decode("A+"));  // base64, not base64url
}

TEST_CASE("the client's capabilities travel in the sealed id, once") {
  const auto sealer = SessionSealer::from_secret(secret);
  SessionClaims http = sample_claims();
  http.initialize_params = nullptr;
  http.client_capabilities = {{"elicitation", nlohmann::json::object()}};
  const auto opened_http = sealer.unseal(sealer.seal(http, SessionTransport::streamable_http),
                                         "everything", SessionTransport::streamable_http);
  REQUIRE(opened_http);
  CHECK(opened_http->client_capabilities == http.client_capabilities);

  // With the initialize params sealed (stdio replay), the capabilities come from inside them.
  SessionClaims stdio = sample_claims();
  stdio.initialize_params["capabilities"] = {{"sampling", nlohmann::json::object()}};
  stdio.client_capabilities = stdio.initialize_params["capabilities"];
  const auto with_params = sealer.seal(stdio, SessionTransport::streamable_http);
  const auto opened_stdio =
      sealer.unseal(with_params, "everything", SessionTransport::streamable_http);
  REQUIRE(opened_stdio);
  CHECK(opened_stdio->client_capabilities == stdio.client_capabilities);
  SessionClaims no_capabilities = stdio;
  no_capabilities.client_capabilities = nullptr;
  CHECK(sealer.seal(no_capabilities, SessionTransport::streamable_http).size() ==
        with_params.size());
}

TEST_CASE("the caller's subject and the client's name travel in the sealed id") {
  const auto sealer = SessionSealer::from_secret(secret);
  SessionClaims claims = sample_claims();
  claims.initialize_params = nullptr;
  claims.subject = "alice";
  claims.client_name = "claude-code";
  const auto opened = sealer.unseal(sealer.seal(claims, SessionTransport::streamable_http),
                                    "everything", SessionTransport::streamable_http);
  REQUIRE(opened);
  CHECK(opened->subject == "alice");
  CHECK(opened->client_name == "claude-code");
  // With initialize params sealed, the name is read from them.
  SessionClaims stdio = sample_claims();
  const auto from_params = sealer.unseal(sealer.seal(stdio, SessionTransport::streamable_http),
                                         "everything", SessionTransport::streamable_http);
  REQUIRE(from_params);
  CHECK(from_params->client_name == "héllo");
  CHECK(membrane::mcp::client_name_of({{"clientInfo", {{"name", 7}}}}).empty());
}

TEST_CASE("claims are read from the decrypted text as seal() writes them") {
  using membrane::mcp::claims_from_plaintext;
  const auto claims = claims_from_plaintext(
      R"({"s":"instance-7","t":1790000000,"u":"alice","i":{"capabilities":{"roots":{}},)"
      R"("clientInfo":{"name":"inspector"}},"v":"2025-11-25"})",
      "fs");
  REQUIRE(claims);
  CHECK(claims->upstream == "fs");
  CHECK(claims->upstream_session == "instance-7");
  CHECK(claims->created_at == 1'790'000'000);
  CHECK(claims->subject == "alice");
  CHECK(claims->client_capabilities == nlohmann::json{{"roots", nlohmann::json::object()}});
  CHECK(claims->client_name == "inspector");
  CHECK(claims->protocol_version == "2025-11-25");
  // Without the session or its creation time, or not a JSON object: not claims of ours.
  CHECK_FALSE(claims_from_plaintext(R"({"t":1})", "fs"));
  CHECK_FALSE(claims_from_plaintext(R"({"s":"x","t":"1"})", "fs"));
  CHECK_FALSE(claims_from_plaintext("[1]", "fs"));
  CHECK_FALSE(claims_from_plaintext("{", "fs"));
}
