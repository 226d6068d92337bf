// The Transaction Token Service inside the gateway (draft-ietf-oauth-transaction-tokens-10):
// short-lived ES256 JWTs, `typ: txntoken+jwt`, that carry who acts (`sub`), in which
// transaction (`txn`), for what (`tctx`) and from where (`rctx`) to every workload of the trust
// domain. Incoming tokens from trusted issuers are verified and kept, so a transaction started
// upstream of the agent continues through the gateway.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/identity/jwt.hpp"

namespace membrane::identity {

struct TransactionTokenOptions {
  std::string trust_domain;           // `aud` of every token; incoming tokens must carry it too
  std::string workload = "membrane";  // `req_wl`
  std::string issuer;                 // `iss` (optional)
  std::chrono::seconds lifetime{300};
  // Signing keys: the first signs, all are published (rotation keeps the old key verifiable).
  std::vector<Jwk> signing_keys;
  // Keys of other Transaction Token Services whose tokens are accepted (and kept) as they come.
  KeySet trusted;
};

// What one transaction is about.
struct TransactionRequest {
  std::string txn;              // continue this transaction id; empty = a new one
  std::string subject;          // `sub`
  std::string scope;            // `scope`
  Json context;                 // `tctx`
  Json requester;               // `rctx`
  std::int64_t expires_at = 0;  // when set, `exp` is no later than this
};

struct IssuedTransactionToken {
  std::string token;
  Json claims;
};

class TransactionTokenService {
 public:
  explicit TransactionTokenService(TransactionTokenOptions options);

  // Reads the key file (a private JWK, or a JWKS whose first key signs), or creates it with a
  // fresh P-256 key (mode 0600) when it does not exist. Throws std::runtime_error naming the
  // file on any problem.
  static std::vector<Jwk> load_or_create_keys(const std::string& key_file);

  IssuedTransactionToken issue(const TransactionRequest& request, std::int64_t now) const;

  // An incoming Txn-Token: signed by a trusted service or by this one, for this trust domain,
  // `typ: txntoken+jwt`, not expired, with `txn` and `sub`.
  TokenCheck verify(std::string_view token, std::int64_t now) const;

  // The public signing keys, for /.well-known/jwks.json.
  Json public_jwks() const;
  const TransactionTokenOptions& options() const { return options_; }

 private:
  TransactionTokenOptions options_;
  KeySet verification_keys_;  // own keys and trusted ones
};

// A fresh transaction id: 128 random bits, base64url.
std::string new_transaction_id();

}  // namespace membrane::identity
