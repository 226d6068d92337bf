// The audit filter: one line in the tamper-evident audit log per request: who (identity, client),
// under which transaction, what (method, server, tool, a digest of the arguments, never the
// arguments), what was decided (verdict, rule) and how it ended.
//
// The line is written before the request's final answer goes out (on_answer), so a call the
// client saw answered is in the file even if the gateway is killed the next instant; a request
// that ends without an answer (the client left) gets its line when it is over (on_complete).
#pragma once

#include <memory>

#include "gateway/exchange/filter.hpp"
#include "membrane/audit/audit_log.hpp"

namespace membrane::gateway {

// audit.on_error: what calls do while the audit log cannot be written.
enum class AuditOnError {
  refuse,  // refused (503) until a write succeeds again; an answer whose record failed is withheld
  log,     // go on; the failure is logged (rate-limited), counted and records are held back
};

class AuditFilterFactory final : public FilterFactory {
 public:
  AuditFilterFactory(std::shared_ptr<audit::AuditLog> log, AuditOnError on_error)
      : log_(std::move(log)), on_error_(on_error) {}
  std::string_view name() const override { return "audit"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;

 private:
  std::shared_ptr<audit::AuditLog> log_;
  AuditOnError on_error_;
};

}  // namespace membrane::gateway
