#include "gateway/transports/upstream_replies.hpp"

#include "gateway/admission.hpp"
#include "gateway/responses.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {
namespace bhttp = http::bhttp;
using Kind = upstream::UpstreamReply::Kind;

Outcome outcome_of(const upstream::UpstreamReply& reply) {
  switch (reply.kind) {
    case Kind::accepted:
    case Kind::message:
    case Kind::stream:
      return Outcome::ok;
    case Kind::unavailable:
      return Outcome::upstream_unavailable;
    case Kind::overloaded:
      return Outcome::overloaded;
    case Kind::session_not_found:
      return Outcome::session_not_found;
    case Kind::rejected:
    case Kind::not_supported:
      break;
  }
  return Outcome::rejected;
}

http::Response reply_to_response(upstream::UpstreamReply& reply, const mcp::Json& id,
                                 std::string_view upstream) {
  switch (reply.kind) {
    case Kind::accepted:
      return http::Response{bhttp::status::accepted, 11};
    case Kind::message:
      return json_response(200, std::move(reply.body));
    case Kind::session_not_found:
      return jsonrpc_error(404, id, mcp::error_code::session_not_found,
                           "Session not found: upstream '" + std::string(upstream) +
                               "' no longer knows this session; re-initialize");
    case Kind::not_supported: {
      auto response =
          jsonrpc_error(405, id, mcp::error_code::invalid_request,
                        "Method Not Allowed by upstream '" + std::string(upstream) + "'");
      response.set(bhttp::field::allow, "POST");
      return response;
    }
    case Kind::rejected: {
      http::Response response{static_cast<bhttp::status>(reply.http_status), 11};
      if (!reply.content_type.empty()) response.set(bhttp::field::content_type, reply.content_type);
      response.body() = std::move(reply.body);
      return response;
    }
    case Kind::overloaded:
      return overload_response(Refusal{reply.overload_limit, reply.retry_after, reply.body}, id);
    case Kind::unavailable:
    case Kind::stream:
      break;
  }
  return jsonrpc_error(502, id, mcp::error_code::upstream_unavailable, reply.body);
}

std::string reply_as_message(upstream::UpstreamReply& reply, const mcp::Json& id,
                             std::string_view upstream, std::string_view remedy) {
  switch (reply.kind) {
    case Kind::message:
      return std::move(reply.body);
    case Kind::session_not_found:
      return mcp::make_error_response(id, mcp::error_code::session_not_found,
                                      "Session not found: upstream '" + std::string(upstream) +
                                          "' no longer knows this session; " + std::string(remedy));
    case Kind::rejected:
    case Kind::not_supported:
      return mcp::make_error_response(id, mcp::error_code::internal_error,
                                      "upstream '" + std::string(upstream) + "' answered HTTP " +
                                          std::to_string(reply.http_status) + ": " +
                                          reply.body.substr(0, 500));
    case Kind::overloaded: {
      // Named, not a temporary inside a call: GCC 12 destroys such aggregates twice in coroutines.
      const Refusal refusal{reply.overload_limit, reply.retry_after, std::move(reply.body)};
      return overload_error(refusal, id);
    }
    case Kind::accepted:
    case Kind::unavailable:
    case Kind::stream:
      break;
  }
  return mcp::make_error_response(id, mcp::error_code::upstream_unavailable, reply.body);
}

mcp::SessionClaims claims_after_initialize(
    const upstream::Upstream& upstream, const mcp::Message& initialize,
    const upstream::UpstreamReply& reply, const std::shared_ptr<const identity::Identity>& caller) {
  mcp::SessionClaims claims;
  claims.upstream = upstream.name();
  claims.upstream_session = reply.upstream_session;
  claims.created_at = unix_now();
  if (caller) claims.subject = caller->subject;
  if (const auto* params = initialize.params()) {
    claims.client_name = mcp::client_name_of(*params);
    if (upstream.traits().needs_initialize_replay) claims.initialize_params = *params;
    if (const auto capabilities = params->find("capabilities"); capabilities != params->end())
      claims.client_capabilities = *capabilities;
  }
  return claims;
}

}  // namespace membrane::gateway
