#include "membrane/identity/jwt.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/sha256.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "membrane/mcp/sealed_session.hpp"

namespace membrane::identity {

using mcp::base64url_decode;
using mcp::base64url_encode;

struct Jwk::Key {
  EVP_PKEY* pkey = nullptr;
  explicit Key(EVP_PKEY* key) : pkey(key) {}
  ~Key() { EVP_PKEY_free(pkey); }
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
};

namespace {

struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
using Bn = std::unique_ptr<BIGNUM, BnDeleter>;
struct ParamBuildDeleter {
  void operator()(OSSL_PARAM_BLD* bld) const { OSSL_PARAM_BLD_free(bld); }
};
struct ParamsDeleter {
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};

constexpr std::size_t p256_coordinate = 32;
constexpr int minimum_rsa_bits = 2048;

std::string string_member(const Json& object, const char* key) {
  return std::string(json::string_member(object, key));
}

// A base64url member decoded, or nullopt (with `error`) when absent or not base64url.
std::optional<std::string> bytes_member(const Json& jwk, const char* key, std::string& error) {
  const std::string text = string_member(jwk, key);
  if (text.empty()) {
    error = std::string("JWK member '") + key + "' is missing";
    return std::nullopt;
  }
  auto bytes = base64url_decode(text);
  if (!bytes) error = std::string("JWK member '") + key + "' is not base64url";
  return bytes;
}

Bn to_bignum(std::string_view bytes) {
  return Bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                      static_cast<int>(bytes.size()), nullptr));
}

EVP_PKEY* from_params(const char* type, OSSL_PARAM_BLD* build, int selection) {
  std::unique_ptr<OSSL_PARAM, ParamsDeleter> params(OSSL_PARAM_BLD_to_param(build));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, selection, params.get()) != 1) {
    return nullptr;
  }
  return pkey;
}

EVP_PKEY* rsa_key(const Json& jwk, std::string& error) {
  const auto n = bytes_member(jwk, "n", error);
  const auto e = n ? bytes_member(jwk, "e", error) : std::nullopt;
  if (!n || !e) return nullptr;
  Bn modulus = to_bignum(*n);
  Bn exponent = to_bignum(*e);
  std::unique_ptr<OSSL_PARAM_BLD, ParamBuildDeleter> build(OSSL_PARAM_BLD_new());
  if (!modulus || !exponent || !build ||
      !OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, modulus.get()) ||
      !OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, exponent.get())) {
    error = "the RSA key could not be built";
    return nullptr;
  }
  EVP_PKEY* pkey = from_params("RSA", build.get(), EVP_PKEY_PUBLIC_KEY);
  if (!pkey) {
    error = "the RSA key is invalid";
    return nullptr;
  }
  if (EVP_PKEY_get_bits(pkey) < minimum_rsa_bits) {
    EVP_PKEY_free(pkey);
    error = "RSA keys shorter than 2048 bits are refused";
    return nullptr;
  }
  return pkey;
}

EVP_PKEY* ec_key(const Json& jwk, std::string& error, bool& has_private) {
  if (string_member(jwk, "crv") != "P-256") {
    error = "only the P-256 curve is supported for EC keys (ES256)";
    return nullptr;
  }
  const auto x = bytes_member(jwk, "x", error);
  const auto y = x ? bytes_member(jwk, "y", error) : std::nullopt;
  if (!x || !y) return nullptr;
  if (x->size() != p256_coordinate || y->size() != p256_coordinate) {
    error = "P-256 coordinates must be 32 bytes";
    return nullptr;
  }
  std::string point = "\x04" + *x + *y;
  std::unique_ptr<OSSL_PARAM_BLD, ParamBuildDeleter> build(OSSL_PARAM_BLD_new());
  char group[] = "prime256v1";
  Bn d;
  has_private = jwk.contains("d");
  if (has_private) {
    std::string ignored;
    const auto secret = bytes_member(jwk, "d", ignored);
    if (!secret) {
      error = "JWK member 'd' is not base64url";
      return nullptr;
    }
    d = to_bignum(*secret);
  }
  if (!build ||
      !OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size()) ||
      (d && !OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get()))) {
    error = "the EC key could not be built";
    return nullptr;
  }
  EVP_PKEY* pkey =
      from_params("EC", build.get(), has_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
  if (!pkey) error = "the EC key is invalid (the point is not on P-256?)";
  return pkey;
}

