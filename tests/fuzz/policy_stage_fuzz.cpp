// libFuzzer target: the traffic the policy stage judges, under the shipped ruleset
// (policies/default). The input's first line is a client's JSON-RPC request (tools/call,
// resources/read, prompts/get, tools/list: its name, URI and arguments are what rules look at);
// the rest is the upstream's answer to it (a result to mask, a tool list to filter). Both go
// through the policy filter (gateway::PolicyFilterFactory) as in the gateway: on_request, then
// on_upstream_message when the call would be forwarded. A denial must be an answer, never a
// forwarded call. A reply the unparsed check (Policy::may_redact) lets pass holds nothing any
// redact rule would mask.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/filters/policy/policy_filter.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/jsonrpc.hpp"

namespace {

using namespace membrane;

std::shared_ptr<const policy::Policy> shipped_policy() {
  return std::make_shared<const policy::Policy>(
      policy::Policy::load({MEMBRANE_SOURCE_DIR "/policies/default"}, policy::Verdict::allow));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  log::set_level(log::Level::error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static gateway::PolicyFilterFactory enforcing(shipped_policy(), false);
  static gateway::PolicyFilterFactory shadow(shipped_policy(), true);
  static const auto policy = shipped_policy();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  auto parsed = mcp::parse_message(input.substr(0, newline));
  if (!parsed.message) return 0;
  const std::string reply =
      newline == std::string_view::npos ? std::string() : std::string(input.substr(newline + 1));

  static const mcp::Json headers = {{"user-agent", "fuzz"}, {"x-tenant", "a"}};
  for (auto* factory : {&enforcing, &shadow}) {
    gateway::Exchange exchange;
    exchange.upstream = "fs";
    exchange.message = &*parsed.message;
    exchange.client_address = "127.0.0.1";
    exchange.protocol_version = "2025-11-25";
    exchange.request_headers = headers;
    const auto filter = factory->make(exchange);
    if (!filter) continue;  // a method the policy neither judges nor filters
    const auto step = filter->on_request(exchange);
    if (step.kind == gateway::FilterStep::Kind::answer) {
      if (step.body.empty()) __builtin_trap();
      continue;
    }
    // Without a session that can show an elicitation, `ask` refuses: it never pauses here.
    if (step.kind != gateway::FilterStep::Kind::proceed) __builtin_trap();
    std::string message = reply;
    filter->on_upstream_message(exchange, message);
  }
  if (!policy->may_redact(reply)) {
    auto body = json::parse_or_discarded(reply);
    if (!body.is_discarded() && policy->redact_all(body)) __builtin_trap();
  }
  return 0;
}
