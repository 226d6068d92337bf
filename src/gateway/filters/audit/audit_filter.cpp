#include "gateway/filters/audit/audit_filter.hpp"

#include "gateway/responses.hpp"
#include "http/background.hpp"

#include <chrono>
#include <ctime>

namespace membrane::gateway {
namespace {

audit::PendingRecord record_of(const Exchange& exchange);

class AuditFilter final : public Filter {
 public:
  AuditFilter(audit::AuditLog& log, AuditOnError on_error) : log_(log), on_error_(on_error) {}
  FilterStep on_request(Exchange& exchange) override;
  bool gates_answer() const override { return !recorded_; }
  awaitable<std::string> on_answer(Exchange& exchange) override;
  void on_complete(const Exchange& exchange) override;

 private:
  audit::AuditLog& log_;
  AuditOnError on_error_;
  // The record is written (or deliberately not): on_complete leaves it.
  bool recorded_ = false;
};

}  // namespace

std::unique_ptr<Filter> AuditFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message || !exchange.message->is_request()) return nullptr;
  return std::make_unique<AuditFilter>(*log_, on_error_);
}

FilterStep AuditFilter::on_request(Exchange& exchange) {
  const mcp::Message* message = exchange.message;
  if (on_error_ != AuditOnError::refuse) return FilterStep::proceed();
  if (log_.writable() || log_.retry()) return FilterStep::proceed();
  // Nothing happened that needs a record: the call is counted in the outage's gap record.
  recorded_ = true;
  log_.count_refused();
  return FilterStep::answer(
      503, mcp::make_error_response(
               message->id(), mcp::error_code::internal_error,
               "the audit trail is unavailable (" + log_.problem() +
                   "): calls are refused until it can be written again (audit.on_error: refuse)"));
}

awaitable<std::string> AuditFilter::on_answer(Exchange& exchange) {
  if (recorded_) co_return std::string();
  recorded_ = true;
  const bool refuse = on_error_ == AuditOnError::refuse;
  // Held back for later, the record says that the client never got the answer.
  auto pending = record_of(exchange);
  if (refuse) pending.if_held_back = {{"answer_withheld", true}};
  // The answer waits for the writer thread to have written the line (group commit).
  auto hand_over = [this, &pending](std::function<void(bool)> done) {
    pending.done = std::move(done);
    log_.submit(std::move(pending));
  };
  const bool written = co_await http::await_report<bool>(std::move(hand_over));
  if (written || !refuse) co_return std::string();
  exchange.outcome = Outcome::answer_withheld;
  co_return "the audit trail is unavailable (" + log_.problem() +
      "): the upstream's answer is withheld because its audit record could not be written "
      "(audit.on_error: refuse)";
}

void AuditFilter::on_complete(const Exchange& exchange) {
  if (recorded_) return;
  log_.submit(record_of(exchange));
}

namespace {

// What the worker does for a record: copy out what the exchange says. Formatting the time,
// hashing the arguments, chaining and writing are the writer thread's.
audit::PendingRecord record_of(const Exchange& exchange) {
  using audit::Field;
  const mcp::Message* message = exchange.message;
  const auto text_or_null = [](std::string_view key, std::string_view text) {
    return text.empty() ? Field(key, nullptr) : Field(key, text);
  };
  audit::PendingRecord pending;
  auto& fields = pending.fields;
  // A tools/call's record has 15 to 17 fields; the rare one with more grows the vector once. Room
  // for 18 is 1008 bytes, which glibc serves from its per-thread cache (up to 1032); room for 28
  // (1568 bytes) took malloc's slow path on every call.
  fields.reserve(18);
  fields.emplace_back(exchange.identity ? Field("identity", exchange.identity->subject)
                                        : Field("identity", nullptr));
  fields.push_back(text_or_null("txn", exchange.txn.id()));
  // The session, not its id (the sealed id is a credential-like capability): the writer writes a
  // digest of it.
  if (exchange.session_id.empty()) fields.emplace_back("session", nullptr);
  pending.session_id = std::string(exchange.session_id);
  fields.emplace_back("client", exchange.client_address);
  fields.emplace_back("method", message->method());
  fields.emplace_back("server", exchange.upstream);
  // The MCP revision of each hop: they differ when the gateway bridges.
  fields.push_back(text_or_null("protocol", exchange.protocol_version));
  fields.push_back(text_or_null("upstream_protocol", exchange.upstream_protocol_version));
  if (const auto target = target_name(exchange); !target.empty())
    fields.emplace_back("tool", target);
  if (!exchange.route.virtual_server.empty()) {
    fields.emplace_back("virtual_server", exchange.route.virtual_server);
    if (!exchange.route.published_name.empty())
      fields.emplace_back("published_name", exchange.route.published_name);
  }
  fields.emplace_back("request_id", message->id());
  if (!exchange.task.id.empty()) fields.emplace_back("task", exchange.task.id);
  if (!exchange.task.status.empty()) fields.emplace_back("task_status", exchange.task.status);
  if (const auto* params = message->params()) {
    if (const auto arguments = params->find("arguments"); arguments != params->end())
      pending.arguments = *arguments;
  }
  const auto& policy = exchange.policy;
  if (!policy.verdict.empty()) {
    fields.emplace_back("verdict", policy.verdict);
    fields.emplace_back("rules", audit::Json::array({policy.rule}));
  } else {
    // Judged and nothing objected, or not judged at all.
    fields.emplace_back(policy.judged ? Field("verdict", "allow") : Field("verdict", nullptr));
  }
  if (std::string notes = policy.notes(); !notes.empty())
    fields.emplace_back("policy_note", std::move(notes));
  if (!policy.approval_by.empty()) fields.emplace_back("approval_by", policy.approval_by);
  if (!policy.approver.empty()) fields.emplace_back("approver", policy.approver);
  if (!policy.approval_reason.empty())
    fields.emplace_back("approval_reason", policy.approval_reason);
  if (!exchange.trace.trace_id.empty()) fields.emplace_back("trace_id", exchange.trace.trace_id);
  if (policy.hidden_tools)
    fields.emplace_back("hidden_tools", static_cast<std::uint64_t>(policy.hidden_tools));
  fields.emplace_back("status", static_cast<std::int64_t>(exchange.http_status));
  fields.emplace_back("outcome", to_string(exchange.outcome));
  fields.emplace_back(
      "latency_us", static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                  Clock::now() - exchange.started)
                                                  .count()));
  return pending;
}

}  // namespace

}  // namespace membrane::gateway
