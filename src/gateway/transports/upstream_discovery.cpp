// Which revision an upstream speaks (learnt from server/discover on first use), and the upstream
// sessions the gateway opens and pools for stateless (2026-07-28) clients of session-era servers.
#include "gateway/gateway.hpp"
#include "gateway/responses.hpp"
#include "gateway/revision.hpp"
#include "gateway/transports/bridge_messages.hpp"
#include "gateway/transports/event_relay.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {
using bridge::dump;
using bridge::read_response;
using bridge::upstream_failure;

awaitable<std::optional<mcp::Json>> Gateway::discover_upstream(upstream::Upstream& upstream,
                                                               const mcp::Json& envelope,
                                                               bool* reached) {
  const mcp::Json id = "membrane-discover";
  mcp::Json body = {{"jsonrpc", "2.0"},
                    {"id", id},
                    {"method", "server/discover"},
                    {"params", {{"_meta", envelope}}}};
  const mcp::Message message(mcp::MessageKind::request, body);
  upstream::ForwardContext context;
  add_stateless_headers(context, message, nullptr);
  context.idempotent = true;
  // Learning an undeclared revision (reached is asked for) is the gateway's own probe.
  context.probe = reached != nullptr && upstream.declared_protocol().empty();
  auto reply = co_await upstream.send(message, dump(body), nullptr, context);
  if (reached) *reached = reply.kind != upstream::UpstreamReply::Kind::unavailable;
  auto response = co_await read_response(reply, id);
  if (!response || !response->contains("result")) co_return std::nullopt;
  co_return (*response)["result"];
}

awaitable<UpstreamRevision::Era> Gateway::upstream_era(upstream::Upstream& upstream) {
  using Era = UpstreamRevision::Era;
  auto& revision = *revisions_.at(upstream.name());
  const std::string_view declared = upstream.declared_protocol();
  if (!upstream.traits().may_be_stateless ||
      (!declared.empty() && !mcp::is_stateless_protocol_version(declared))) {
    if (revision.era() != Era::session) revision.learn(Era::session);
    co_return Era::session;
  }
  const Era known = revision.era();
  if (known != Era::unknown && !revision.claim_refresh(Clock::now())) co_return known;
  // The one refresh in flight ends with this probe, however it ends.
  struct RefreshInFlight {
    UpstreamRevision* revision;
    ~RefreshInFlight() {
      if (revision) revision->refresh_done();
    }
  } refreshing{known != Era::unknown ? &revision : nullptr};

  const auto envelope =
      mcp::stateless_envelope(mcp::stateless_protocol_version, mcp::Json::object(),
                              mcp::Json{{"name", "membrane"}, {"version", "1"}});
  bool reached = false;
  auto discover = co_await discover_upstream(upstream, envelope, &reached);
  bool stateless = false;
  if (discover) {
    if (const auto versions = discover->find("supportedVersions");
        versions != discover->end() && versions->is_array()) {
      for (const auto& version : *versions)
        stateless = stateless || (version.is_string() &&
                                  mcp::is_stateless_protocol_version(version.get<std::string>()));
    }
  }
  if (!reached && known != Era::unknown) {
    // Down for the moment: what was known stands, and is asked again after another interval.
    revision.learn(known, revision.discover());
    co_return known;
  }
  // Whether it also takes sessions is learnt again too, by the next session client.
  revision.learn_sessions(UpstreamRevision::Sessions::unknown);
  if (stateless || (!declared.empty() && mcp::is_stateless_protocol_version(declared))) {
    revision.learn(Era::stateless, discover ? *discover : mcp::Json());
    if (known != Era::stateless)
      log::info("upstream '", upstream.name(), "' speaks MCP ", mcp::stateless_protocol_version,
                " (stateless)");
    co_return Era::stateless;
  }
  if (reached) {
    // An answer that is not a discover result (method not found, a session error) is a
    // session-era server; no answer at all says nothing yet.
    revision.learn(Era::session);
    if (known != Era::session)
      log::info("upstream '", upstream.name(), "' speaks MCP with sessions (no server/discover)");
  }
  co_return Era::session;
}

awaitable<bool> Gateway::bridges_session_clients(upstream::Upstream& upstream) {
  using Sessions = UpstreamRevision::Sessions;
  if (co_await upstream_era(upstream) != UpstreamRevision::Era::stateless) co_return false;
  // `protocol: 2026-07-28` is the operator's word: every client is spoken for in that revision.
  if (!upstream.declared_protocol().empty()) co_return true;
  auto& revision = *revisions_.at(upstream.name());
  auto sessions = revision.sessions();
  if (sessions == Sessions::unknown) {
    sessions = co_await probe_sessions(upstream);
    if (sessions != Sessions::unknown) revision.learn_sessions(sessions);
  }
  // Unknown (the server did not answer at all): the client's own initialize goes upstream and
  // meets the same failure, and nothing is sealed into its session meanwhile.
  co_return sessions == Sessions::refused;
}

