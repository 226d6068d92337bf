#include "membrane/mcp/sealed_session.hpp"
#include "membrane/core/json.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace membrane::mcp {
namespace {

constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;
constexpr char format_prefix[] = "m1.";
constexpr std::string_view state_prefix = "ms1.";
// Larger ids are refused unopened: a client cannot make the gateway decrypt megabytes.
constexpr std::size_t max_sealed_length = 64 * 1024;

struct CipherContextDeleter {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextDeleter>;

struct KdfDeleter {
  void operator()(EVP_KDF* kdf) const { EVP_KDF_free(kdf); }
};
struct KdfContextDeleter {
  void operator()(EVP_KDF_CTX* context) const { EVP_KDF_CTX_free(context); }
};

std::string associated_data(std::string_view upstream, SessionTransport transport) {
  std::string aad = "membrane-session-v1";
  aad.push_back('\0');
  aad += transport == SessionTransport::legacy_sse ? "sse" : "mcp";
  aad.push_back('\0');
  aad.append(upstream);
  return aad;
}

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

}  // namespace

std::string client_name_of(const nlohmann::json& initialize_params) {
  if (!initialize_params.is_object()) return {};
  const auto info = initialize_params.find("clientInfo");
  if (info == initialize_params.end() || !info->is_object()) return {};
  const auto name = info->find("name");
  if (name == info->end() || !name->is_string()) return {};
  return name->get<std::string>().substr(0, 128);
}

std::string random_bytes(std::size_t count) {
  std::string out(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(count)) != 1) {
    throw std::runtime_error("RAND_bytes failed: the OS random generator is unavailable");
  }
  return out;
}

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  const auto byte = [&](std::size_t at) { return static_cast<unsigned char>(bytes[at]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const unsigned v = byte(i) << 16;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned accumulator = 0;
  int bits = 0;
  for (const char c : text) {
    const auto position = alphabet.find(c);
    if (position == std::string_view::npos) return std::nullopt;
    accumulator = (accumulator << 6) | static_cast<unsigned>(position);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((accumulator >> bits) & 0xff));
    }
  }
  // Non-zero leftover bits mean a non-canonical encoding: two spellings of one id are refused.
  if ((accumulator & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

SessionSealer SessionSealer::from_secret(std::string_view secret) {
  if (secret.size() < 16) {
    throw std::invalid_argument(
        "the session key must be at least 16 bytes (32 random bytes recommended)");
  }
  std::unique_ptr<EVP_KDF, KdfDeleter> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) throw std::runtime_error("OpenSSL has no HKDF implementation");
  std::unique_ptr<EVP_KDF_CTX, KdfContextDeleter> context(EVP_KDF_CTX_new(kdf.get()));
  std::string salt = "membrane";
  std::string info = "session-seal aes-256-gcm v1";
  std::string material(secret);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, material.data(), material.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt.data(), salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  std::array<unsigned char, key_size> key{};
  if (!context || EVP_KDF_derive(context.get(), key.data(), key.size(), params) != 1) {
    throw std::runtime_error("HKDF key derivation failed");
  }
  return SessionSealer(key);
}

SessionSealer SessionSealer::random() {
  std::array<unsigned char, key_size> key{};
  const std::string bytes = random_bytes(key_size);
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return SessionSealer(key);
}

std::string SessionSealer::seal_bytes(std::string_view plaintext, std::string_view aad) const {
  const std::string nonce = random_bytes(nonce_size);
  std::string sealed(nonce_size + plaintext.size() + tag_size, '\0');
  std::copy(nonce.begin(), nonce.end(), sealed.begin());
  auto* out = reinterpret_cast<unsigned char*>(sealed.data()) + nonce_size;

  CipherContext context(EVP_CIPHER_CTX_new());
  int length = 0;
  int total = 0;
  const bool ok = context &&
                  EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key_.data(),
                                     reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
                  EVP_EncryptUpdate(context.get(), nullptr, &length,
                                    reinterpret_cast<const unsigned char*>(aad.data()),
                                    static_cast<int>(aad.size())) == 1 &&
                  EVP_EncryptUpdate(context.get(), out, &length,
                                    reinterpret_cast<const unsigned char*>(plaintext.data()),
                                    static_cast<int>(plaintext.size())) == 1 &&
                  (total = length, EVP_EncryptFinal_ex(context.get(), out + total, &length) == 1) &&
                  EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, tag_size,
                                      out + plaintext.size()) == 1;
  if (!ok) throw std::runtime_error("AES-256-GCM sealing failed");
  return base64url_encode(sealed);
}

