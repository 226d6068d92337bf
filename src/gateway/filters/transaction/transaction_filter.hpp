// The transaction filter: every tool call (or, configured per session, every request of a session)
// carries a transaction token to the upstream (TransactionFact). An incoming Txn-Token from a
// trusted service is verified and kept, so its transaction continues; otherwise the gateway's own
// service mints one naming the caller, the call and where it came from. Runs before the policy
// filter, which sees the claims as txn.*.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/exchange/filter.hpp"
#include "membrane/identity/transaction_tokens.hpp"

namespace membrane::gateway {

struct TransactionFilterOptions {
  std::shared_ptr<const identity::TransactionTokenService> service;
  bool per_session = false;  // one transaction per session instead of one per call
  // Argument names whose values the transaction context (tctx) records, e.g. customer_id.
  std::vector<std::string> context_arguments;
};

class TransactionFilterFactory final : public FilterFactory {
 public:
  explicit TransactionFilterFactory(TransactionFilterOptions options)
      : options_(std::move(options)) {}
  std::string_view name() const override { return "transaction"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;

 private:
  TransactionFilterOptions options_;
};

}  // namespace membrane::gateway