EVP_PKEY* okp_key(const Json& jwk, std::string& error, bool& has_private) {
  if (string_member(jwk, "crv") != "Ed25519") {
    error = "only the Ed25519 curve is supported for OKP keys (EdDSA)";
    return nullptr;
  }
  has_private = jwk.contains("d");
  const auto raw = bytes_member(jwk, has_private ? "d" : "x", error);
  if (!raw) return nullptr;
  if (raw->size() != 32) {
    error = "Ed25519 keys are 32 bytes";
    return nullptr;
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw->data());
  EVP_PKEY* pkey = has_private
                       ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, bytes, raw->size())
                       : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes, raw->size());
  if (!pkey) error = "the Ed25519 key is invalid";
  return pkey;
}

const EVP_MD* digest_for(const std::string& algorithm) {
  // Fetched once: an implicit fetch on every signature is a measurable share of its cost.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return algorithm == "EdDSA" ? nullptr : sha256;
}

// JWS ES256 signatures are r || s (32 bytes each); OpenSSL speaks DER.
std::optional<std::string> es256_raw_to_der(std::string_view raw) {
  if (raw.size() != 2 * p256_coordinate) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
  Bn r = to_bignum(raw.substr(0, p256_coordinate));
  Bn s = to_bignum(raw.substr(p256_coordinate));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  r.release();  // owned by sig now
  s.release();
  const int length = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (length <= 0) return std::nullopt;
  std::string der(static_cast<std::size_t>(length), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_ECDSA_SIG(sig.get(), &out);
  return der;
}

std::optional<std::string> es256_der_to_raw(std::string_view der) {
  const auto* in = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(
      d2i_ECDSA_SIG(nullptr, &in, static_cast<long>(der.size())));
  if (!sig) return std::nullopt;
  std::string raw(2 * p256_coordinate, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, p256_coordinate) != p256_coordinate ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + p256_coordinate, p256_coordinate) !=
          p256_coordinate) {
    return std::nullopt;
  }
  return raw;
}

std::string bignum_bytes(const BIGNUM* bn, std::size_t width = 0) {
  const std::size_t size = width ? width : static_cast<std::size_t>(BN_num_bytes(bn));
  std::string out(size, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(size));
  return out;
}

// Text from a token, made safe to repeat in an error, a log line or a WWW-Authenticate header:
// printable ASCII only, at most 64 characters.
std::string shown(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 64))
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (text.size() > 64) out += "...";
  return out;
}

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::optional<Jwk> Jwk::from_json(const Json& jwk, std::string& error) {
  if (!jwk.is_object()) {
    error = "a JWK must be a JSON object";
    return std::nullopt;
  }
  const std::string kty = string_member(jwk, "kty");
  const std::string declared = string_member(jwk, "alg");
  Jwk key;
  EVP_PKEY* pkey = nullptr;
  if (kty == "RSA") {
    key.algorithm_ = "RS256";
    pkey = rsa_key(jwk, error);
  } else if (kty == "EC") {
    key.algorithm_ = "ES256";
    pkey = ec_key(jwk, error, key.has_private_);
  } else if (kty == "OKP") {
    key.algorithm_ = "EdDSA";
    pkey = okp_key(jwk, error, key.has_private_);
  } else {
    error = "unsupported key type '" + kty + "' (RSA, EC and OKP are supported)";
    return std::nullopt;
  }
  if (!pkey) return std::nullopt;
  key.key_ = std::make_shared<Key>(pkey);
  if (!declared.empty() && declared != key.algorithm_) {
    error = "JWK 'alg' " + declared + " does not match its key type (" + key.algorithm_ + ")";
    return std::nullopt;
  }
  if (const std::string use = string_member(jwk, "use"); !use.empty() && use != "sig") {
    error = "JWK 'use' is '" + use + "', not 'sig'";
    return std::nullopt;
  }
  key.kid_ = string_member(jwk, "kid");
  return key;
}