// Whether a 2026-07-28 server also takes initialize: the gateway opens a session of its own and
// ends it at once.
awaitable<UpstreamRevision::Sessions> Gateway::probe_sessions(upstream::Upstream& upstream) {
  using Sessions = UpstreamRevision::Sessions;
  const mcp::Json id = "membrane-probe";
  const mcp::Json body = {
      {"jsonrpc", "2.0"},
      {"id", id},
      {"method", "initialize"},
      {"params", mcp::initialize_params_for(mcp::Json::object(),
                                            mcp::Json{{"name", "membrane"}, {"version", "1"}})}};
  upstream::ForwardContext context;
  auto reply = co_await upstream.send(mcp::Message(mcp::MessageKind::request, body), dump(body),
                                      nullptr, context);
  const bool reached = reply.kind != upstream::UpstreamReply::Kind::unavailable &&
                       reply.kind != upstream::UpstreamReply::Kind::overloaded;
  const std::string upstream_session = reply.upstream_session;
  const auto response = co_await read_response(reply, id);
  // An error answer (a server that refuses initialize) has no result to look at.
  const auto found = response ? response->find("result") : mcp::Json::const_iterator();
  const mcp::Json* result = response && found != response->end() ? &*found : nullptr;
  if (result && result->is_object() && result->contains("protocolVersion")) {
    mcp::SessionClaims probe;
    probe.upstream = upstream.name();
    probe.upstream_session = upstream_session;
    upstream::ForwardContext ending;
    ending.protocol_version = result->value("protocolVersion", std::string());
    if (!upstream_session.empty()) co_await upstream.end_session(probe, ending);
    log::info("upstream '", upstream.name(), "' also speaks MCP ", ending.protocol_version,
              " with sessions: session clients get sessions of their own there");
    co_return Sessions::accepted;
  }
  if (!reached) co_return Sessions::unknown;
  log::info("upstream '", upstream.name(), "' takes no initialize: session clients are bridged to ",
            mcp::stateless_protocol_version);
  co_return Sessions::refused;
}

// Sessions the gateway holds for stateless clients of session servers.
awaitable<std::shared_ptr<const PooledSession>> Gateway::pooled_session(
    upstream::Upstream& upstream, const std::string& key, const mcp::SessionClaims& client,
    const mcp::Json& client_info, const std::string& caller, std::string& error,
    upstream::UpstreamReply* overload) {
  if (auto found = session_pool_.find(key)) co_return found;
  const mcp::Json id = "membrane-initialize";
  const auto params = mcp::initialize_params_for(client.client_capabilities, client_info);
  const mcp::Json body = {
      {"jsonrpc", "2.0"}, {"id", id}, {"method", "initialize"}, {"params", params}};
  const mcp::Message message(mcp::MessageKind::request, body);
  upstream::ForwardContext context;
  context.caller = caller;
  auto reply = co_await upstream.send(message, dump(body), nullptr, context);
  if (reply.kind == upstream::UpstreamReply::Kind::overloaded) {
    *overload = std::move(reply);
    co_return nullptr;
  }
  const std::string upstream_session = reply.upstream_session;
  auto response = co_await read_response(reply, id);
  if (!response || !response->contains("result") || !(*response)["result"].is_object()) {
    error = "upstream '" + upstream.name() + "' did not accept the gateway's initialize: " +
            (response ? dump(*response).substr(0, 300) : upstream_failure(reply, upstream.name()));
    co_return nullptr;
  }
  auto session = std::make_shared<PooledSession>();
  session->initialize_result = (*response)["result"];
  auto& claims = session->claims;
  claims.upstream = upstream.name();
  claims.upstream_session = upstream_session;
  claims.subject = client.subject;
  claims.client_name = client.client_name;
  claims.client_capabilities = client.client_capabilities;
  claims.created_at = unix_now();
  if (upstream.traits().needs_initialize_replay) claims.initialize_params = params;
  claims.protocol_version = session->initialize_result.value(
      "protocolVersion", std::string(mcp::latest_session_protocol_version));

  const mcp::Json initialized = {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}};
  upstream::ForwardContext follow_up;
  follow_up.protocol_version = claims.protocol_version;
  co_await upstream.send(mcp::Message(mcp::MessageKind::notification, initialized),
                         dump(initialized), &claims, follow_up);
  session_pool_.put(key, session);
  log::info("upstream '", upstream.name(), "': opened a bridged session for stateless clients (",
            client.client_name.empty() ? std::string("unnamed client") : client.client_name, ")");
  co_return session;
}

}  // namespace membrane::gateway
