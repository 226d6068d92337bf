// How the gateway refuses a call it judged (policy, rate limits): a tool result with isError for
// tools/call (the model reads it and can adapt), a JSON-RPC error for resources/read and
// prompts/get. Shared by the filters that refuse.
#pragma once

#include <string>

#include "gateway/exchange/filter.hpp"

namespace membrane::gateway {

// Policy errors for methods without a tool result shape (resources/read, prompts/get).
inline constexpr int denied_by_policy = -32003;

// `policy_meta` goes to the result's _meta["io.membrane/policy"] (or the error's data).
FilterStep refuse_call(const Exchange& exchange, const std::string& text, mcp::Json policy_meta);

}  // namespace membrane::gateway