Jwk Jwk::generate(std::string_view algorithm, std::string kid) {
  if (algorithm == "ES256") return generate_es256(std::move(kid));
  EVP_PKEY* pkey = algorithm == "RS256"   ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                   : algorithm == "EdDSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                                          : nullptr;
  if (!pkey) throw std::runtime_error("cannot generate a key for " + std::string(algorithm));
  Jwk key;
  key.key_ = std::make_shared<Key>(pkey);
  key.kid_ = std::move(kid);
  key.algorithm_ = std::string(algorithm);
  key.has_private_ = true;
  return key;
}

Jwk Jwk::generate_es256(std::string kid) {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!pkey) throw std::runtime_error("P-256 key generation failed");
  Jwk key;
  key.key_ = std::make_shared<Key>(pkey);
  key.kid_ = std::move(kid);
  key.algorithm_ = "ES256";
  key.has_private_ = true;
  return key;
}

bool Jwk::verify(std::string_view signing_input, std::string_view signature) const {
  std::string der;
  if (algorithm_ == "ES256") {
    auto converted = es256_raw_to_der(signature);
    if (!converted) return false;
    der = std::move(*converted);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  return ctx &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, digest_for(algorithm_), nullptr, key_->pkey) ==
             1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(),
                          reinterpret_cast<const unsigned char*>(signing_input.data()),
                          signing_input.size()) == 1;
}

std::optional<std::string> Jwk::sign(std::string_view signing_input) const {
  if (!has_private_) return std::nullopt;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  std::size_t length = 0;
  const auto* input = reinterpret_cast<const unsigned char*>(signing_input.data());
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, digest_for(algorithm_), nullptr, key_->pkey) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, input, signing_input.size()) != 1) {
    return std::nullopt;
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length, input,
                     signing_input.size()) != 1) {
    return std::nullopt;
  }
  signature.resize(length);
  if (algorithm_ == "ES256") return es256_der_to_raw(signature);
  return signature;
}

Json Jwk::public_json() const {
  Json jwk = {{"kid", kid_}, {"alg", algorithm_}, {"use", "sig"}};
  if (algorithm_ == "RS256") {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    EVP_PKEY_get_bn_param(key_->pkey, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(key_->pkey, OSSL_PKEY_PARAM_RSA_E, &e);
    Bn modulus(n), exponent(e);
    jwk["kty"] = "RSA";
    if (modulus && exponent) {
      jwk["n"] = base64url_encode(bignum_bytes(modulus.get()));
      jwk["e"] = base64url_encode(bignum_bytes(exponent.get()));
    }
  } else if (algorithm_ == "ES256") {
    unsigned char point[1 + 2 * p256_coordinate];
    std::size_t length = 0;
    EVP_PKEY_get_octet_string_param(key_->pkey, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point,
                                    &length);
    jwk["kty"] = "EC";
    jwk["crv"] = "P-256";
    if (length == sizeof point) {
      const std::string_view bytes(reinterpret_cast<const char*>(point), length);
      jwk["x"] = base64url_encode(bytes.substr(1, p256_coordinate));
      jwk["y"] = base64url_encode(bytes.substr(1 + p256_coordinate));
    }
  } else {
    unsigned char raw[32];
    std::size_t length = sizeof raw;
    EVP_PKEY_get_raw_public_key(key_->pkey, raw, &length);
    jwk["kty"] = "OKP";
    jwk["crv"] = "Ed25519";
    jwk["x"] = base64url_encode(std::string_view(reinterpret_cast<const char*>(raw), length));
  }
  return jwk;
}

Json Jwk::private_json() const {
  Json jwk = public_json();
  if (!has_private_) return jwk;
  if (algorithm_ == "ES256") {
    BIGNUM* d = nullptr;
    EVP_PKEY_get_bn_param(key_->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d);
    Bn secret(d);
    if (secret) jwk["d"] = base64url_encode(bignum_bytes(secret.get(), p256_coordinate));
  } else if (algorithm_ == "EdDSA") {
    unsigned char raw[32];
    std::size_t length = sizeof raw;
    EVP_PKEY_get_raw_private_key(key_->pkey, raw, &length);
    jwk["d"] = base64url_encode(std::string_view(reinterpret_cast<const char*>(raw), length));
  }
  return jwk;
}

KeySet KeySet::from_json(const Json& jwks) {
  if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array()) {
    throw std::invalid_argument("a JWKS is a JSON object with a \"keys\" array");
  }
  std::vector<Jwk> keys;
  std::string problems;
  for (const auto& entry : jwks["keys"]) {
    std::string error;
    if (auto key = Jwk::from_json(entry, error)) {
      keys.push_back(std::move(*key));
    } else {
      problems += (problems.empty() ? "" : "; ") + error;
    }
  }
  if (keys.empty()) {
    throw std::invalid_argument("the JWKS has no usable signing key" +
                                (problems.empty() ? std::string() : " (" + problems + ")"));
  }
  return KeySet(std::move(keys));
}

