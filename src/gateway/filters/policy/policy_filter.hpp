// The policy filter: judges tools/call, resources/read and prompts/get before they are forwarded,
// and hides from tools/list the tools a deny rule refuses outright. Denials reach the agent as a
// tool result with isError (so the model can adapt) naming the rule; `ask` pauses the call while
// the human is asked through an elicitation, when the client can show one; shadow mode only
// records. It names the rate-limit tokens a call must spend (LimitsFact) and masks results with
// the redact rules (also for telemetry, through PolicyFact::redactor).
#pragma once

#include <atomic>
#include <memory>

#include "gateway/exchange/filter.hpp"
#include "membrane/policy/policy.hpp"

namespace membrane::gateway {

class PolicyFilterFactory final : public FilterFactory {
 public:
  PolicyFilterFactory(std::shared_ptr<const policy::Policy> policy, bool shadow)
      : policy_(std::move(policy)), shadow_(shadow) {}

  std::string_view name() const override { return "policy"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;
  bool wants_request_headers() const override { return policy_.load()->uses_request_headers(); }

  // Hot reload: later exchanges use `next`; those in flight keep the snapshot they started with.
  void replace(std::shared_ptr<const policy::Policy> next) { policy_.store(std::move(next)); }
  std::shared_ptr<const policy::Policy> current() const { return policy_.load(); }

 private:
  std::atomic<std::shared_ptr<const policy::Policy>> policy_;
  bool shadow_;
};

}  // namespace membrane::gateway
