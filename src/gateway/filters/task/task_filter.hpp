// The task filter: which MCP task an exchange concerns, so that audit records and spans follow a
// task from the call that created it (its answer names the task) through every tasks/* request
// (their params name it) to its end (the status the answers report). Only in the chain when
// something reads it (audit, tracing).
#pragma once

#include <memory>

#include "gateway/exchange/filter.hpp"

namespace membrane::gateway {

class TaskFilterFactory final : public FilterFactory {
 public:
  std::string_view name() const override { return "task"; }
  // Only tools/call (it may create a task) and tasks/* requests get a filter.
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;
};

}  // namespace membrane::gateway
