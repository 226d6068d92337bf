// Hot reload of the policy: SIGHUP, or a change to any policy file (polled, which also catches
// Kubernetes ConfigMap updates that swap a symlink), recompiles it. A policy that fails to load
// is logged and the previous one keeps serving.
#pragma once

#include <string>
#include <vector>

#include "gateway/filters/policy/policy_filter.hpp"
#include "http/asio.hpp"

namespace membrane::app {

struct PolicySource {
  std::vector<std::string> paths;
  policy::Verdict default_verdict = policy::Verdict::allow;
  bool allow_empty = false;  // policy.allow_empty
  std::string pins;          // policy.pins: reloaded with the rules
};

// Loads and compiles the policy, refusing (PolicyError) a set with no rules and no limits that
// would let every call through, unless the operator allowed it: a policy directory that is empty
// (a mount gone wrong, files deleted) fails closed, at start-up and on reload alike.
std::shared_ptr<const policy::Policy> load_policy(const PolicySource& source);

// Runs until the signal set / timer are cancelled (shutdown). `policy_filter` outlives it.
awaitable<void> reload_policy_on_signal(asio::any_io_executor executor, PolicySource source,
                                        gateway::PolicyFilterFactory& policy_filter,
                                        std::shared_ptr<bool> stopped);
awaitable<void> reload_policy_on_change(PolicySource source,
                                        gateway::PolicyFilterFactory& policy_filter,
                                        std::shared_ptr<bool> stopped);

}  // namespace membrane::app
