#include "membrane/identity/authenticator.hpp"

#include <algorithm>
#include <unordered_map>

namespace membrane::identity {
namespace {

std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "bearer";
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return {};
  }
  std::string_view token = header.substr(scheme.size() + 1);
  while (!token.empty() && token.front() == ' ')
    token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ')
    token.remove_suffix(1);
  return token;
}

AuthResult refuse(unsigned status, std::string error, std::string description) {
  AuthResult result;
  result.status = status;
  result.error = std::move(error);
  result.description = std::move(description);
  return result;
}

std::shared_ptr<const Identity> identity_from(DecodedToken token, std::string_view raw) {
  auto identity = std::make_shared<Identity>();
  Json& claims = token.claims;
  if (const auto sub = claims.find("sub"); sub != claims.end() && sub->is_string())
    identity->subject = sub->get<std::string>();
  for (const char* key : {"client_id", "azp"}) {
    if (const auto id = claims.find(key);
        identity->client_id.empty() && id != claims.end() && id->is_string())
      identity->client_id = id->get<std::string>();
  }
  if (const auto exp = numeric_date(claims, "exp")) identity->expires_at = *exp;
  identity->scopes = token_scopes(claims);
  identity->token_fingerprint = token_fingerprint(raw);
  identity->claims = std::move(claims);
  return identity;
}

}  // namespace

Authenticator::Authenticator(AuthenticatorOptions options)
    : options_(std::move(options)), keys_(std::make_shared<const KeySet>(options_.keys)) {}

void Authenticator::replace_keys(KeySet keys) const {
  keys_.store(std::make_shared<const KeySet>(std::move(keys)));
}

AuthResult Authenticator::authenticate(std::string_view authorization,
                                       const std::vector<std::string>& upstream_scopes,
                                       std::int64_t now) const {
  if (authorization.empty()) {
    return refuse(401, "", "authorization required: send 'Authorization: Bearer <token>'");
  }
  const std::string_view token = bearer_token(authorization);
  if (token.empty()) {
    return refuse(401, "invalid_request", "the Authorization header must use the Bearer scheme");
  }

  // A session sends the same token with every request: one signature check per token and thread.
  struct Remembered {
    const Authenticator* owner;
    std::shared_ptr<const Identity> identity;
  };
  thread_local std::unordered_map<std::string, Remembered> verified;
  constexpr std::size_t capacity = 4096;
  std::shared_ptr<const Identity> identity;
  if (const auto it = verified.find(std::string(token));
      it != verified.end() && it->second.owner == this) {
    if (now <= it->second.identity->expires_at + options_.leeway.count()) {
      identity = it->second.identity;
    } else {
      verified.erase(it);
    }
  }
  if (!identity) {
    ClaimRequirements requirements;
    requirements.issuer = options_.issuer;
    requirements.audiences = options_.audiences;
    requirements.leeway = options_.leeway;
    const auto keys = keys_.load();
    auto check = verify_token(token, *keys, requirements, now);
    if (!check) {
      auto refused = refuse(401, "invalid_token", check.error);
      refused.unknown_key =
          check.error.starts_with("unknown key id") || check.error.starts_with("no unique");
      return refused;
    }
    identity = identity_from(std::move(*check.token), token);
    if (identity->subject.empty()) return refuse(401, "invalid_token", "the token has no 'sub'");
    if (verified.size() >= capacity) verified.clear();
    verified.emplace(std::string(token), Remembered{this, identity});
  }

  std::string missing;
  for (const auto* list : {&options_.required_scopes, &upstream_scopes}) {
    for (const auto& scope : *list) {
      if (std::find(identity->scopes.begin(), identity->scopes.end(), scope) ==
          identity->scopes.end()) {
        missing += (missing.empty() ? "" : " ") + scope;
      }
    }
  }
  if (!missing.empty()) {
    std::string needed;
    for (const auto* list : {&options_.required_scopes, &upstream_scopes}) {
      for (const auto& scope : *list)
        needed += (needed.empty() ? "" : " ") + scope;
    }
    auto result = refuse(403, "insufficient_scope", "the token lacks the scope(s): " + missing);
    result.scope = std::move(needed);
    return result;
  }
  AuthResult result;
  result.identity = std::move(identity);
  return result;
}

}  // namespace membrane::identity
