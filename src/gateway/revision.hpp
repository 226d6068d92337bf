// Which MCP revision one downstream request speaks, decided per request (MCP 2026-07-28 has no
// session to remember it), and the checks 2026-07-28 puts on a stateless request before anything
// reads its headers: the MCP-Protocol-Version / Mcp-Method / Mcp-Name headers must repeat what the
// body says, and params._meta must carry the revision and the client's capabilities.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/server.hpp"
#include "membrane/mcp/jsonrpc.hpp"
#include "membrane/mcp/protocol.hpp"

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

// The revisions a request may name: every revision the gateway knows (it bridges what the
// upstream does not speak), or only the stateless one for a request without a session.
using ServedRevisions = std::span<const std::string_view>;
inline constexpr ServedRevisions every_revision = mcp::supported_protocol_versions;
// What a 2026-07-28 request may name: server/discover on every route lists these, whether the
// gateway passes it on or answers it, and an unsupported-version error must not list more.
inline constexpr std::array<std::string_view, 1> stateless_revisions = {
    mcp::stateless_protocol_version};

// Checks a stateless request (2026-07-28 §transports, SEP-2243, SEP-2575), in this order:
//   a JSON-RPC response from a stateless client (it never receives requests) -> 400, -32600
//   header missing, or different from the body -> 400, -32020 (header mismatch)
//   a revision the route does not serve        -> 400, -32022 {supported, requested}
//   _meta revision or capabilities missing     -> 400, -32602
StatelessRequest check_stateless_request(const http::Request& request, const mcp::Message& message,
                                         ServedRevisions served = every_revision);

// 400 with -32022 and data {supported, requested}: the answer to a revision the route does not
// serve, in the shape 2026-07-28 defines (earlier clients read it as any 400).
http::Response unsupported_version_response(const mcp::Json& id, std::string_view requested,
                                            ServedRevisions served = every_revision);

// The Mcp-Name a request must carry: params.name (tools/call, prompts/get), params.uri
// (resources/read) or params.taskId (tasks/get, tasks/update, tasks/cancel of the tasks
// extension); nullopt for methods that carry none.
std::optional<std::string> expected_name_header(const mcp::Message& message);

}  // namespace membrane::gateway
