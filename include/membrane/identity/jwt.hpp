// JSON Web Tokens as the gateway needs them: keys from JWKs (RFC 7517), compact JWS signatures
// (RFC 7515) with RS256, ES256 and EdDSA only (never `none`, never HMAC), and the claim checks of
// an OAuth resource server (RFC 9068 / MCP authorization). Errors are values: a token from the
// network never throws.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace membrane::identity {

using Json = nlohmann::json;

// A public key, or a key pair, read from a JWK: RSA (RS256), EC P-256 (ES256) or OKP Ed25519
// (EdDSA). Copies share the underlying OpenSSL key.
class Jwk {
 public:
  // nullopt with `error` set when the JWK is malformed or of an unsupported type or curve.
  static std::optional<Jwk> from_json(const Json& jwk, std::string& error);
  // A fresh P-256 key pair for ES256 signing.
  static Jwk generate_es256(std::string kid);
  // A fresh key pair for `algorithm` (RS256: 2048-bit RSA, ES256, EdDSA: Ed25519), for tests and
  // benchmarks; only ES256 and EdDSA private keys can be exported with private_json().
  static Jwk generate(std::string_view algorithm, std::string kid);

  const std::string& kid() const { return kid_; }
  // The one JWS algorithm this key is for: RS256, ES256 or EdDSA.
  const std::string& algorithm() const { return algorithm_; }
  bool has_private_key() const { return has_private_; }

  bool verify(std::string_view signing_input, std::string_view signature) const;
  // The JWS signature of `signing_input` (raw bytes, not base64), or nullopt without a private key.
  std::optional<std::string> sign(std::string_view signing_input) const;

  // The public half as a JWK (kty, crv, x, y / n, e, kid, alg, use: sig), for a JWKS.
  Json public_json() const;
  // The key pair as a JWK including the private part (`d`), for persisting the gateway's key.
  Json private_json() const;

  struct Key;

 private:
  std::shared_ptr<Key> key_;
  std::string kid_;
  std::string algorithm_;
  bool has_private_ = false;
};

// The keys of a JWKS document ({"keys": [...]}): entries of unsupported types are skipped.
class KeySet {
 public:
  KeySet() = default;
  explicit KeySet(std::vector<Jwk> keys) : keys_(std::move(keys)) {}
  // Throws std::invalid_argument naming the problem when `jwks` is not a JWKS with a usable key.
  static KeySet from_json(const Json& jwks);
  // A JWKS document as an issuer serves it at its jwks_uri (text from the network): nullopt with
  // `error` set when it is not JSON, holds more than `max_keys` keys, or no usable one. Never
  // throws.
  static std::optional<KeySet> parse_document(std::string_view document, std::size_t max_keys,
                                              std::string& error);
  // A JWKS file; with `single_jwk_allowed`, a file holding one JWK (a key file) too. Throws
  // std::runtime_error naming the file.
  static KeySet read_file(const std::string& path, bool single_jwk_allowed = false);

  // The key a JWS header names: by `kid` when it has one, else the only key for `algorithm`.
  const Jwk* find(std::string_view kid, std::string_view algorithm) const;
  const std::vector<Jwk>& keys() const { return keys_; }
  bool empty() const { return keys_.empty(); }
  Json to_public_json() const;

 private:
  std::vector<Jwk> keys_;
};

struct DecodedToken {
  Json header;
  Json claims;
};

// The outcome of checking a token: the decoded token, or why it is not acceptable.
struct TokenCheck {
  std::optional<DecodedToken> token;
  std::string error;  // for logs and for the WWW-Authenticate error_description
  explicit operator bool() const { return token.has_value(); }
};

// Parses a compact JWS, checks its algorithm (RS256, ES256, EdDSA) and its signature against
// `keys`. Claims are not looked at.
TokenCheck verify_signature(std::string_view token, const KeySet& keys);

// Decodes a compact JWS without verifying anything: for `membrane token verify` to show what a
// rejected token says. Never use the result for a decision.
std::optional<DecodedToken> decode_unverified(std::string_view token);

struct ClaimRequirements {
  std::string issuer;                  // `iss` must equal it (empty: not checked)
  std::vector<std::string> audiences;  // `aud` (string or array) must contain one (empty: any)
  std::string type;                    // header `typ` must equal it (empty: not checked)
  std::chrono::seconds leeway{60};     // clock skew allowed for exp / nbf / iat
  bool require_expiry = true;
};

// A NumericDate claim (`exp`, `nbf`, `iat`) in whole seconds, clamped to ±2^53 so that any value a
// token carries (1e300 included) converts and adds without overflow; nullopt when absent or not a
// number.
std::optional<std::int64_t> numeric_date(const Json& claims, const char* name);

// Checks the standard claims of an already verified token at `now` (unix seconds).
TokenCheck check_claims(DecodedToken token, const ClaimRequirements& requirements,
                        std::int64_t now);

// verify_signature then check_claims.
TokenCheck verify_token(std::string_view token, const KeySet& keys,
                        const ClaimRequirements& requirements, std::int64_t now);

// A compact JWS over `claims` with `header` (alg and kid are set from the key).
std::string sign_token(Json header, const Json& claims, const Jwk& key);

// The scopes of a token: the space-separated `scope` claim, or the `scp` array.
std::vector<std::string> token_scopes(const Json& claims);

// A token for logs: never the token itself, only a fingerprint of it.
std::string token_fingerprint(std::string_view token);

}  // namespace membrane::identity
