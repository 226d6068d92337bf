// The policy filter: judges tools/call, resources/read and prompts/get before they are forwarded,
// and hides from tools/list the tools a deny rule refuses outright. Denials reach the agent as a
// tool result with isError (so the model can adapt) naming the rule; `ask` pauses the call while
// the human is asked through an elicitation, when the client can show one, or an approver at the
// security console (`approver: console`); shadow mode only
// records. It names the rate-limit tokens a call must spend (LimitsFact) and masks results with
// the redact rules (also for telemetry, through PolicyFact::redactor).
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "gateway/console_approvals.hpp"
#include "gateway/exchange/filter.hpp"
#include "gateway/filters/policy/tool_catalog.hpp"
#include "membrane/policy/policy.hpp"

namespace membrane::gateway {

// The calls that became tasks, by caller and task: a task's result (tasks/result, or tasks/get
// in the 2026-07-28 extension) is that call's result, masked by the rules that judged the call.
// Bounded: the oldest entries go first.
class TaskCalls {
 public:
  static constexpr std::size_t capacity = 10'000;
  static constexpr std::size_t max_bytes = 32 * 1024 * 1024;  // the kept calls' text together
  static std::string key(const Exchange& exchange, std::string_view task_id);
  // `size` is the call's text size (what it costs to keep).
  void remember(std::string key, mcp::Json call, std::size_t size);
  std::optional<mcp::Json> find(const std::string& key) const;

 private:
  mutable std::mutex mutex_;
  struct Kept {
    mcp::Json call;
    std::size_t size = 0;
  };
  std::unordered_map<std::string, Kept> calls_;
  std::deque<std::string> order_;
  std::size_t bytes_ = 0;
};

class PolicyFilterFactory final : public FilterFactory {
 public:
  // `catalog`: the tools learnt from listings and their pins (a fresh one when null).
  // `approvals`: where `approver: console` calls wait (null: no console is configured, and such
  // calls are refused unless their user may approve them).
  PolicyFilterFactory(std::shared_ptr<const policy::Policy> policy, bool shadow,
                      std::shared_ptr<ToolCatalog> catalog = nullptr,
                      std::shared_ptr<ConsoleApprovals> approvals = nullptr)
      : policy_(std::move(policy)),
        shadow_(shadow),
        catalog_(catalog ? std::move(catalog) : std::make_shared<ToolCatalog>()),
        approvals_(std::move(approvals)) {}

  std::string_view name() const override { return "policy"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;
  bool wants_request_headers() const override { return policy_.load()->uses_request_headers(); }

  // Hot reload: later exchanges use `next`; those in flight keep the snapshot they started with.
  void replace(std::shared_ptr<const policy::Policy> next) { policy_.store(std::move(next)); }
  std::shared_ptr<const policy::Policy> current() const { return policy_.load(); }
  ToolCatalog& catalog() const { return *catalog_; }

 private:
  std::atomic<std::shared_ptr<const policy::Policy>> policy_;
  bool shadow_;
  std::shared_ptr<TaskCalls> task_calls_ = std::make_shared<TaskCalls>();
  std::shared_ptr<ToolCatalog> catalog_;
  std::shared_ptr<ConsoleApprovals> approvals_;
};

}  // namespace membrane::gateway
