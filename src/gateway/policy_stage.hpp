// The policy stage: judges tools/call, resources/read and prompts/get before they are forwarded,
// and hides from tools/list the tools a deny rule refuses outright. Denials reach the agent as a
// tool result with isError (so the model can adapt) naming the rule; `ask` asks the human through
// an elicitation when the client can show one; rate limits spend tokens only for calls that would
// be forwarded; shadow mode only records.
#pragma once

#include <atomic>
#include <memory>

#include "gateway/exchange.hpp"
#include "membrane/policy/policy.hpp"

namespace membrane::gateway {

// Masks what the policy's redact rules mask in results, in `value` (a copy of arguments or a
// result bound for telemetry). No policy: nothing is masked.
void redact_for_telemetry(const Exchange& exchange, mcp::Json& value);

class PolicyStage final : public ExchangeStage {
 public:
  // When the rate-limit store cannot answer (Redis unreachable): forward the call (fail open,
  // the default) or refuse it.
  enum class LimitStoreDown { allow, deny };

  PolicyStage(std::shared_ptr<const policy::Policy> policy, bool shadow,
              LimitStoreDown when_store_down = LimitStoreDown::allow)
      : policy_(std::move(policy)), shadow_(shadow), when_store_down_(when_store_down) {}

  std::string_view name() const override { return "policy"; }
  StageDecision on_request(Exchange& exchange) override;
  // The human's answer to an `ask` verdict: forward on accept, refuse otherwise.
  StageDecision on_confirmation(Exchange& exchange, const Confirmation& confirmation) override;
  StageDecision on_limits(Exchange& exchange, const LimitOutcome& outcome) override;
  bool wants_messages() const override { return true; }
  bool wants_request_headers() const override { return policy_.load()->uses_request_headers(); }
  void on_upstream_message(Exchange& exchange, std::string& message) override;

  // Hot reload: later exchanges use `next`; those in flight keep the snapshot they started with.
  void replace(std::shared_ptr<const policy::Policy> next) { policy_.store(std::move(next)); }
  std::shared_ptr<const policy::Policy> current() const { return policy_.load(); }

 private:
  void filter_tool_list(Exchange& exchange, std::string& message) const;
  // The call goes on, after spending a token from each rate limit that applies to it.
  StageDecision charge_limits_or_proceed(Exchange& exchange) const;

  // At most one report per interval, from any worker thread.
  class Every {
   public:
    explicit Every(Clock::duration interval) : interval_(interval) {}
    bool ready(Clock::time_point now) {
      auto due = next_.load(std::memory_order_relaxed);
      return now.time_since_epoch().count() >= due &&
             next_.compare_exchange_strong(due, (now + interval_).time_since_epoch().count(),
                                           std::memory_order_relaxed);
    }

   private:
    Clock::duration interval_;
    std::atomic<Clock::rep> next_{0};
  };

  std::atomic<std::shared_ptr<const policy::Policy>> policy_;
  bool shadow_;
  LimitStoreDown when_store_down_;
  Every store_down_log_{std::chrono::seconds(10)};
  std::atomic<std::uint64_t> store_down_calls_{0};
};

}  // namespace membrane::gateway