std::optional<KeySet> KeySet::parse_document(std::string_view document, std::size_t max_keys,
                                             std::string& error) {
  const Json parsed = json::parse_or_discarded(document);
  if (parsed.is_object() && parsed.contains("keys") && parsed["keys"].is_array() &&
      parsed["keys"].size() > max_keys) {
    error = "more than " + std::to_string(max_keys) + " keys";
    return std::nullopt;
  }
  try {
    return from_json(parsed);
  } catch (const std::invalid_argument& problem) {
    error = problem.what();
    return std::nullopt;
  }
}

KeySet KeySet::read_file(const std::string& path, bool single_jwk_allowed) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read the JWKS file '" + path + "'");
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const Json document = json::parse_or_discarded(text);
  try {
    if (single_jwk_allowed && document.is_object() && !document.contains("keys"))
      return from_json({{"keys", {document}}});
    return from_json(document);
  } catch (const std::invalid_argument& problem) {
    throw std::runtime_error("JWKS file '" + path + "': " + problem.what());
  }
}

const Jwk* KeySet::find(std::string_view kid, std::string_view algorithm) const {
  const Jwk* only = nullptr;
  std::size_t candidates = 0;
  for (const auto& key : keys_) {
    if (key.algorithm() != algorithm) continue;
    if (!kid.empty() && key.kid() == kid) return &key;
    ++candidates;
    only = &key;
  }
  // Without a kid the choice must be unambiguous; with one, it must match.
  return kid.empty() && candidates == 1 ? only : nullptr;
}

Json KeySet::to_public_json() const {
  Json keys = Json::array();
  for (const auto& key : keys_)
    keys.push_back(key.public_json());
  return {{"keys", std::move(keys)}};
}

std::optional<DecodedToken> decode_unverified(std::string_view token) {
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return std::nullopt;
  const auto header = base64url_decode(token.substr(0, first));
  const auto claims = base64url_decode(token.substr(first + 1, second - first - 1));
  if (!header || !claims) return std::nullopt;
  DecodedToken decoded;
  decoded.header = json::parse_or_discarded(*header);
  decoded.claims = json::parse_or_discarded(*claims);
  if (!decoded.header.is_object() || !decoded.claims.is_object()) return std::nullopt;
  return decoded;
}

TokenCheck verify_signature(std::string_view token, const KeySet& keys) {
  TokenCheck check;
  constexpr std::size_t max_token = 16 * 1024;
  if (token.size() > max_token) {
    check.error = "the token is larger than 16 KiB";
    return check;
  }
  auto decoded = decode_unverified(token);
  if (!decoded) {
    check.error = "malformed token: not a compact JWS (header.payload.signature, base64url JSON)";
    return check;
  }
  const std::string algorithm = string_member(decoded->header, "alg");
  if (algorithm != "RS256" && algorithm != "ES256" && algorithm != "EdDSA") {
    check.error = "algorithm '" + shown(algorithm) + "' is not accepted (RS256, ES256, EdDSA)";
    return check;
  }
  if (decoded->header.contains("crit")) {
    check.error = "the token has critical header parameters this verifier does not understand";
    return check;
  }
  const std::string kid = string_member(decoded->header, "kid");
  const Jwk* key = keys.find(kid, algorithm);
  if (!key) {
    check.error = kid.empty() ? "no unique " + algorithm + " key for a token without 'kid'"
                              : "unknown key id '" + shown(kid) + "'";
    return check;
  }
  const auto last_dot = token.rfind('.');
  const auto signature = base64url_decode(token.substr(last_dot + 1));
  if (!signature || !key->verify(token.substr(0, last_dot), *signature)) {
    check.error = "invalid signature";
    return check;
  }
  check.token = std::move(decoded);
  return check;
}

