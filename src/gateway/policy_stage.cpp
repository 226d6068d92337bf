#include "gateway/policy_stage.hpp"

#include "membrane/core/log.hpp"

namespace membrane::gateway {
namespace {

// Policy errors for methods without a tool result shape (resources/read, prompts/get).
constexpr int denied_by_policy = -32003;

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
  call.client_address = exchange.client_address;
  call.protocol_version = exchange.protocol_version;
  return call;
}

std::string explanation(const policy::RuleInfo& rule) {
  const std::string& why = rule.message.empty() ? rule.description : rule.message;
  if (rule.verdict == policy::Verdict::ask) {
    return "Human approval is required by policy rule '" + rule.id + "'" +
           (why.empty() ? "" : ": " + why) + ". This call was not forwarded.";
  }
  return "Denied by policy rule '" + rule.id + "'" + (why.empty() ? "" : ": " + why);
}

}  // namespace

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
  if (decision.rule)
    exchange.policy = std::string(to_string(decision.verdict)) + ":" + decision.rule->id;
  else if (decision.verdict != policy::Verdict::allow)
    exchange.policy = std::string(to_string(decision.verdict)) + ":(default)";
  if (decision.verdict != policy::Verdict::deny && decision.verdict != policy::Verdict::ask) {
    return StageDecision::proceed();
  }
  const std::string rule_id = decision.rule ? decision.rule->id : "(default)";
  if (shadow_) {
    log::info("policy (shadow): would ", to_string(decision.verdict), " ", method, " ",
              exchange.message->target_name(), " on '", exchange.upstream, "' by rule '", rule_id,
              "'");
    exchange.policy += ":shadow";
    return StageDecision::proceed();
  }
  // Human-in-the-loop approval through elicitation is not wired yet: an `ask` verdict is answered
  // the way the issue specifies for clients that cannot be asked.
  const std::string text = decision.rule
                               ? explanation(*decision.rule)
                               : "Denied by the policy's default verdict: no rule allows this call";
  const mcp::Json policy_meta = {{"rule", rule_id}, {"verdict", to_string(decision.verdict)}};
  mcp::Json response = {{"jsonrpc", "2.0"}, {"id", exchange.message->id()}};
  if (method == "tools/call") {
    response["result"] = {{"content", {{{"type", "text"}, {"text", text}}}},
                          {"isError", true},
                          {"_meta", {{"io.membrane/policy", policy_meta}}}};
  } else {
    response["error"] = {{"code", denied_by_policy}, {"message", text}, {"data", policy_meta}};
  }
  log::info("policy: ", to_string(decision.verdict), " ", method, " ",
            exchange.message->target_name(), " on '", exchange.upstream, "' by rule '", rule_id,
            "'");
  return StageDecision::answer(200,
                               response.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
}

void PolicyStage::on_upstream_message(Exchange& exchange, std::string& message) {
  if (shadow_ || !exchange.message || !exchange.policy_snapshot) return;
  const std::string_view method = exchange.message->method();
  if (method == "tools/call" || method == "resources/read" || method == "prompts/get") {
    if (!exchange.policy_snapshot->has_redactions()) return;
    auto body = mcp::Json::parse(message, nullptr, false);
    if (!body.is_object() || body.value("id", mcp::Json()) != exchange.message->id()) return;
    const auto result = body.find("result");
    if (result == body.end()) return;
    if (exchange.policy_snapshot->redact(call_context(exchange), *result)) {
      message = body.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
      exchange.policy += exchange.policy.empty() ? "redacted" : ":redacted";
    }
    return;
  }
  if (method != "tools/list") return;
  if (message.find("\"tools\"") == std::string::npos) return;
  auto body = mcp::Json::parse(message, nullptr, false);
  if (!body.is_object() || body.value("id", mcp::Json()) != exchange.message->id()) return;
  const auto result = body.find("result");
  if (result == body.end() || !result->is_object()) return;
  const auto tools = result->find("tools");
  if (tools == result->end() || !tools->is_array()) return;
  policy::CallContext call;
  call.method = "tools/call";
  call.server = exchange.upstream;
  call.client_address = exchange.client_address;
  call.protocol_version = exchange.protocol_version;
  mcp::Json kept = mcp::Json::array();
  bool hid_any = false;
  for (auto& tool : *tools) {
    const auto name = tool.find("name");
    if (name != tool.end() && name->is_string()) {
      call.tool = name->get_ref<const std::string&>();
      const auto annotations = tool.find("annotations");
      call.tool_annotations = annotations == tool.end() ? nullptr : &*annotations;
      if (const auto* rule = exchange.policy_snapshot->never_allowed(call)) {
        log::debug("policy: tools/list on '", exchange.upstream, "' hides '", call.tool,
                   "' (rule '", rule->id, "')");
        hid_any = true;
        continue;
      }
    }
    kept.push_back(std::move(tool));
  }
  if (!hid_any) return;
  *tools = std::move(kept);
  message = body.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

}  // namespace membrane::gateway
