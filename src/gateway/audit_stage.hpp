// The audit stage: one line in the tamper-evident audit log per request, when it is over: who
// (identity, client), under which transaction, what (method, server, tool, a digest of the
// arguments, never the arguments), what was decided (verdict, rule) and how it ended.
#pragma once

#include <memory>

#include "gateway/exchange.hpp"
#include "membrane/audit/audit_log.hpp"

namespace membrane::gateway {

class AuditStage final : public ExchangeStage {
 public:
  explicit AuditStage(std::shared_ptr<audit::AuditLog> log) : log_(std::move(log)) {}
  std::string_view name() const override { return "audit"; }
  void on_complete(const Exchange& exchange) override;

 private:
  std::shared_ptr<audit::AuditLog> log_;
};

}  // namespace membrane::gateway
