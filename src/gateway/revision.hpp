// Which MCP revision one downstream request speaks, decided per request (MCP 2026-07-28 has no
// session to remember it), and the checks 2026-07-28 puts on a stateless request before anything
// reads its headers: the MCP-Protocol-Version / Mcp-Method / Mcp-Name headers must repeat what the
// body says, and params._meta must carry the revision and the client's capabilities.
#pragma once

#include <optional>
#include <string>

#include "http/server.hpp"
#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::gateway {

// True when the request is in the stateless era: its MCP-Protocol-Version header or its
// params._meta names 2026-07-28 or later.
bool is_stateless_request(const http::Request& request, const mcp::Message& message);

// What a valid stateless request declared about its client.
struct StatelessRequest {
  std::string protocol_version;
  mcp::Json client_capabilities = mcp::Json::object();
  mcp::Json client_info;  // null when the client sent none (it SHOULD)
  std::optional<http::Response> rejection;
};

// Checks a stateless request (2026-07-28 §transports, SEP-2243, SEP-2575):
//   unsupported revision                      -> 400, -32022 {supported, requested}
//   header missing or different from the body -> 400, -32020 (header mismatch)
//   _meta revision or capabilities missing    -> 400, -32602
//   a JSON-RPC response from a stateless client (it never receives requests) -> 400, -32600
StatelessRequest check_stateless_request(const http::Request& request, const mcp::Message& message);

// 400 with -32022 and data {supported, requested}: the answer to a revision the gateway does not
// speak, in the shape 2026-07-28 defines (earlier clients read it as any 400).
http::Response unsupported_version_response(const mcp::Json& id, std::string_view requested);

// The Mcp-Name a request must carry: params.name (tools/call, prompts/get) or params.uri
// (resources/read); nullopt for methods that carry none.
std::optional<std::string> expected_name_header(const mcp::Message& message);

}  // namespace membrane::gateway
