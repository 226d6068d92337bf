// The transaction filter: every tool call, and every request of a transaction, carries a
// transaction token to the upstream (TransactionFact). An incoming Txn-Token from a trusted service
// is verified and kept, so its transaction continues. Otherwise the gateway's own service mints
// one, for a whole transaction by default:
//   - a transaction the client declares in params._meta["io.membrane/transaction"] (scoped to
//     the caller, so two callers naming the same id never share one);
//   - else the session's (one per session);
//   - else (a call without a session or a declaration) the call alone.
// The token names the caller, the server and where the transaction came from; a call that
// carries one of the configured context arguments gets a replacement of the transaction's token
// that adds it (the draft lets a replacement add context, never change it). With per_call, every
// call is a transaction of its own whose context names the method and the tool.
//
// Tokens are reused until a fifth of their lifetime is left, across worker threads. Signing
// (and verifying an incoming token the first time) runs on a background thread, never on the
// event loop. Runs before the policy filter, which sees the claims as txn.*.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/exchange/filter.hpp"
#include "membrane/identity/transaction_tokens.hpp"

namespace membrane::gateway {

struct TransactionFilterOptions {
  std::shared_ptr<const identity::TransactionTokenService> service;
  bool per_call = false;  // a transaction per call instead of per declared transaction/session
  // Argument names whose values the transaction context (tctx) records, e.g. customer_id.
  std::vector<std::string> context_arguments;
};

// The `_meta` key by which a client declares which of its transactions a request belongs to.
inline constexpr std::string_view declared_transaction_key = "io.membrane/transaction";

class TransactionTokenCache;

class TransactionFilterFactory final : public FilterFactory {
 public:
  explicit TransactionFilterFactory(TransactionFilterOptions options);
  ~TransactionFilterFactory() override;
  std::string_view name() const override { return "transaction"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;

 private:
  TransactionFilterOptions options_;
  std::shared_ptr<TransactionTokenCache> cache_;
};

}  // namespace membrane::gateway
