// The gateway as an OAuth 2.1 resource server (MCP authorization): every request to an MCP
// endpoint carries `Authorization: Bearer <JWT>` from the configured issuer, for the gateway's
// audience (RFC 8707), with the scopes the upstream requires. The token is checked here and never
// travels further: upstreams get the caller's identity, not its credentials.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/identity/jwt.hpp"

namespace membrane::identity {

// Who is calling, once their token checked out.
struct Identity {
  std::string subject;                // `sub`
  Json claims;                        // every claim of the token (identity.claims.*)
  std::vector<std::string> scopes;    // `scope` / `scp`
  std::string client_id;              // `client_id` or `azp`, when present
  std::string method = "bearer-jwt";  // how the caller authenticated (for rctx)
  std::string token_fingerprint;      // for logs; never the token
  std::int64_t expires_at = 0;
};

struct AuthenticatorOptions {
  std::string issuer;
  std::vector<std::string> audiences;
  KeySet keys;
  std::chrono::seconds leeway{60};
  std::vector<std::string> required_scopes;  // for every upstream
};

// Why a request was refused, in the shape of RFC 6750 §3: 401 invalid_token (or no token), 403
// insufficient_scope.
struct AuthResult {
  std::shared_ptr<const Identity> identity;  // set when the request may proceed
  unsigned status = 0;                       // 401 or 403 when refused
  std::string error;                         // "" (no token), invalid_token, insufficient_scope
  std::string description;
  std::string scope;         // insufficient_scope: the scopes needed, space-separated
  bool unknown_key = false;  // the token names a key the current key set lacks (rotation?)
  explicit operator bool() const { return identity != nullptr; }
};

class Authenticator {
 public:
  explicit Authenticator(AuthenticatorOptions options);

  // Checks an Authorization header value at `now` (unix seconds). `upstream_scopes` are required
  // on top of the global ones. Verified tokens are remembered per thread until they expire, so a
  // session's requests pay for one signature check.
  AuthResult authenticate(std::string_view authorization,
                          const std::vector<std::string>& upstream_scopes, std::int64_t now) const;

  const AuthenticatorOptions& options() const { return options_; }

  // Installs a newer key set (a JWKS fetched again); requests after it use the new keys.
  void replace_keys(KeySet keys) const;

 private:
  AuthenticatorOptions options_;  // options_.keys is the initial set
  mutable std::atomic<std::shared_ptr<const KeySet>> keys_;
};

}  // namespace membrane::identity
