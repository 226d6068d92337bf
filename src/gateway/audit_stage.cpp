#include "gateway/audit_stage.hpp"

#include "gateway/responses.hpp"

#include <chrono>
#include <ctime>

namespace membrane::gateway {
namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return text;
}

}  // namespace

StageDecision AuditStage::on_request(Exchange& exchange) {
  const mcp::Message* message = exchange.message;
  if (on_error_ != AuditOnError::refuse || !message || !message->is_request())
    return StageDecision::proceed();
  if (log_->writable() || log_->retry()) return StageDecision::proceed();
  // Nothing happened that needs a record: the call is counted in the outage's gap record.
  exchange.audit_recorded = true;
  log_->count_refused();
  return StageDecision::answer(
      503, mcp::make_error_response(
               message->id(), mcp::error_code::internal_error,
               "the audit trail is unavailable (" + log_->problem() +
                   "): calls are refused until it can be written again (audit.on_error: refuse)"));
}

std::string AuditStage::on_answer(Exchange& exchange) {
  const mcp::Message* message = exchange.message;
  if (!message || !message->is_request() || exchange.audit_recorded) return {};
  exchange.audit_recorded = true;
  const bool refuse = on_error_ == AuditOnError::refuse;
  // Held back for later, the record says that the client never got the answer.
  static const audit::Json withheld = {{"answer_withheld", true}};
  if (log_->append(record_of(exchange), refuse ? withheld : audit::Json())) return {};
  if (!refuse) return {};
  exchange.outcome = Outcome::answer_withheld;
  return "the audit trail is unavailable (" + log_->problem() +
         "): the upstream's answer is withheld because its audit record could not be written "
         "(audit.on_error: refuse)";
}

void AuditStage::on_complete(const Exchange& exchange) {
  const mcp::Message* message = exchange.message;
  if (!message || !message->is_request() || exchange.audit_recorded) return;
  log_->append(record_of(exchange));
}

audit::Json AuditStage::record_of(const Exchange& exchange) const {
  const mcp::Message* message = exchange.message;
  audit::Json record = {{"time", utc_now()}};
  record["identity"] = exchange.identity ? audit::Json(exchange.identity->subject) : audit::Json();
  const auto txn =
      exchange.txn_claims.is_object() ? exchange.txn_claims.find("txn") : exchange.txn_claims.end();
  record["txn"] =
      exchange.txn_claims.is_object() && txn != exchange.txn_claims.end() ? *txn : audit::Json();
  // The session, not its id: the sealed id is a credential-like capability.
  record["session"] =
      exchange.session_id.empty() ? audit::Json() : audit::Json(hex_digest(exchange.session_id, 8));
  record["client"] = exchange.client_address;
  record["method"] = message->method();
  record["server"] = exchange.upstream;
  // The MCP revision of each hop: they differ when the gateway bridges.
  record["protocol"] =
      exchange.protocol_version.empty() ? audit::Json() : audit::Json(exchange.protocol_version);
  record["upstream_protocol"] = exchange.upstream_protocol_version.empty()
                                    ? audit::Json()
                                    : audit::Json(exchange.upstream_protocol_version);
  if (const auto target = message->target_name(); !target.empty()) record["tool"] = target;
  record["request_id"] = message->id();
  if (const auto* params = message->params()) {
    if (const auto arguments = params->find("arguments"); arguments != params->end()) {
      record["args_sha256"] =
          hex_digest(arguments->dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
    }
  }
  const auto& policy = exchange.policy;
  if (!policy.verdict.empty()) {
    record["verdict"] = policy.verdict;
    record["rules"] = {policy.rule};
  } else {
    // Judged and nothing objected, or not a judged method at all.
    const std::string_view method = message->method();
    const bool judged =
        method == "tools/call" || method == "resources/read" || method == "prompts/get";
    record["verdict"] = exchange.policy_snapshot && judged ? audit::Json("allow") : audit::Json();
  }
  if (const std::string notes = policy.notes(); !notes.empty()) record["policy_note"] = notes;
  if (policy.hidden_tools) record["hidden_tools"] = policy.hidden_tools;
  record["status"] = exchange.http_status;
  record["outcome"] = to_string(exchange.outcome);
  record["latency_us"] =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - exchange.started)
          .count();
  return record;
}

}  // namespace membrane::gateway
