#include "gateway/filters/refusal.hpp"

namespace membrane::gateway {

FilterStep refuse_call(const Exchange& exchange, const std::string& text, mcp::Json policy_meta) {
  mcp::Json response = {{"jsonrpc", "2.0"}, {"id", exchange.message->id()}};
  if (exchange.message->method() == "tools/call") {
    response["result"] = {{"content", {{{"type", "text"}, {"text", text}}}},
                          {"isError", true},
                          {"_meta", {{"io.membrane/policy", std::move(policy_meta)}}}};
  } else {
    response["error"] = {
        {"code", denied_by_policy}, {"message", text}, {"data", std::move(policy_meta)}};
  }
  return FilterStep::answer(200,
                            response.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
}

}  // namespace membrane::gateway
