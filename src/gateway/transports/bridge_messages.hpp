// Messages of the revision bridges: the gateway's own JSON-RPC text, reading the answer to a
// request of its own, and telling a session server that a call was abandoned.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "membrane/mcp/jsonrpc.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway::bridge {

// JSON text of a message whose strings may hold any bytes (invalid UTF-8 is replaced).
std::string dump(const mcp::Json& json);
// `{"jsonrpc":"2.0","id":…,"result":…}` as text.
std::string result_message(const mcp::Json& id, mcp::Json result);
// The JSON-RPC response among an upstream reply's text, when it is one.
std::optional<mcp::Json> parse_response(std::string_view text);
// Reads an upstream reply to the end of the response to `id` (a message, or the response event
// of a stream), for the gateway's own requests (discover, initialize).
awaitable<std::optional<mcp::Json>> read_response(upstream::UpstreamReply& reply,
                                                  const mcp::Json& id);
// A request of the gateway's own in an upstream session (`id` names it), read to its response;
// nullopt, with why in `failure`, when none came.
awaitable<std::optional<mcp::Json>> request_in_session(upstream::Upstream& upstream,
                                                       const mcp::SessionClaims& session,
                                                       const mcp::Json& id, std::string_view method,
                                                       mcp::Json params, std::string* failure);
// Why the upstream did not answer a request of the gateway's own.
std::string upstream_failure(const upstream::UpstreamReply& reply, std::string_view upstream);
// A session server does not take a closed connection as a cancellation (a 2026-07-28 server
// does): the gateway says it for the client that left.
awaitable<void> tell_session_cancelled(upstream::Upstream& upstream,
                                       const mcp::SessionClaims& session,
                                       const mcp::Json& request_id,
                                       std::string_view reason = "the client went away");

}  // namespace membrane::gateway::bridge
