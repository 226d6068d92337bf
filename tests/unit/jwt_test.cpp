#include <catch2/catch.hpp>

#include "membrane/identity/jwt.hpp"
#include "membrane/identity/token_exchange.hpp"
#include "membrane/mcp/sealed_session.hpp"

using namespace membrane::identity;
using membrane::mcp::base64url_encode;

namespace {
constexpr std::int64_t now = 1'790'000'000;

Json claims_for(std::int64_t expires = now + 300) {
  return {{"iss", "https://issuer.example"},
          {"aud", "https://gw.example/mcp"},
          {"sub", "alice"},
          {"iat", now},
          {"exp", expires},
          {"scope", "mcp:read mcp:call"}};
}

ClaimRequirements resource_server() {
  ClaimRequirements requirements;
  requirements.issuer = "https://issuer.example";
  requirements.audiences = {"https://gw.example/mcp"};
  return requirements;
}

std::string unsigned_token(const Json& header, const Json& claims) {
  return base64url_encode(header.dump()) + "." + base64url_encode(claims.dump()) + ".";
}
}  // namespace

TEST_CASE("an ES256 token signed here verifies with the published public key only") {
  const Jwk key = Jwk::generate_es256("k1");
  const std::string token = sign_token({{"typ", "JWT"}}, claims_for(), key);
  std::string error;
  const auto published = Jwk::from_json(key.public_json(), error);
  REQUIRE(published);
  CHECK_FALSE(published->has_private_key());
  CHECK_FALSE(key.public_json().contains("d"));
  const KeySet keys({*published});
  const auto check = verify_token(token, keys, resource_server(), now);
  REQUIRE(check);
  CHECK(check.token->claims["sub"] == "alice");
  CHECK(check.token->header["kid"] == "k1");
  CHECK(check.token->header["alg"] == "ES256");
}

TEST_CASE("a persisted private JWK signs like the key it came from") {
  const Jwk key = Jwk::generate_es256("k1");
  std::string error;
  const auto restored = Jwk::from_json(key.private_json(), error);
  REQUIRE(restored);
  CHECK(restored->has_private_key());
  const std::string token = sign_token({}, claims_for(), *restored);
  CHECK(verify_signature(token, KeySet({key})));
}

