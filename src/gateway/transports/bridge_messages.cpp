#include "gateway/transports/bridge_messages.hpp"

#include "gateway/transports/event_relay.hpp"
#include "membrane/core/json.hpp"

namespace membrane::gateway::bridge {

std::string dump(const mcp::Json& json) {
  return json.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

std::string result_message(const mcp::Json& id, mcp::Json result) {
  return dump(mcp::Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
}

std::optional<mcp::Json> parse_response(std::string_view text) {
  auto parsed = json::parse_or_discarded(text);
  if (!parsed.is_object() || (!parsed.contains("result") && !parsed.contains("error")))
    return std::nullopt;
  return parsed;
}

awaitable<void> tell_session_cancelled(upstream::Upstream& upstream,
                                       const mcp::SessionClaims& session,
                                       const mcp::Json& request_id, std::string_view reason) {
  const mcp::Json cancelled = {{"jsonrpc", "2.0"},
                               {"method", "notifications/cancelled"},
                               {"params", {{"requestId", request_id}, {"reason", reason}}}};
  upstream::ForwardContext context;
  context.protocol_version = session.protocol_version;
  const mcp::Message message(mcp::MessageKind::notification, cancelled);
  co_await upstream.send(message, dump(cancelled), &session, context);
}

awaitable<std::optional<mcp::Json>> read_response(upstream::UpstreamReply& reply,
                                                  const mcp::Json& id) {
  using Kind = upstream::UpstreamReply::Kind;
  if (reply.kind == Kind::message) co_return parse_response(reply.body);
  if (reply.kind != Kind::stream) co_return std::nullopt;
  auto pump = co_await EventPump::start(std::move(reply.stream));
  for (;;) {
    auto next = co_await pump->next(std::chrono::seconds(30));
    if (next.kind == EventPump::Kind::tick) continue;
    if (next.kind != EventPump::Kind::message) break;
    if (auto response = parse_response(next.read.event.data);
        response && response->value("id", mcp::Json()) == id) {
      pump->stop();
      co_return response;
    }
  }
  pump->stop();
  co_return std::nullopt;
}

awaitable<std::optional<mcp::Json>> request_in_session(upstream::Upstream& upstream,
                                                       const mcp::SessionClaims& session,
                                                       const mcp::Json& id, std::string_view method,
                                                       mcp::Json params, std::string* failure) {
  const mcp::Json body = {
      {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
  upstream::ForwardContext context;
  context.protocol_version = session.protocol_version;
  auto reply = co_await upstream.send(mcp::Message(mcp::MessageKind::request, body), dump(body),
                                      &session, context);
  auto response = co_await read_response(reply, id);
  if (!response && failure) *failure = upstream_failure(reply, upstream.name());
  co_return response;
}

std::string upstream_failure(const upstream::UpstreamReply& reply, std::string_view upstream) {
  using Kind = upstream::UpstreamReply::Kind;
  if (reply.kind == Kind::unavailable) return reply.body;
  return "upstream '" + std::string(upstream) + "' answered HTTP " +
         std::to_string(reply.http_status) + ": " + reply.body.substr(0, 300);
}

}  // namespace membrane::gateway::bridge
