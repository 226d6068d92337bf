// Translating between the session revisions of MCP (2025-11-25 and earlier: initialize, sessions,
// server-to-client requests) and the stateless one (2026-07-28: server/discover, a `_meta`
// envelope on every request, `input_required` results). Pure functions over JSON, so both
// bridging directions are testable without a network.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::mcp {

// The reserved `_meta` keys a stateless request carries for its client.
Json stateless_envelope(std::string_view protocol_version, const Json& client_capabilities,
                        const Json& client_info);

// Adds the envelope to a request's params._meta (keys the request already has win).
void add_envelope(Json& request, const Json& envelope);

// Removes the reserved `io.modelcontextprotocol/*` keys from params._meta (a session-era server
// has no use for them), and drops _meta when nothing else is left.
void strip_reserved_meta(Json& request);

// server/discover, answered for a session-era server from its initialize result.
Json discover_from_initialize(const Json& initialize_result);

// initialize, answered for a stateless server from its server/discover result, at the revision
// the client asked for when the gateway speaks it (else the newest session revision).
Json initialize_from_discover(const Json& discover_result, std::string_view requested_version);

// The session revision the gateway agrees to in initialize: the client's when known, else the
// newest session revision.
std::string negotiate_session_version(std::string_view requested_version);

// The initialize params the gateway sends a session-era server on behalf of a stateless client.
Json initialize_params_for(const Json& client_capabilities, const Json& client_info);

// A session-era server's response made what a 2026-07-28 client requires of a result:
// `resultType: "complete"`, and for cacheable methods the conservative cache hints
// (`ttlMs: 0`, `cacheScope: "private"`) when the server gave none.
void mark_complete_result(Json& response, std::string_view method);

// result.resultType == "input_required".
bool is_input_required(const Json& result);

// Methods whose results may carry `input_required` (SEP-2322).
bool may_require_input(std::string_view method);

// Methods whose complete results a cache may keep (SEP-2549).
bool is_cacheable_method(std::string_view method);

// The list methods a `notifications/*/list_changed` (or resources/updated) makes stale; empty
// for other notifications.
std::vector<std::string_view> methods_invalidated_by(std::string_view notification_method);

// Requests of the session revisions that 2026-07-28 removed (initialize, ping, logging/setLevel,
// resources/subscribe, resources/unsubscribe): a 2026-07-28 server answers them 404 / -32601.
bool is_removed_in_stateless(std::string_view method);

// Server-to-client request methods a stateless client answers through `inputResponses`.
bool is_input_request_method(std::string_view method);

// The HTTP status 2026-07-28 gives a server's answer: 404 for -32601, 400 for the errors the
// revision answers with 400 (-32700, -32600, -32020, -32021, -32022), 200 for everything else
// (a handler's own errors stay in the body). For servers without HTTP of their own (stdio).
unsigned stateless_http_status(const Json& response);

}  // namespace membrane::mcp
