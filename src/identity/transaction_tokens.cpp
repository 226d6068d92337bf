#include "membrane/identity/transaction_tokens.hpp"
#include "membrane/core/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "membrane/mcp/sealed_session.hpp"

namespace membrane::identity {
namespace {

constexpr std::string_view token_type = "txntoken+jwt";

void write_private_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::runtime_error("cannot create the transaction-token key file '" + path +
                             "': " + std::strerror(errno));
  }
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write the transaction-token key file '" + path + "'");
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  ::close(fd);
}

}  // namespace

std::string new_transaction_id() {
  return mcp::base64url_encode(mcp::random_bytes(16));
}

TransactionTokenService::TransactionTokenService(TransactionTokenOptions options)
    : options_(std::move(options)) {
  if (options_.signing_keys.empty() || !options_.signing_keys.front().has_private_key())
    throw std::invalid_argument("the transaction-token service needs a private signing key");
  std::vector<Jwk> verification = options_.signing_keys;
  verification.insert(verification.end(), options_.trusted.keys().begin(),
                      options_.trusted.keys().end());
  verification_keys_ = KeySet(std::move(verification));
}

std::vector<Jwk> TransactionTokenService::load_or_create_keys(const std::string& key_file) {
  std::error_code ignored;
  if (!std::filesystem::exists(key_file, ignored)) {
    Jwk key = Jwk::generate_es256("txn-" + new_transaction_id().substr(0, 8));
    const Json document = {{"keys", {key.private_json()}}};
    write_private_file(key_file, document.dump(2) + "\n");
    return {key};
  }
  std::ifstream in(key_file, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot read the transaction-token key file '" + key_file + "'");
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Json document = json::parse_or_discarded(text);
  std::vector<Json> entries;
  if (document.is_object() && document.contains("keys") && document["keys"].is_array()) {
    entries.assign(document["keys"].begin(), document["keys"].end());
  } else if (document.is_object()) {
    entries.push_back(document);
  } else {
    throw std::runtime_error("transaction-token key file '" + key_file +
                             "': not JSON (a private JWK, or a JWKS whose first key signs)");
  }
  std::vector<Jwk> keys;
  for (std::size_t index = 0; index < entries.size(); ++index) {
    std::string error;
    auto key = Jwk::from_json(entries[index], error);
    if (!key) {
      throw std::runtime_error("transaction-token key file '" + key_file + "': key " +
                               std::to_string(index) + ": " + error);
    }
    if (key->kid().empty()) {
      throw std::runtime_error("transaction-token key file '" + key_file + "': key " +
                               std::to_string(index) + " has no 'kid' (receivers select by kid)");
    }
    keys.push_back(std::move(*key));
  }
  if (keys.empty() || !keys.front().has_private_key() || keys.front().algorithm() != "ES256") {
    throw std::runtime_error("transaction-token key file '" + key_file +
                             "': the first key must be a private P-256 (ES256) key");
  }
  return keys;
}

IssuedTransactionToken TransactionTokenService::issue(const TransactionRequest& request,
                                                      std::int64_t now) const {
  IssuedTransactionToken issued;
  issued.claims = {
      {"txn", request.txn.empty() ? new_transaction_id() : request.txn},
      {"sub", request.subject},
      {"aud", options_.trust_domain},
      {"iat", now},
      {"exp", request.expires_at > 0 ? std::min(now + options_.lifetime.count(), request.expires_at)
                                     : now + options_.lifetime.count()},
      {"scope", request.scope},
      {"req_wl", options_.workload}};
  if (!options_.issuer.empty()) issued.claims["iss"] = options_.issuer;
  if (request.context.is_object()) issued.claims["tctx"] = request.context;
  if (request.requester.is_object()) issued.claims["rctx"] = request.requester;
  issued.token =
      sign_token({{"typ", std::string(token_type)}}, issued.claims, options_.signing_keys.front());
  return issued;
}

TokenCheck TransactionTokenService::verify(std::string_view token, std::int64_t now) const {
  ClaimRequirements requirements;
  requirements.audiences = {options_.trust_domain};
  requirements.type = std::string(token_type);
  requirements.leeway = std::chrono::seconds(30);
  auto check = verify_token(token, verification_keys_, requirements, now);
  if (!check) return check;
  const Json& claims = check.token->claims;
  for (const char* required : {"txn", "sub"}) {
    const auto it = claims.find(required);
    if (it == claims.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
      TokenCheck missing;
      missing.error = std::string("the transaction token has no '") + required + "'";
      return missing;
    }
  }
  return check;
}

Json TransactionTokenService::public_jwks() const {
  return KeySet(options_.signing_keys).to_public_json();
}

}  // namespace membrane::identity