TEST_CASE("tampering, foreign keys and unaccepted algorithms are refused") {
  const Jwk key = Jwk::generate_es256("k1");
  const KeySet keys({key});
  const std::string token = sign_token({}, claims_for(), key);

  Json other_claims = claims_for();
  other_claims["sub"] = "mallory";
  const auto dot = token.find('.');
  const auto last = token.rfind('.');
  const std::string tampered =
      token.substr(0, dot + 1) + base64url_encode(other_claims.dump()) + token.substr(last);
  CHECK(verify_signature(tampered, keys).error == "invalid signature");

  const Jwk stranger = Jwk::generate_es256("k1");
  CHECK(verify_signature(sign_token({}, claims_for(), stranger), keys).error ==
        "invalid signature");
  CHECK(verify_signature(sign_token({}, claims_for(), Jwk::generate_es256("k9")), keys).error ==
        "unknown key id 'k9'");

  CHECK_THAT(verify_signature(unsigned_token({{"alg", "none"}}, claims_for()), keys).error,
             Catch::Contains("'none' is not accepted"));
  CHECK_THAT(
      verify_signature(
          unsigned_token({{"alg", "HS256"}, {"kid", "k1"}}, claims_for()) + "c2lnbmF0dXJl", keys)
          .error,
      Catch::Contains("'HS256' is not accepted"));
  CHECK_THAT(verify_signature("not-a-token", keys).error, Catch::Contains("malformed"));
  CHECK_THAT(verify_signature("a.b.c.d", keys).error, Catch::Contains("malformed"));
  CHECK_THAT(verify_signature(std::string(20'000, 'a'), keys).error, Catch::Contains("16 KiB"));
}

TEST_CASE("a token without kid needs exactly one key of its algorithm") {
  const Jwk first = Jwk::generate_es256("");
  const Json claims = claims_for();
  const std::string token = sign_token({}, claims, first);
  CHECK(verify_signature(token, KeySet({first})));
  CHECK_THAT(verify_signature(token, KeySet({first, Jwk::generate_es256("")})).error,
             Catch::Contains("no unique ES256 key"));
}

TEST_CASE("standard claims are checked with leeway") {
  const Jwk key = Jwk::generate_es256("k1");
  const KeySet keys({key});
  const auto error_for = [&](const Json& claims, ClaimRequirements requirements = resource_server(),
                             Json header = Json::object()) {
    return verify_token(sign_token(std::move(header), claims, key), keys, requirements, now).error;
  };
  CHECK(error_for(claims_for()).empty());
  CHECK(error_for(claims_for(now - 30)).empty());  // within the 60 s leeway
  CHECK(error_for(claims_for(now - 61)) == "the token expired");
  Json no_expiry = claims_for();
  no_expiry.erase("exp");
  CHECK(error_for(no_expiry) == "the token has no 'exp'");
  Json early = claims_for();
  early["nbf"] = now + 600;
  CHECK_THAT(error_for(early), Catch::Contains("not valid yet"));
  Json wrong_issuer = claims_for();
  wrong_issuer["iss"] = "https://evil.example";
  CHECK_THAT(error_for(wrong_issuer), Catch::StartsWith("wrong issuer"));
  Json wrong_audience = claims_for();
  wrong_audience["aud"] = "https://other.example/mcp";
  CHECK_THAT(error_for(wrong_audience), Catch::StartsWith("wrong audience"));
  Json audience_list = claims_for();
  audience_list["aud"] = Json::array({"https://other.example", "https://gw.example/mcp"});
  CHECK(error_for(audience_list).empty());
  ClaimRequirements typed = resource_server();
  typed.type = "txntoken+jwt";
  CHECK_THAT(error_for(claims_for(), typed), Catch::Contains("txntoken+jwt"));
  CHECK(error_for(claims_for(), typed, {{"typ", "txntoken+jwt"}}).empty());
}

TEST_CASE("RFC 8037 Ed25519 test vector verifies") {
  std::string error;
  const auto key = Jwk::from_json(
      {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}},
      error);
  REQUIRE(key);
  CHECK(key->algorithm() == "EdDSA");
  const auto signature = membrane::mcp::base64url_decode(
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg");
  REQUIRE(signature);
  CHECK(key->verify("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc", *signature));
  CHECK_FALSE(key->verify("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmd", *signature));
}

TEST_CASE("RFC 7515 A.3 ES256 example verifies") {
  std::string error;
  const auto key = Jwk::from_json({{"kty", "EC"},
                                   {"crv", "P-256"},
                                   {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                                   {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
                                  error);
  REQUIRE(key);
  const std::string token =
      "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"
      "LmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISl"
      "SApmWQxfKTUJqPP3-Kg6NU1Q";
  const auto check = verify_signature(token, KeySet({*key}));
  REQUIRE(check);
  CHECK(check.token->claims["iss"] == "joe");
}

TEST_CASE("malformed and unsupported JWKs are reported") {
  std::string error;
  CHECK_FALSE(Jwk::from_json({{"kty", "oct"}, {"k", "c2VjcmV0"}}, error));
  CHECK_THAT(error, Catch::Contains("unsupported key type 'oct'"));
  CHECK_FALSE(Jwk::from_json({{"kty", "EC"}, {"crv", "P-384"}, {"x", "AA"}, {"y", "AA"}}, error));
  CHECK_THAT(error, Catch::Contains("P-256"));
  CHECK_FALSE(
      Jwk::from_json({{"kty", "EC"}, {"crv", "P-256"}, {"x", "AAAA"}, {"y", "AAAA"}}, error));
  CHECK_THAT(error, Catch::Contains("32 bytes"));
  CHECK_FALSE(Jwk::from_json({{"kty", "RSA"}, {"n", "AQAB"}, {"e", "AQAB"}}, error));
  CHECK_THAT(error, Catch::Contains("2048"));
  Json mismatched = Jwk::generate_es256("k").public_json();
  mismatched["alg"] = "RS256";
  CHECK_FALSE(Jwk::from_json(mismatched, error));
  CHECK_THAT(error, Catch::Contains("does not match"));
  CHECK_THROWS_WITH(KeySet::from_json({{"keys", Json::array()}}),
                    Catch::Contains("no usable signing key"));
  CHECK_THROWS_WITH(KeySet::from_json(Json::array()), Catch::Contains("\"keys\" array"));
}

TEST_CASE("scopes come from scope or scp, and tokens are logged as fingerprints") {
  CHECK(token_scopes({{"scope", "a  b c"}}) == std::vector<std::string>{"a", "b", "c"});
  CHECK(token_scopes({{"scp", {"x", "y"}}}) == std::vector<std::string>{"x", "y"});
  CHECK(token_scopes(Json::object()).empty());
  const std::string fingerprint = token_fingerprint("eyJhbGciOiJFUzI1NiJ9.e30.sig");
  CHECK_THAT(fingerprint, Catch::StartsWith("sha256:"));
  CHECK(fingerprint.find("eyJ") == std::string::npos);
}

TEST_CASE("form bodies decode like application/x-www-form-urlencoded") {
  const auto form = parse_form("grant_type=a%3Ab&scope=read+write&empty=&x");
  REQUIRE(form);
  CHECK(form->at("grant_type") == "a:b");
  CHECK(form->at("scope") == "read write");
  CHECK(form->at("empty").empty());
  CHECK(form->at("x").empty());
  CHECK_FALSE(parse_form("a=1&a=2"));  // a repeated field is ambiguous: refused
  CHECK_FALSE(parse_form("a=%zz"));
  CHECK_FALSE(parse_form("=value"));
}

TEST_CASE("text from a token is made safe before it reaches errors, logs and headers") {
  const KeySet keys({Jwk::generate_es256("k1")});
  const std::string header = Json{{"alg", "ES256"}, {"kid", "evil\r\nSet-Cookie: x=1"}}.dump();
  const std::string token = base64url_encode(header) + "." + base64url_encode("{}") + ".AAAA";
  const auto error = verify_signature(token, keys).error;
  CHECK(error.find('\r') == std::string::npos);
  CHECK(error.find('\n') == std::string::npos);
  CHECK_THAT(error, Catch::Contains("unknown key id 'evil??Set-Cookie: x=1'"));
  const std::string alg = Json{{"alg", std::string(200, 'A')}}.dump();
  const auto long_alg = verify_signature(base64url_encode(alg) + ".e30.", keys).error;
  CHECK(long_alg.size() < 150);
}

TEST_CASE("a fetched JWKS document is parsed with a cap on its keys, errors as values") {
  const Json one = Jwk::generate_es256("k1").public_json();
  std::string error;
  const auto keys = KeySet::parse_document(Json{{"keys", {one}}}.dump(), 100, error);
  REQUIRE(keys);
  CHECK(keys->find("k1", "ES256"));

  CHECK_FALSE(KeySet::parse_document(Json{{"keys", {one, one, one}}}.dump(), 2, error));
  CHECK(error == "more than 2 keys");
  CHECK_FALSE(KeySet::parse_document("<html>not json</html>", 100, error));
  CHECK_THAT(error, Catch::Contains("\"keys\" array"));
  CHECK_FALSE(KeySet::parse_document(R"({"keys":[{"kty":"oct"}]})", 100, error));
  CHECK_THAT(error, Catch::Contains("no usable signing key"));
}

// Found by tests/fuzz/jwt_fuzz.cpp: a date of 1.5e300 was converted to int64 (undefined behaviour;
// on x86 a signed token from the issuer counted as expired long ago, under UBSan the process
// stopped).
TEST_CASE("dates beyond any clock are clamped, never converted out of range") {
  const Json far = {{"exp", 1.5e300}, {"nbf", -1e300}, {"big", 18446744073709551615ull}};
  CHECK(numeric_date(far, "exp") == std::int64_t{1} << 53);
  CHECK(numeric_date(far, "nbf") == -(std::int64_t{1} << 53));
  CHECK(numeric_date(far, "big") == std::int64_t{1} << 53);
  CHECK(numeric_date(Json{{"exp", "soon"}}, "exp") == std::nullopt);
  CHECK(numeric_date(Json{{"exp", now + 0.9}}, "exp") == now);

  const Jwk key = Jwk::generate_es256("k1");
  const KeySet keys({key});
  const auto error_for = [&](const Json& claims) {
    return verify_token(sign_token(Json::object(), claims, key), keys, resource_server(), now)
        .error;
  };
  Json claims = claims_for();
  claims["exp"] = 1.5e300;
  CHECK(error_for(claims).empty());
  claims["exp"] = -1.5e300;
  CHECK(error_for(claims) == "the token expired");
  claims["exp"] = now + 60;
  claims["nbf"] = 1e300;
  CHECK_THAT(error_for(claims), Catch::Contains("not valid yet"));
}