std::optional<std::int64_t> numeric_date(const Json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  // Converting a double outside the range of int64 is undefined, and a date near its ends would
  // overflow `date + leeway`: no real date is beyond 2^53 s (285 million years) either way.
  constexpr double limit = 9'007'199'254'740'992.0;  // 2^53
  const double seconds = it->get<double>();
  if (seconds >= limit) return static_cast<std::int64_t>(limit);
  if (seconds <= -limit) return -static_cast<std::int64_t>(limit);
  return static_cast<std::int64_t>(seconds);
}

TokenCheck check_claims(DecodedToken token, const ClaimRequirements& requirements,
                        std::int64_t now) {
  TokenCheck check;
  const Json& claims = token.claims;
  const auto number = [&](const char* name) { return numeric_date(claims, name); };
  const std::int64_t leeway = requirements.leeway.count();
  if (!requirements.type.empty() && string_member(token.header, "typ") != requirements.type) {
    check.error = "token type must be '" + requirements.type + "'";
    return check;
  }
  const auto expiry = number("exp");
  if (!expiry && requirements.require_expiry) {
    check.error = "the token has no 'exp'";
    return check;
  }
  if (expiry && now > *expiry + leeway) {
    check.error = "the token expired";
    return check;
  }
  if (const auto not_before = number("nbf"); not_before && now + leeway < *not_before) {
    check.error = "the token is not valid yet ('nbf' is in the future)";
    return check;
  }
  if (const auto issued = number("iat"); issued && now + leeway < *issued) {
    check.error = "the token was issued in the future ('iat')";
    return check;
  }
  if (!requirements.issuer.empty() && string_member(claims, "iss") != requirements.issuer) {
    check.error = "wrong issuer: expected '" + requirements.issuer + "'";
    return check;
  }
  if (!requirements.audiences.empty()) {
    bool found = false;
    if (const auto aud = claims.find("aud"); aud != claims.end()) {
      for (const auto& wanted : requirements.audiences) {
        if (aud->is_string()) found = found || aud->get_ref<const std::string&>() == wanted;
        if (aud->is_array()) {
          for (const auto& entry : *aud)
            found = found || (entry.is_string() && entry.get_ref<const std::string&>() == wanted);
        }
      }
    }
    if (!found) {
      check.error = "wrong audience: the token is not for '" + requirements.audiences.front() + "'";
      return check;
    }
  }
  check.token = std::move(token);
  return check;
}

TokenCheck verify_token(std::string_view token, const KeySet& keys,
                        const ClaimRequirements& requirements, std::int64_t now) {
  TokenCheck signature = verify_signature(token, keys);
  if (!signature) return signature;
  return check_claims(std::move(*signature.token), requirements, now);
}

std::string sign_token(Json header, const Json& claims, const Jwk& key) {
  header["alg"] = key.algorithm();
  if (!key.kid().empty()) header["kid"] = key.kid();
  std::string signing_input = base64url_encode(dump(header)) + "." + base64url_encode(dump(claims));
  const auto signature = key.sign(signing_input);
  if (!signature) throw std::runtime_error("signing failed: the key has no private part");
  return signing_input + "." + base64url_encode(*signature);
}

std::vector<std::string> token_scopes(const Json& claims) {
  std::vector<std::string> scopes;
  if (const auto scope = claims.find("scope"); scope != claims.end() && scope->is_string()) {
    const std::string& text = scope->get_ref<const std::string&>();
    std::size_t start = 0;
    while (start < text.size()) {
      const auto end = text.find(' ', start);
      const std::string piece =
          text.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!piece.empty()) scopes.push_back(piece);
      if (end == std::string::npos) break;
      start = end + 1;
    }
  } else if (const auto scp = claims.find("scp"); scp != claims.end() && scp->is_array()) {
    for (const auto& entry : *scp) {
      if (entry.is_string()) scopes.push_back(entry.get<std::string>());
    }
  }
  return scopes;
}

std::string token_fingerprint(std::string_view token) {
  const auto digest = core::sha256(token);
  return "sha256:" +
         base64url_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), 9));
}

}  // namespace membrane::identity