std::optional<std::string> SessionSealer::open_bytes(std::string_view sealed_text,
                                                     std::string_view aad) const {
  if (sealed_text.size() > max_sealed_length) return std::nullopt;
  const auto sealed = base64url_decode(sealed_text);
  if (!sealed || sealed->size() < nonce_size + tag_size) return std::nullopt;

  const std::size_t ciphertext_size = sealed->size() - nonce_size - tag_size;
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed->data());
  const auto* ciphertext = nonce + nonce_size;
  std::string tag(sealed->data() + nonce_size + ciphertext_size, tag_size);
  std::string plaintext(ciphertext_size, '\0');

  CipherContext context(EVP_CIPHER_CTX_new());
  int length = 0;
  const bool ok =
      context &&
      EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) == 1 &&
      EVP_DecryptUpdate(context.get(), nullptr, &length,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(context.get(), reinterpret_cast<unsigned char*>(plaintext.data()), &length,
                        ciphertext, static_cast<int>(ciphertext_size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, tag_size, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(
          context.get(), reinterpret_cast<unsigned char*>(plaintext.data()) + length, &length) == 1;
  if (!ok) return std::nullopt;
  return plaintext;
}

std::optional<SessionClaims> claims_from_plaintext(std::string_view plaintext,
                                                   std::string_view upstream) {
  auto payload = json::parse_or_discarded(plaintext);
  if (!payload.is_object()) return std::nullopt;
  SessionClaims claims;
  claims.upstream = std::string(upstream);
  const auto session = payload.find("s");
  const auto created = payload.find("t");
  if (session == payload.end() || !session->is_string() || created == payload.end() ||
      !created->is_number_integer()) {
    return std::nullopt;
  }
  claims.upstream_session = session->get<std::string>();
  claims.created_at = created->get<std::int64_t>();
  if (const auto subject = payload.find("u"); subject != payload.end() && subject->is_string())
    claims.subject = subject->get<std::string>();
  if (const auto name = payload.find("n"); name != payload.end() && name->is_string())
    claims.client_name = name->get<std::string>();
  if (const auto init = payload.find("i"); init != payload.end()) {
    claims.initialize_params = *init;
    if (const auto capabilities = init->find("capabilities");
        init->is_object() && capabilities != init->end()) {
      claims.client_capabilities = *capabilities;
    }
    claims.client_name = client_name_of(*init);
  } else if (const auto capabilities = payload.find("c"); capabilities != payload.end()) {
    claims.client_capabilities = *capabilities;
  }
  if (const auto version = payload.find("v"); version != payload.end() && version->is_string())
    claims.protocol_version = version->get<std::string>();
  return claims;
}

std::string SessionSealer::seal_state(const nlohmann::json& payload,
                                      std::string_view purpose) const {
  std::string aad = "membrane-state-v1";
  aad.push_back('\0');
  aad.append(purpose);
  return std::string(state_prefix) +
         seal_bytes(payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), aad);
}

std::optional<nlohmann::json> SessionSealer::open_state(std::string_view sealed,
                                                        std::string_view purpose) const {
  if (sealed.substr(0, state_prefix.size()) != state_prefix) return std::nullopt;
  std::string aad = "membrane-state-v1";
  aad.push_back('\0');
  aad.append(purpose);
  auto plaintext = open_bytes(sealed.substr(state_prefix.size()), aad);
  if (!plaintext) return std::nullopt;
  auto payload = json::parse_or_discarded(*plaintext);
  if (payload.is_discarded()) return std::nullopt;
  return payload;
}

std::string SessionSealer::seal(const SessionClaims& claims, SessionTransport transport) const {
  nlohmann::json payload = {{"s", claims.upstream_session}, {"t", claims.created_at}};
  if (!claims.subject.empty()) payload["u"] = claims.subject;
  // Inside the initialize params when those are sealed: not twice.
  if (!claims.client_name.empty() && claims.initialize_params.is_null())
    payload["n"] = claims.client_name;
  // The capabilities are inside the initialize params when those are sealed: not twice.
  if (!claims.initialize_params.is_null()) {
    payload["i"] = claims.initialize_params;
  } else if (!claims.client_capabilities.is_null()) {
    payload["c"] = claims.client_capabilities;
  }
  if (!claims.protocol_version.empty()) payload["v"] = claims.protocol_version;
  const std::string plaintext =
      payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return format_prefix + seal_bytes(plaintext, associated_data(claims.upstream, transport));
}

std::optional<SessionClaims> SessionSealer::unseal(std::string_view sealed_text,
                                                   std::string_view upstream,
                                                   SessionTransport transport) const {
  constexpr std::string_view prefix = format_prefix;
  if (sealed_text.substr(0, prefix.size()) != prefix) return std::nullopt;
  const auto opened =
      open_bytes(sealed_text.substr(prefix.size()), associated_data(upstream, transport));
  if (!opened) return std::nullopt;
  return claims_from_plaintext(*opened, upstream);
}

}  // namespace membrane::mcp
