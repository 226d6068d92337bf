#include "membrane/core/sha256.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <stdexcept>

namespace membrane::core {
namespace {

const EVP_MD* sha256_algorithm() {
  static const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> algorithm(
      EVP_MD_fetch(nullptr, "SHA256", nullptr), &EVP_MD_free);
  if (!algorithm) throw std::runtime_error("OpenSSL has no SHA-256");
  return algorithm.get();
}

EVP_MD_CTX* thread_context() {
  thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(
      EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!context) throw std::bad_alloc();
  return context.get();
}

}  // namespace

Sha256Digest sha256(std::string_view text) {
  Sha256Digest digest{};
  EVP_MD_CTX* context = thread_context();
  unsigned int length = 0;
  if (EVP_DigestInit_ex2(context, sha256_algorithm(), nullptr) != 1 ||
      EVP_DigestUpdate(context, text.data(), text.size()) != 1 ||
      EVP_DigestFinal_ex(context, digest.data(), &length) != 1 || length != digest.size()) {
    throw std::runtime_error("SHA-256 failed");
  }
  return digest;
}

void sha256_hex_into(std::string& hex, std::string_view text, std::size_t bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  const Sha256Digest digest = sha256(text);
  bytes = std::min(bytes, digest.size());
  hex.resize(2 * bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 15];
  }
}

std::string sha256_hex(std::string_view text, std::size_t bytes) {
  std::string hex;
  sha256_hex_into(hex, text, bytes);
  return hex;
}

std::string session_digest(std::string_view session_id) {
  constexpr std::size_t digest_bytes = 8;
  // Longer ids are hashed each time: the memo's memory stays small and fixed.
  constexpr std::size_t longest_remembered = 1024;
  struct Remembered {
    bool valid = false;
    std::string session_id;
    std::string digest;
  };
  thread_local std::array<Remembered, 16> memo;
  if (session_id.size() > longest_remembered) return sha256_hex(session_id, digest_bytes);
  auto& slot = memo[std::hash<std::string_view>{}(session_id) % memo.size()];
  if (!slot.valid || slot.session_id != session_id) {
    slot.valid = false;  // until both halves are this session's
    sha256_hex_into(slot.digest, session_id, digest_bytes);
    slot.session_id.assign(session_id);
    slot.valid = true;
  }
  return slot.digest;
}

}  // namespace membrane::core
