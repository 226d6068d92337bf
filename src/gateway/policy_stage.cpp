#include "gateway/policy_stage.hpp"
#include "membrane/core/json.hpp"

#include "gateway/client_requests.hpp"
#include "gateway/responses.hpp"
#include "membrane/core/log.hpp"

namespace membrane::gateway {
namespace {

// Policy errors for methods without a tool result shape (resources/read, prompts/get).
constexpr int denied_by_policy = -32003;

// Who is calling, from where, on which session: the same for calls and listings.
void describe_caller(const Exchange& exchange, policy::CallContext& call) {
  call.client_address = exchange.client_address;
  call.protocol_version = exchange.protocol_version;
  call.session_id = exchange.session_id;
  if (exchange.request_headers.is_object()) call.request_headers = &exchange.request_headers;
  if (exchange.identity) {
    call.identity_subject = exchange.identity->subject;
    call.identity_claims = &exchange.identity->claims;
  }
  if (exchange.txn_claims.is_object()) call.txn = &exchange.txn_claims;
}

policy::CallContext call_context(const Exchange& exchange) {
  const mcp::Message& message = *exchange.message;
  policy::CallContext call;
  call.method = message.method();
  call.server = exchange.upstream;
  call.tool = message.target_name();
  if (const auto* params = message.params()) {
    if (call.method == "resources/read") {
      call.arguments = params;  // args.uri
    } else if (const auto arguments = params->find("arguments"); arguments != params->end()) {
      call.arguments = &*arguments;
    }
  }
  describe_caller(exchange, call);
  return call;
}

std::string why(const policy::RuleInfo* rule) {
  if (!rule) return {};
  return rule->message.empty() ? rule->description : rule->message;
}

std::string rule_name(const policy::RuleInfo* rule) {
  return rule ? rule->id : std::string("(default)");
}

// "policy rule 'x': message", or the default verdict when no rule decided.
std::string decided_by(const policy::RuleInfo* rule) {
  if (!rule) return "the policy's default verdict (no rule allows this call)";
  const std::string reason = why(rule);
  return "policy rule '" + rule->id + "'" + (reason.empty() ? "" : ": " + reason);
}

std::string dump(const mcp::Json& json) {
  return json.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

// A call the gateway answers itself: a tool result with isError for tools/call (the model reads
// it and can adapt), a JSON-RPC error for resources/read and prompts/get.
StageDecision refuse(const Exchange& exchange, const std::string& text, mcp::Json policy_meta) {
  mcp::Json response = {{"jsonrpc", "2.0"}, {"id", exchange.message->id()}};
  if (exchange.message->method() == "tools/call") {
    response["result"] = {{"content", {{{"type", "text"}, {"text", text}}}},
                          {"isError", true},
                          {"_meta", {{"io.membrane/policy", std::move(policy_meta)}}}};
  } else {
    response["error"] = {
        {"code", denied_by_policy}, {"message", text}, {"data", std::move(policy_meta)}};
  }
  return StageDecision::answer(200, dump(response));
}

// The elicitation the human sees: what would run, where, and which rule asks.
mcp::Json approval_request(const Exchange& exchange, const policy::RuleInfo* rule) {
  const mcp::Message& message = *exchange.message;
  const std::string_view method = message.method();
  std::string text = "Allow this call? " + decided_by(rule) + "\n\nServer: " + exchange.upstream;
  const std::string target(message.target_name());
  if (method == "tools/call") {
    text += "\nTool: " + target;
    if (const auto* params = message.params()) {
      if (const auto arguments = params->find("arguments"); arguments != params->end()) {
        constexpr std::size_t shown = 2000;
        std::string rendered = arguments->dump(2, ' ', false, mcp::Json::error_handler_t::replace);
        if (rendered.size() > shown) rendered = rendered.substr(0, shown) + "\n…";
        text += "\nArguments: " + rendered;
      }
    }
  } else if (method == "resources/read") {
    text += "\nRead resource: " + target;
  } else {
    text += "\nGet prompt: " + target;
  }
  // Accept or decline is the whole answer: the form asks for nothing more.
  return {{"message", std::move(text)},
          {"requestedSchema", {{"type", "object"}, {"properties", mcp::Json::object()}}}};
}

bool client_can_be_asked(const Exchange& exchange) {
  return exchange.session && can_elicit_form(exchange.session->client_capabilities);
}

// A reply the policy must look into (to mask secrets, to hide tools) but cannot read is not
// passed on unexamined: the client gets an error for its request instead.
void withhold_uninspectable(Exchange& exchange, std::string& message, const std::string& reason) {
  log::warn("policy: withheld a reply from upstream '", exchange.upstream, "' to ",
            exchange.message->method(), ": it cannot be inspected (", reason, ")");
  exchange.policy.note = "withheld";
  message = mcp::make_error_response(exchange.message->id(), mcp::error_code::internal_error,
                                     "upstream '" + exchange.upstream +
                                         "' sent a reply the gateway cannot inspect (" + reason +
                                         "); it was withheld");
}

}  // namespace

void redact_for_telemetry(const Exchange& exchange, mcp::Json& value) {
  if (!exchange.policy_snapshot || !exchange.message || !exchange.policy_snapshot->has_redactions())
    return;
  exchange.policy_snapshot->redact(call_context(exchange), value);
}

StageDecision PolicyStage::on_request(Exchange& exchange) {
  if (!exchange.message || !exchange.message->is_request()) return StageDecision::proceed();
  const std::string_view method = exchange.message->method();
  const bool judged =
      method == "tools/call" || method == "resources/read" || method == "prompts/get";
  // Only the exchanges this stage judges or filters pin a snapshot (tools/list for its reply).
  if (!judged && method != "tools/list") return StageDecision::proceed();
  exchange.policy_snapshot = policy_.load();
  if (!judged) return StageDecision::proceed();
  const policy::Policy& policy = *exchange.policy_snapshot;
  const auto decision = policy.decide(call_context(exchange));
  exchange.policy_rule = decision.rule;
  if (decision.rule || decision.verdict != policy::Verdict::allow) {
    exchange.policy.verdict = to_string(decision.verdict);
    exchange.policy.rule = rule_name(decision.rule);
  }
  if (decision.verdict != policy::Verdict::deny && decision.verdict != policy::Verdict::ask) {
    return charge_limits_or_proceed(exchange);
  }
  const std::string rule_id = rule_name(decision.rule);
  if (shadow_) {
    log::info("policy (shadow): would ", to_string(decision.verdict), " ", method, " ",
              exchange.message->target_name(), " on '", exchange.upstream, "' by rule '", rule_id,
              "'");
    exchange.policy.note = "shadow";
    return charge_limits_or_proceed(exchange);
  }
  if (decision.verdict == policy::Verdict::ask && client_can_be_asked(exchange)) {
    log::info("policy: asking the user to approve ", method, " ", exchange.message->target_name(),
              " on '", exchange.upstream, "' (rule '", rule_id, "')");
    return StageDecision::confirm(approval_request(exchange, decision.rule));
  }
  log::info("policy: ", to_string(decision.verdict), " ", method, " ",
            exchange.message->target_name(), " on '", exchange.upstream, "' by rule '", rule_id,
            "'");
  mcp::Json policy_meta = {{"rule", rule_id}, {"verdict", to_string(decision.verdict)}};
  if (decision.verdict == policy::Verdict::ask) {
    policy_meta["approval"] = "unavailable";
    return refuse(exchange,
                  "Human approval is required by " + decided_by(decision.rule) +
                      ". This client cannot show approval requests (it did not declare the "
                      "elicitation capability), so the call was not forwarded.",
                  std::move(policy_meta));
  }
  return refuse(exchange, "Denied by " + decided_by(decision.rule), std::move(policy_meta));
}

StageDecision PolicyStage::on_confirmation(Exchange& exchange, const Confirmation& confirmation) {
  using Outcome = Confirmation::Outcome;
  const std::string rule_id = rule_name(exchange.policy_rule);
  const std::string_view outcome = confirmation.outcome == Outcome::accepted      ? "approved"
                                   : confirmation.outcome == Outcome::declined    ? "declined"
                                   : confirmation.outcome == Outcome::cancelled   ? "cancelled"
                                   : confirmation.outcome == Outcome::timed_out   ? "timed_out"
                                   : confirmation.outcome == Outcome::client_gone ? "client_gone"
                                                                                  : "failed";
  exchange.policy.note = outcome;
  log::info("policy: the user's answer to ", exchange.message->method(), " ",
            exchange.message->target_name(), " on '", exchange.upstream, "' (rule '", rule_id,
            "'): ", outcome, confirmation.detail.empty() ? "" : " — ", confirmation.detail);
  if (confirmation.outcome == Outcome::accepted) return charge_limits_or_proceed(exchange);
  std::string text;
  switch (confirmation.outcome) {
    case Outcome::declined:
      text = "The user declined this call";
      break;
    case Outcome::cancelled:
      text = "The user dismissed the approval request without approving this call";
      break;
    case Outcome::timed_out:
      text = "Nobody answered the approval request in time";
      break;
    default:
      text = "The approval request failed (" + confirmation.detail + ")";
      break;
  }
  text +=
      "; it was not forwarded. Approval is required by " + decided_by(exchange.policy_rule) + ".";
  return refuse(exchange, text,
                {{"rule", rule_id}, {"verdict", "ask"}, {"approval", std::string(outcome)}});
}

StageDecision PolicyStage::charge_limits_or_proceed(Exchange& exchange) const {
  if (exchange.limits_charged) return StageDecision::proceed();
  const auto charges = exchange.policy_snapshot->limits(call_context(exchange));
  if (charges.empty()) return StageDecision::proceed();
  std::vector<RateLimitCharge> tokens;
  tokens.reserve(charges.size());
  for (const auto& charge : charges) {
    RateLimitCharge token;
    // A bucket is named by the values it counts, and a caller picks those (args.*): past a
    // modest length the name is the limit's id and a digest, so no caller can make the store
    // hold its arguments.
    constexpr std::size_t longest_bucket_name = 128;
    token.bucket = charge.bucket.size() <= longest_bucket_name
                       ? charge.bucket
                       : charge.limit->id + "\x1f#" + hex_digest(charge.bucket, 16);
    token.refill_per_second = charge.limit->refill_per_second();
    token.capacity = charge.limit->burst;
    tokens.push_back(std::move(token));
  }
  return StageDecision::charge_limits(std::move(tokens));
}

StageDecision PolicyStage::on_limits(Exchange& exchange, const LimitOutcome& outcome) {
  using Kind = LimitOutcome::Kind;
  const std::string_view method = exchange.message->method();
  if (outcome.kind == Kind::allowed) {
    exchange.limits_charged = true;
    return StageDecision::proceed();
  }
  if (outcome.kind == Kind::unavailable) {
    const bool refuse_call = when_store_down_ == LimitStoreDown::deny && !shadow_;
    // During an outage every limited call lands here: one line per interval says it, with the
    // count since the last one, instead of one line per call.
    ++store_down_calls_;
    if (store_down_log_.ready(Clock::now())) {
      log::warn("policy: the rate-limit store did not answer (", outcome.error, "); ", method, " ",
                exchange.message->target_name(), " on '", exchange.upstream, "' is ",
                refuse_call ? "refused" : "forwarded unlimited", " (",
                store_down_calls_.exchange(0), " such call(s) since the last report)");
    }
    exchange.policy.note = shadow_ ? "shadow:limits_unavailable" : "limits_unavailable";
    if (!refuse_call) return StageDecision::proceed();
    exchange.policy.verdict = "deny";
    exchange.policy.rule = "(rate limits)";
    return refuse(exchange,
                  "Rate limits apply to this call, and the gateway could not check them (its "
                  "rate-limit store is unavailable), so the call was not forwarded. Try again "
                  "shortly.",
                  {{"verdict", "deny"}, {"limit", "unavailable"}});
  }
  const auto charges = exchange.policy_snapshot->limits(call_context(exchange));
  const policy::LimitInfo* limit =
      outcome.exhausted < charges.size() ? charges[outcome.exhausted].limit : nullptr;
  const std::string limit_id = limit ? limit->id : std::string("(unknown)");
  const auto retry_seconds = (outcome.retry_after.count() + 999) / 1000;
  if (shadow_) {
    log::info("policy (shadow): rate limit '", limit_id, "' would refuse ", method, " ",
              exchange.message->target_name(), " on '", exchange.upstream, "'");
    exchange.policy.note = "shadow:rate_limited";
    if (exchange.policy.rule.empty()) exchange.policy.rule = limit_id;
    return StageDecision::proceed();
  }
  log::info("policy: rate limit '", limit_id, "' refuses ", method, " ",
            exchange.message->target_name(), " on '", exchange.upstream, "' (retry in ",
            retry_seconds, " s)");
  exchange.policy.verdict = "deny";
  exchange.policy.rule = limit_id;
  exchange.policy.note = "rate_limited";
  std::string text = "Rate limit '" + limit_id + "'";
  if (limit) {
    text += " (" + limit->rate_text;
    if (!limit->by.empty()) {
      text += " for each";
      for (std::size_t i = 0; i < limit->by.size(); ++i)
        text += (i == 0 ? " " : ", ") + limit->by[i];
    }
    text += ")";
  }
  text += " reached";
  const std::string reason =
      limit ? (limit->message.empty() ? limit->description : limit->message) : std::string();
  if (!reason.empty()) text += ": " + reason;
  text += ". The call was not forwarded; try again in " + std::to_string(retry_seconds) +
          (retry_seconds == 1 ? " second." : " seconds.");
  return refuse(exchange, text,
                {{"rule", limit_id},
                 {"verdict", "deny"},
                 {"limit", limit_id},
                 {"retryAfterMs", outcome.retry_after.count()}});
}

void PolicyStage::on_upstream_message(Exchange& exchange, std::string& message) {
  if (!exchange.message || !exchange.policy_snapshot) return;
  const std::string_view method = exchange.message->method();
  if (method == "tools/call" || method == "resources/read" || method == "prompts/get") {
    if (shadow_ || !exchange.policy_snapshot->has_redactions()) return;
    auto parsed = json::parse(message);
    if (!parsed.ok()) {
      withhold_uninspectable(exchange, message, parsed.reason());
      return;
    }
    auto& body = parsed.value;
    if (!body.is_object() || body.value("id", mcp::Json()) != exchange.message->id()) return;
    const auto result = body.find("result");
    if (result == body.end()) return;
    if (exchange.policy_snapshot->redact(call_context(exchange), *result)) {
      message = dump(body);
      exchange.policy.redacted = true;
    }
    return;
  }
  if (method == "tools/list") filter_tool_list(exchange, message);
}

// Hides the tools the caller may never call (a deny rule that does not depend on arguments) and
// the tools a `tools/list` rule denies: poisoned descriptions must not reach the model at all.
void PolicyStage::filter_tool_list(Exchange& exchange, std::string& message) const {
  if (message.find("\"tools\"") == std::string::npos) return;
  auto parsed = json::parse(message);
  if (!parsed.ok()) {
    withhold_uninspectable(exchange, message, parsed.reason());
    return;
  }
  auto& body = parsed.value;
  if (!body.is_object() || body.value("id", mcp::Json()) != exchange.message->id()) return;
  const auto result = body.find("result");
  if (result == body.end() || !result->is_object()) return;
  const auto tools = result->find("tools");
  if (tools == result->end() || !tools->is_array()) return;
  const policy::Policy& policy = *exchange.policy_snapshot;
  policy::CallContext call;
  call.server = exchange.upstream;
  describe_caller(exchange, call);
  mcp::Json kept = mcp::Json::array();
  std::size_t hidden = 0;
  for (auto& tool : *tools) {
    const auto name = tool.find("name");
    if (name == tool.end() || !name->is_string()) {
      kept.push_back(std::move(tool));
      continue;
    }
    call.tool = name->get_ref<const std::string&>();
    const auto annotations = tool.find("annotations");
    call.tool_annotations = annotations == tool.end() ? nullptr : &*annotations;
    call.method = "tools/call";
    call.tool_description = {};
    call.tool_text = {};
    const policy::RuleInfo* hiding_rule = policy.never_allowed(call);
    std::string text;
    if (hiding_rule) {
      log::debug("policy", shadow_ ? " (shadow)" : "", ": tools/list on '", exchange.upstream, "' ",
                 shadow_ ? "would hide" : "hides", " '", call.tool, "' (rule '", hiding_rule->id,
                 "')");
    } else {
      const auto description = tool.find("description");
      call.method = "tools/list";
      call.tool_description = description != tool.end() && description->is_string()
                                  ? std::string_view(description->get_ref<const std::string&>())
                                  : std::string_view();
      text = policy::listed_tool_text(tool);
      call.tool_text = text;
      hiding_rule = policy.listing_denied(call);
      if (hiding_rule) {
        log::warn("policy", shadow_ ? " (shadow)" : "", ": tools/list on '", exchange.upstream,
                  "' ", shadow_ ? "would hide" : "hides", " tool '", call.tool, "' (rule '",
                  rule_name(hiding_rule), "')");
      }
    }
    if (!hiding_rule || shadow_) {
      kept.push_back(std::move(tool));
      continue;
    }
    ++hidden;
  }
  if (hidden == 0) return;
  exchange.policy.hidden_tools = hidden;
  *tools = std::move(kept);
  message = dump(body);
}

}  // namespace membrane::gateway
