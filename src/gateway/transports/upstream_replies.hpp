// What an upstream's reply means downstream, the same for every transport: how an exchange ended
// (Outcome), the HTTP answer or the JSON-RPC message the client gets, and the session a
// successful initialize opens.
#pragma once

#include <memory>
#include <string>

#include "gateway/exchange/exchange.hpp"
#include "http/server.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway {

// How the exchange ended when this was the upstream's answer (before any reply message is read).
Outcome outcome_of(const upstream::UpstreamReply& reply);

// An upstream's reply as the downstream HTTP answer (errors as JSON-RPC errors with a status).
http::Response reply_to_response(upstream::UpstreamReply& reply, const mcp::Json& id,
                                 std::string_view upstream);

// The same as one JSON-RPC message, for a stream that has begun or the legacy session stream.
// `remedy` completes "…no longer knows this session; <remedy>".
std::string reply_as_message(upstream::UpstreamReply& reply, const mcp::Json& id,
                             std::string_view upstream, std::string_view remedy = "re-initialize");

// The downstream session a successful initialize opens (sealed by the transport).
mcp::SessionClaims claims_after_initialize(const upstream::Upstream& upstream,
                                           const mcp::Message& initialize,
                                           const upstream::UpstreamReply& reply,
                                           const std::shared_ptr<const identity::Identity>& caller);

}  // namespace membrane::gateway
