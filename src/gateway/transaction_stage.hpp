// The transaction stage: every tool call (or, configured per session, every request of a session)
// carries a transaction token to the upstream. An incoming Txn-Token from a trusted service is
// verified and kept, so its transaction continues; otherwise the gateway's own service mints one
// naming the caller, the call and where it came from. Runs before the policy stage, which sees
// the claims as txn.*.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/exchange.hpp"
#include "membrane/identity/transaction_tokens.hpp"

namespace membrane::gateway {

struct TransactionStageOptions {
  std::shared_ptr<const identity::TransactionTokenService> service;
  bool per_session = false;  // one transaction per session instead of one per call
  // Argument names whose values the transaction context (tctx) records, e.g. customer_id.
  std::vector<std::string> context_arguments;
};

class TransactionStage final : public ExchangeStage {
 public:
  explicit TransactionStage(TransactionStageOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return "transaction"; }
  StageDecision on_request(Exchange& exchange) override;

 private:
  identity::TransactionRequest describe(const Exchange& exchange) const;
  TransactionStageOptions options_;
};

}  // namespace membrane::gateway
