// Routing and the Streamable HTTP downstream transport (MCP 2025-11-25 §transports, and the
// 2025-06-18 / 2025-03-26 clients that negotiate down to it).
#include "gateway/gateway.hpp"

#include <ctime>
#include <unordered_map>

#include "gateway/event_relay.hpp"
#include "gateway/legacy_sse.hpp"
#include "gateway/responses.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {
namespace bhttp = http::bhttp;

namespace {

http::Response status_json(unsigned status, std::string_view text) {
  return json_response(status, std::string(R"({"status":")") + std::string(text) + "\"}");
}

// The upstream name in /mcp/<name> or /sse/<name>[/message]; empty when the path has another shape.
std::string_view path_segment(std::string_view path, std::string_view prefix,
                              std::string_view& rest) {
  if (path.substr(0, prefix.size()) != prefix) return {};
  std::string_view tail = path.substr(prefix.size());
  const auto slash = tail.find('/');
  rest = slash == std::string_view::npos ? std::string_view() : tail.substr(slash);
  return tail.substr(0, slash);
}

}  // namespace

Gateway::Gateway(GatewayOptions options, std::vector<std::unique_ptr<upstream::Upstream>> upstreams,
                 ExchangePipeline pipeline)
    : options_(std::move(options)),
      pipeline_(std::move(pipeline)),
      admission_(options_.admission, options_.overload_stats) {
  if (!options_.rate_limiter) options_.rate_limiter = cluster::make_local_rate_limiter();
  if (!options_.ended_sessions) options_.ended_sessions = std::make_shared<EndedSessions>();
  for (auto& upstream : upstreams) {
    std::string name = upstream->name();
    revisions_.emplace(name, std::make_unique<UpstreamRevision>());
    upstreams_.emplace(std::move(name), std::move(upstream));
  }
  legacy_ = std::make_unique<LegacySseTransport>(*this);
}

Gateway::~Gateway() = default;

std::size_t Gateway::legacy_sessions() const {
  return legacy_->session_count();
}

upstream::Upstream* Gateway::find_upstream(std::string_view name) const {
  const auto it = upstreams_.find(name);
  return it == upstreams_.end() ? nullptr : it->second.get();
}

std::string Gateway::upstream_names() const {
  std::string names;
  for (const auto& [name, upstream] : upstreams_) {
    if (!names.empty()) names += ", ";
    names += name;
  }
  return names;
}

awaitable<void> Gateway::stop_upstreams() {
  for (auto& [name, upstream] : upstreams_)
    co_await upstream->stop();
}

std::optional<http::Response> Gateway::refuse_foreign_origin(
    const http::Request& request, const http::RequestOrigin& origin) const {
  const auto refuse = [&](std::string_view header, std::string_view value) {
    log::warn("rejected request from ", client_address(origin), ": ", header, " '", value,
              "' is not allowed");
    return jsonrpc_error(
        403, nullptr, mcp::error_code::invalid_request,
        "Forbidden: " + std::string(header) + " '" + std::string(value) + "' is not allowed");
  };
  const std::string_view origin_header = request[bhttp::field::origin];
  if (!options_.origin_policy.origin_allowed(origin_header)) return refuse("Origin", origin_header);
  const std::string_view host_header = request[bhttp::field::host];
  if (!options_.origin_policy.host_allowed(host_header)) return refuse("Host", host_header);
  return std::nullopt;
}

std::string Gateway::not_ready_reason() const {
  if (draining_) return "draining";
  if (options_.readiness_problem) return options_.readiness_problem();
  return {};
}

awaitable<void> Gateway::handle(http::Request& request, const http::RequestOrigin& origin,
                                http::Responder& out) {
  const std::string_view path = target_path(request.target());

  if (path == "/healthz") {
    co_await out.send(status_json(200, "ok"));
    co_return;
  }
  if (path == "/readyz") {
    const std::string problem = not_ready_reason();
    http::Response readiness =
        problem.empty() ? status_json(200, "ready") : status_json(503, problem);
    co_await out.send(std::move(readiness));
    co_return;
  }

  // DNS-rebinding defence before anything else is looked at (MCP 2025-11-25 §security warning).
  if (auto refusal = refuse_foreign_origin(request, origin)) {
    co_await out.send(std::move(*refusal));
    co_return;
  }

  if (path == "/.well-known/jwks.json") {
    if (options_.published_keys.empty()) {
      co_await out.send(jsonrpc_error(404, nullptr, mcp::error_code::invalid_request,
                                      "Not found: transaction tokens are not enabled"));
    } else {
      auto keys = json_response(200, options_.published_keys);
      keys.set(bhttp::field::cache_control, "max-age=300");
      co_await out.send(std::move(keys));
    }
    co_return;
  }
  constexpr std::string_view metadata_path = "/.well-known/oauth-protected-resource";
  if (path == metadata_path || path.starts_with(std::string(metadata_path) + "/")) {
    co_await out.send(
        protected_resource_metadata(request, origin, path.substr(metadata_path.size())));
    co_return;
  }

  if (path == "/txn/token") {
    co_await out.send(token_endpoint(request, origin));
    co_return;
  }

  std::string_view rest;
  if (const auto name = path_segment(path, "/mcp/", rest); !name.empty() && rest.empty()) {
    if (auto* upstream = find_upstream(name)) {
      // No coroutine round trip on the hot path when authorization is off.
      Authentication authentication;
      if (options_.authenticator)
        authentication = co_await authenticate(request, origin, name, path);
      if (authentication.refusal) {
        co_await out.send(std::move(*authentication.refusal));
        co_return;
      }
      co_await handle_streamable(request, origin, out, *upstream, authentication.caller);
      co_return;
    }
    co_await out.send(jsonrpc_error(
        404, nullptr, mcp::error_code::invalid_request,
        "Unknown MCP server '" + std::string(name) + "' (configured: " + upstream_names() + ")"));
    co_return;
  }
  if (const auto name = path_segment(path, "/sse/", rest);
      !name.empty() && (rest.empty() || rest == "/message")) {
    if (auto* upstream = find_upstream(name)) {
      Authentication authentication;
      if (options_.authenticator) {
        const std::string resource = "/sse/" + std::string(name);
        authentication = co_await authenticate(request, origin, name, resource);
      }
      if (authentication.refusal) {
        co_await out.send(std::move(*authentication.refusal));
        co_return;
      }
      co_await legacy_->handle(request, origin, out, *upstream, rest == "/message",
                               authentication.caller);
      co_return;
    }
    co_await out.send(jsonrpc_error(
        404, nullptr, mcp::error_code::invalid_request,
        "Unknown MCP server '" + std::string(name) + "' (configured: " + upstream_names() + ")"));
    co_return;
  }
  co_await out.send(
      jsonrpc_error(404, nullptr, mcp::error_code::invalid_request,
                    "Not found: '" + std::string(path) +
                        "'. MCP servers are served at /mcp/<name> (Streamable HTTP) and "
                        "/sse/<name> (HTTP+SSE); configured: " +
                        upstream_names()));
}

std::string Gateway::base_url(const http::Request& request,
                              const http::RequestOrigin& origin) const {
  if (!options_.public_url.empty()) return options_.public_url;
  return std::string(origin.tls ? "https://" : "http://") +
         std::string(request[bhttp::field::host]);
}

awaitable<bool> Gateway::refresh_issuer_keys() {
  std::string error;
  auto keys = co_await options_.remote_jwks->fetch(error);
  if (!keys) {
    if (!error.empty()) {
      log::warn("auth: cannot fetch the issuer's keys from ", options_.remote_jwks->url(), ": ",
                error);
    }
    co_return false;
  }
  log::info("auth: ", keys->keys().size(), " issuer key(s) from ", options_.remote_jwks->url());
  options_.authenticator->replace_keys(std::move(*keys));
  co_return true;
}

awaitable<Gateway::Authentication> Gateway::authenticate(const http::Request& request,
                                                         const http::RequestOrigin& origin,
                                                         std::string_view upstream,
                                                         std::string_view resource_path) {
  Authentication authentication;
  if (!options_.authenticator) co_return authentication;
  static const std::vector<std::string> no_scopes;
  const auto scopes = options_.upstream_scopes.find(upstream);
  const auto& needed = scopes == options_.upstream_scopes.end() ? no_scopes : scopes->second;
  const std::string_view authorization = request[bhttp::field::authorization];
  if (options_.remote_jwks && options_.remote_jwks->stale()) co_await refresh_issuer_keys();
  auto result = options_.authenticator->authenticate(authorization, needed, unix_now());
  // A key id the set lacks may be the issuer's new key: look once more (rate-limited).
  if (!result && result.unknown_key && options_.remote_jwks) {
    const bool refreshed = co_await refresh_issuer_keys();
    if (refreshed) result = options_.authenticator->authenticate(authorization, needed, unix_now());
  }
  if (result) {
    authentication.caller = std::move(result.identity);
    co_return authentication;
  }
  log::info("refused ", request.method_string(), " ", resource_path, " from ",
            client_address(origin), ": ", result.status, " ",
            result.error.empty() ? "no token" : result.error, " (", result.description, ")");
  // RFC 6750 §3 and RFC 9728 §5.1: say where the client learns how to get a token.
  std::string challenge = "Bearer resource_metadata=\"" + base_url(request, origin) +
                          "/.well-known/oauth-protected-resource" + std::string(resource_path) +
                          "\"";
  const auto quoted = [](std::string_view text) {
    std::string out;
    for (const char c : text) {
      if (c == '"' || c == '\\') out.push_back('\\');
      // A header value never carries control characters, whatever a token made of the text.
      out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c);
    }
    return out;
  };
  if (!result.error.empty()) {
    challenge += ", error=\"" + result.error + "\", error_description=\"" +
                 quoted(result.description) + "\"";
  }
  if (!result.scope.empty()) challenge += ", scope=\"" + quoted(result.scope) + "\"";
  auto response =
      jsonrpc_error(result.status, nullptr, mcp::error_code::invalid_request,
                    (result.status == 403 ? "Forbidden: " : "Unauthorized: ") + result.description);
  response.set(bhttp::field::www_authenticate, challenge);
  authentication.refusal = std::move(response);
  co_return authentication;
}

http::Response Gateway::token_endpoint(const http::Request& request,
                                       const http::RequestOrigin& origin) const {
  if (!options_.token_exchange) {
    return jsonrpc_error(
        404, nullptr, mcp::error_code::invalid_request,
        "Not found: the token-exchange endpoint is not enabled (txn.exchange_clients)");
  }
  if (request.method() != bhttp::verb::post) {
    auto response = json_response(
        405, R"({"error":"invalid_request","error_description":"POST a token-exchange request"})");
    response.set(bhttp::field::allow, "POST");
    return response;
  }
  const auto reply =
      options_.token_exchange->handle(request[bhttp::field::content_type], request.body(),
                                      base_url(request, origin) + "/txn/token", unix_now());
  if (reply.status != 200) {
    log::info("token exchange refused for ", client_address(origin), ": ",
              reply.body.value("error", std::string()), " (",
              reply.body.value("error_description", std::string()), ")");
  }
  // The descriptions may quote the form (a scope asked for), which is any bytes: never a reason
  // to throw instead of answering.
  auto response = json_response(
      reply.status, reply.body.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
  // RFC 6749 §5.1: token responses are never cached.
  response.set(bhttp::field::cache_control, "no-store");
  return response;
}

http::Response Gateway::protected_resource_metadata(const http::Request& request,
                                                    const http::RequestOrigin& origin,
                                                    std::string_view resource_path) const {
  if (!options_.authenticator) {
    return jsonrpc_error(404, nullptr, mcp::error_code::invalid_request,
                         "Not found: authorization is not enabled on this gateway");
  }
  std::string_view rest;
  const auto mcp_name = path_segment(resource_path, "/mcp/", rest);
  const auto sse_name = mcp_name.empty() ? path_segment(resource_path, "/sse/", rest) : mcp_name;
  if (!resource_path.empty() && (sse_name.empty() || !rest.empty() || !find_upstream(sse_name))) {
    return jsonrpc_error(
        404, nullptr, mcp::error_code::invalid_request,
        "Not found: no protected resource at '" + std::string(resource_path) + "'");
  }
  const auto& auth = options_.authenticator->options();
  std::vector<std::string> scopes = auth.required_scopes;
  if (!sse_name.empty()) {
    if (const auto extra = options_.upstream_scopes.find(sse_name);
        extra != options_.upstream_scopes.end())
      scopes.insert(scopes.end(), extra->second.begin(), extra->second.end());
  }
  mcp::Json document = {{"resource", base_url(request, origin) + std::string(resource_path)},
                        {"authorization_servers", {auth.issuer}},
                        {"bearer_methods_supported", {"header"}},
                        {"resource_name", "Membrane MCP gateway"}};
  if (!scopes.empty()) document["scopes_supported"] = scopes;
  // base_url() repeats the client's Host header, which is any bytes.
  auto response =
      json_response(200, document.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
  response.set(bhttp::field::cache_control, "max-age=300");
  return response;
}

awaitable<void> Gateway::handle_streamable(http::Request& request,
                                           const http::RequestOrigin& origin,
                                           http::Responder& client, upstream::Upstream& upstream,
                                           const Caller& caller) {
  // What the request holds against the overload limits is released once it has been answered.
  RequestAdmission admitted;
  AdmittingResponder out(client, admission_.sessions(), admitted);
  switch (request.method()) {
    case bhttp::verb::post:
      co_await streamable_post(request, origin, out, upstream, caller, admitted);
      co_return;
    case bhttp::verb::get:
      co_await streamable_get(request, origin, out, upstream, caller, admitted);
      co_return;
    case bhttp::verb::delete_:
      co_await streamable_delete(request, out, upstream, caller);
      co_return;
    default: {
      auto response = jsonrpc_error(405, nullptr, mcp::error_code::invalid_request,
                                    "Method Not Allowed: use POST, GET or DELETE");
      response.set(bhttp::field::allow, "GET, POST, DELETE");
      co_await out.send(std::move(response));
    }
  }
}

namespace {

// Opening a sealed id costs an AES-GCM decryption and a JSON parse; a client sends the same id
// on every request, so each worker keeps the ids it opened recently. Only successfully opened
// ids are cached, keyed by the exact text and route, so the cache cannot change any answer.
struct UnsealedEntry {
  mcp::SessionClaims claims;
  mcp::SessionTransport transport;
};
thread_local std::unordered_map<std::string, UnsealedEntry> recently_unsealed;

std::string unsealed_key(std::string_view sealed, std::string_view upstream) {
  std::string key;
  key.reserve(sealed.size() + upstream.size() + 1);
  key.append(upstream).push_back('\n');
  key.append(sealed);
  return key;
}

std::optional<mcp::SessionClaims> unseal_cached(const mcp::SessionSealer& sealer,
                                                std::string_view sealed, std::string_view upstream,
                                                mcp::SessionTransport transport) {
  constexpr std::size_t capacity = 4096;
  auto key = unsealed_key(sealed, upstream);
  if (const auto it = recently_unsealed.find(key);
      it != recently_unsealed.end() && it->second.transport == transport) {
    return it->second.claims;
  }
  auto claims = sealer.unseal(sealed, upstream, transport);
  if (claims) {
    if (recently_unsealed.size() >= capacity) recently_unsealed.clear();
    recently_unsealed.emplace(std::move(key), UnsealedEntry{*claims, transport});
  }
  return claims;
}

// A deleted session leaves the cache of the worker that deleted it at once (the others drop it
// when theirs is full): the cache holds the sessions in use rather than every one ever opened,
// which the soak benchmark showed as memory growing with each session.
void forget_unsealed(std::string_view sealed, std::string_view upstream) {
  recently_unsealed.erase(unsealed_key(sealed, upstream));
}

// The sealed session a request names, or the HTTP answer explaining why there is none.
struct SessionLookup {
  std::optional<mcp::SessionClaims> claims;
  std::optional<http::Response> rejection;
};

SessionLookup open_session(const http::Request& request, const GatewayOptions& options,
                           std::string_view upstream, mcp::SessionTransport transport,
                           const mcp::Json& id, const Caller& caller) {
  SessionLookup lookup;
  const std::string_view sealed = request[mcp::header::session_id];
  if (sealed.empty()) {
    lookup.rejection =
        jsonrpc_error(400, id, mcp::error_code::invalid_request,
                      "Bad Request: Mcp-Session-Id header is required (send initialize first)");
    return lookup;
  }
  if (options.ended_sessions->contains(sealed)) {
    lookup.rejection =
        jsonrpc_error(404, id, mcp::error_code::session_not_found, "Session terminated");
    return lookup;
  }
  auto claims = unseal_cached(*options.sealer, sealed, upstream, transport);
  if (!claims) {
    // MCP transports §session management: an unknown session is 404; the client re-initializes.
    lookup.rejection =
        jsonrpc_error(404, id, mcp::error_code::session_not_found, "Session not found");
    return lookup;
  }
  // A session serves only the caller who opened it; to anyone else it does not exist.
  if (claims->subject != (caller ? caller->subject : std::string())) {
    lookup.rejection =
        jsonrpc_error(404, id, mcp::error_code::session_not_found, "Session not found");
    return lookup;
  }
  if (unix_now() - claims->created_at > options.session_max_age.count()) {
    lookup.rejection =
        jsonrpc_error(404, id, mcp::error_code::session_not_found, "Session expired");
    return lookup;
  }
  lookup.claims = std::move(claims);
  return lookup;
}

std::optional<http::Response> check_protocol_version(const http::Request& request,
                                                     const mcp::Json& id) {
  const std::string_view version = request[mcp::header::protocol_version];
  if (version.empty() || mcp::is_supported_protocol_version(version)) return std::nullopt;
  return unsupported_version_response(id, version);
}

// MCP 2026-07-28: a stateless client has no session to listen on or end.
http::Response stateless_method_not_allowed(std::string_view method) {
  auto response = jsonrpc_error(405, nullptr, mcp::error_code::invalid_request,
                                "Method Not Allowed: " + std::string(method) +
                                    " has no meaning in MCP 2026-07-28 (stateless); POST requests, "
                                    "and subscriptions/listen for notifications");
  response.set(bhttp::field::allow, "POST");
  return response;
}

// The SSE response header, naming the new session when the request was initialize.
http::ResponseHeader stream_header(const std::string& sealed_session) {
  auto header = event_stream_header();
  if (!sealed_session.empty()) header.set(mcp::header::session_id, sealed_session);
  return header;
}

// A reply as one JSON-RPC message, for an SSE stream that has already begun (after the gateway
// asked the client something on it): upstream failures become error responses.
std::string reply_as_message(const upstream::UpstreamReply& reply, const mcp::Json& id,
                             std::string_view upstream) {
  using Kind = upstream::UpstreamReply::Kind;
  switch (reply.kind) {
    case Kind::message:
      return reply.body;
    case Kind::session_not_found:
      return mcp::make_error_response(id, mcp::error_code::session_not_found,
                                      "Session not found: upstream '" + std::string(upstream) +
                                          "' no longer knows this session; re-initialize");
    case Kind::rejected:
    case Kind::not_supported:
      return mcp::make_error_response(id, mcp::error_code::internal_error,
                                      "upstream '" + std::string(upstream) + "' answered HTTP " +
                                          std::to_string(reply.http_status) + ": " +
                                          reply.body.substr(0, 500));
    case Kind::accepted:
    case Kind::unavailable:
    case Kind::overloaded:
    case Kind::stream:
      break;
  }
  return mcp::make_error_response(id, mcp::error_code::upstream_unavailable, reply.body);
}

}  // namespace

http::Response reply_to_response(upstream::UpstreamReply& reply, const mcp::Json& id,
                                 std::string_view upstream) {
  using Kind = upstream::UpstreamReply::Kind;
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

awaitable<ClientAnswer> Gateway::ask_client_request(http::Responder& out, const Exchange& exchange,
                                                    std::string_view method,
                                                    const mcp::Json& params) {
  auto pending = client_requests_.open(ClientRequests::session_key(*exchange.session),
                                       co_await asio::this_coro::executor);
  http::SseEvent question;
  question.data = pending->request_message(method, params);
  if (!co_await out.write_chunk(http::format_sse_event(question))) {
    ClientAnswer gone;
    gone.kind = ClientAnswer::Kind::client_gone;
    co_return gone;
  }
  // Keep-alives hold the stream open while the human thinks, and notice one who left.
  PendingClientRequest::StillThere keep_alive = [&out]() -> awaitable<bool> {
    co_return co_await out.write_chunk(http::sse_keep_alive_comment);
  };
  auto answer = co_await pending->wait(Clock::now() + options_.approval_timeout,
                                       options_.sse_keep_alive, std::move(keep_alive));
  if (answer.kind == ClientAnswer::Kind::cancelled)
    co_await asio::this_coro::reset_cancellation_state();
  co_return answer;
}

awaitable<StageDecision> Gateway::judge(Exchange& exchange) const {
  StageDecision decision = pipeline_.on_request(exchange);
  co_return co_await spend_limit_tokens(exchange, std::move(decision));
}

awaitable<StageDecision> Gateway::judge_answer(Exchange& exchange,
                                               const Confirmation& confirmation) const {
  StageDecision decision = pipeline_.on_confirmation(exchange, confirmation);
  co_return co_await spend_limit_tokens(exchange, std::move(decision));
}

awaitable<StageDecision> Gateway::spend_limit_tokens(Exchange& exchange,
                                                     StageDecision decision) const {
  // Each round hands the outcome to the stage that asked and runs the later stages, which may
  // ask in turn: the loop moves forward through the pipeline and ends.
  while (decision.kind == StageDecision::Kind::charge_limits) {
    std::vector<cluster::BucketRequest> buckets;
    buckets.reserve(decision.charges.size());
    for (auto& charge : decision.charges) {
      cluster::BucketRequest bucket;
      bucket.key = std::move(charge.bucket);
      bucket.refill_per_second = charge.refill_per_second;
      bucket.capacity = charge.capacity;
      buckets.push_back(std::move(bucket));
    }
    const cluster::RateDecision taken = co_await options_.rate_limiter->take(std::move(buckets));
    LimitOutcome outcome;
    switch (taken.kind) {
      case cluster::RateDecision::Kind::allowed:
        outcome.kind = LimitOutcome::Kind::allowed;
        break;
      case cluster::RateDecision::Kind::limited:
        outcome.kind = LimitOutcome::Kind::limited;
        break;
      case cluster::RateDecision::Kind::unavailable:
        outcome.kind = LimitOutcome::Kind::unavailable;
        break;
    }
    outcome.exhausted = taken.exhausted;
    outcome.retry_after = taken.retry_after;
    outcome.error = taken.error;
    decision = pipeline_.on_limits(exchange, outcome);
  }
  co_return decision;
}

awaitable<Confirmation> Gateway::ask_client(http::Responder& out, const Exchange& exchange,
                                            const mcp::Json& elicitation_params) {
  const auto answer =
      co_await ask_client_request(out, exchange, "elicitation/create", elicitation_params);
  co_return confirmation_from(answer);
}

awaitable<void> Gateway::streamable_post(http::Request& request, const http::RequestOrigin& origin,
                                         http::Responder& out, upstream::Upstream& upstream,
                                         const Caller& caller, RequestAdmission& admitted) {
  const std::string_view accept = request[bhttp::field::accept];
  if (!accepts(accept, "application/json") || !accepts(accept, "text/event-stream")) {
    co_await out.send(jsonrpc_error(406, nullptr, mcp::error_code::invalid_request,
                                    "Not Acceptable: Accept must list both application/json and "
                                    "text/event-stream"));
    co_return;
  }
  auto posted = read_posted_message(request);
  if (posted.rejection) {
    co_await out.send(std::move(*posted.rejection));
    co_return;
  }
  const mcp::Message& message = *posted.message;
  const mcp::Json& id = message.id();
  if (auto refusal = admit_message(admitted, request, message, origin, caller, upstream)) {
    co_await out.send(overload_response(*refusal, id));
    co_return;
  }
  // MCP 2026-07-28: the revision is per request, and such a request has no session.
  if (is_stateless_request(request, message)) {
    auto checked = check_stateless_request(request, message);
    if (checked.rejection) {
      co_await out.send(std::move(*checked.rejection));
      co_return;
    }
    co_await stateless_post(request, origin, out, upstream, caller, message, std::move(checked));
    co_return;
  }
  if (auto rejection = check_protocol_version(request, id)) {
    co_await out.send(std::move(*rejection));
    co_return;
  }

  SessionLookup session;
  if (!message.is_initialize()) {
    session = open_session(request, options_, upstream.name(),
                           mcp::SessionTransport::streamable_http, id, caller);
    if (session.rejection) {
      co_await out.send(std::move(*session.rejection));
      co_return;
    }
    if (auto refusal = admit_session(admitted, request, &message, origin, caller, upstream)) {
      co_await out.send(overload_response(*refusal, id));
      co_return;
    }
  }

  // The client's answer to a question the gateway itself asked (an approval) ends here.
  if (message.is_response() && session.claims &&
      client_requests_.consume(ClientRequests::session_key(*session.claims), message)) {
    co_await out.send(http::Response{bhttp::status::accepted, 11});
    co_return;
  }
  // A stateless server behind a session client: the gateway plays the session's part.
  const auto* revision = revisions_.at(upstream.name()).get();
  bool stateless_upstream = revision->era() == UpstreamRevision::Era::stateless;
  if (revision->era() == UpstreamRevision::Era::unknown)
    stateless_upstream = co_await upstream_era(upstream) == UpstreamRevision::Era::stateless;
  if (stateless_upstream &&
      co_await answer_for_stateless_upstream(out, upstream, caller, origin, message,
                                             request[mcp::header::session_id]))
    co_return;

  Exchange exchange;
  exchange.upstream = upstream.name();
  exchange.message = &message;
  exchange.session = session.claims ? &*session.claims : nullptr;
  exchange.identity = caller;
  exchange.client_address = client_address(origin);
  exchange.protocol_version = std::string(request[mcp::header::protocol_version]);
  if (exchange.protocol_version.empty() && session.claims)
    exchange.protocol_version = session.claims->protocol_version;
  if (exchange.protocol_version.empty() && message.is_initialize() && message.params())
    exchange.protocol_version = message.params()->value("protocolVersion", std::string());
  exchange.upstream_protocol_version = exchange.protocol_version;
  exchange.session_id = request[mcp::header::session_id];
  exchange.incoming_txn_token = request["Txn-Token"];
  exchange.incoming_traceparent = request["traceparent"];
  exchange.incoming_tracestate = request["tracestate"];
  if (pipeline_.wants_request_headers()) exchange.request_headers = request_headers_json(request);

  auto decision = co_await judge(exchange);
  // Asking the human first means answering on an SSE stream: the question goes out on it.
  bool streaming = false;
  if (decision.kind == StageDecision::Kind::confirm) {
    exchange.http_status = 200;
    if (!co_await out.begin_stream(event_stream_header())) {
      exchange.client_gone = true;
      pipeline_.on_complete(exchange);
      co_return;
    }
    streaming = true;
    const auto confirmation = co_await ask_client(out, exchange, decision.confirm_params);
    exchange.client_gone = confirmation.outcome == Confirmation::Outcome::client_gone;
    decision = co_await judge_answer(exchange, confirmation);
    if (exchange.client_gone) {
      pipeline_.on_complete(exchange);
      co_return;
    }
  }
  if (decision.answered()) {
    exchange.outcome = Outcome::answered_by_gateway;
    if (streaming) {
      if (co_await write_answer_event(out, exchange, pipeline_, std::move(decision.body)))
        co_await out.end_stream();
    } else {
      co_await send_answer(out, exchange, pipeline_,
                           json_response(decision.http_status, std::move(decision.body)));
    }
    pipeline_.on_complete(exchange);
    co_return;
  }

  if (stateless_upstream) {
    co_await forward_to_stateless(out, exchange, upstream, streaming);
    pipeline_.on_complete(exchange);
    co_return;
  }

  upstream::ForwardContext context;
  context.protocol_version = exchange.protocol_version;
  context.txn_token = exchange.txn_token;
  context.traceparent = exchange.trace.upstream_traceparent;
  context.tracestate = exchange.trace.trace_state;
  if (upstream.traits().needs_initialize_replay) context.caller = caller_key(caller.get(), origin);
  std::string body = exchange.rewritten_body.empty() ? std::move(request.body())
                                                     : std::move(exchange.rewritten_body);
  exchange.forwarded_at = Clock::now();
  upstream::UpstreamReply reply;
  if (message.is_request() && mcp::may_require_input(message.method()) &&
      !upstream.traits().replies_at_once) {
    auto answered = co_await unless_client_leaves(
        out, upstream.send(message, std::move(body), exchange.session, context));
    if (!answered) {
      mark_abandoned_by_client(exchange);
      pipeline_.on_complete(exchange);
      co_return;
    }
    reply = std::move(*answered);
  } else {
    reply = co_await upstream.send(message, std::move(body), exchange.session, context);
  }
  exchange.upstream_wait = Clock::now() - exchange.forwarded_at;

  std::string sealed_session;
  if (message.is_initialize() && (reply.kind == upstream::UpstreamReply::Kind::message ||
                                  reply.kind == upstream::UpstreamReply::Kind::stream)) {
    mcp::SessionClaims claims;
    claims.upstream = upstream.name();
    claims.upstream_session = reply.upstream_session;
    claims.created_at = unix_now();
    if (caller) claims.subject = caller->subject;
    if (const auto* params = message.params()) {
      claims.client_name = mcp::client_name_of(*params);
      if (upstream.traits().needs_initialize_replay) claims.initialize_params = *params;
      if (const auto capabilities = params->find("capabilities"); capabilities != params->end())
        claims.client_capabilities = *capabilities;
    }
    sealed_session = options_.sealer->seal(claims, mcp::SessionTransport::streamable_http);
  }

  if (reply.kind != upstream::UpstreamReply::Kind::stream) {
    if (reply.kind == upstream::UpstreamReply::Kind::unavailable) {
      log::warn("exchange ", message.method(), " on '", upstream.name(), "' failed: ", reply.body);
      exchange.outcome = Outcome::upstream_unavailable;
    } else if (reply.kind == upstream::UpstreamReply::Kind::message) {
      pipeline_.on_upstream_message(exchange, reply.body);
    } else if (reply.kind == upstream::UpstreamReply::Kind::overloaded) {
      exchange.outcome = Outcome::overloaded;
    } else if (reply.kind != upstream::UpstreamReply::Kind::accepted) {
      exchange.outcome = Outcome::rejected;
    }
    if (streaming) {
      if (co_await write_answer_event(out, exchange, pipeline_,
                                      reply_as_message(reply, id, upstream.name())))
        co_await out.end_stream();
      pipeline_.on_complete(exchange);
      co_return;
    }
    auto response = reply_to_response(reply, id, upstream.name());
    if (!sealed_session.empty()) response.set(mcp::header::session_id, sealed_session);
    co_await send_answer(out, exchange, pipeline_, std::move(response));
    pipeline_.on_complete(exchange);
    co_return;
  }

  exchange.http_status = 200;
  const StreamCount counted(active_streams_);
  auto pump = co_await EventPump::start(std::move(reply.stream));
  if (!streaming && !co_await out.begin_stream(stream_header(sealed_session))) {
    exchange.client_gone = true;
    pump->stop();
    pipeline_.on_complete(exchange);
    co_return;
  }
  const mcp::Json* request_id = message.is_request() ? &id : nullptr;
  auto outcome =
      co_await relay_events(out, *pump, exchange, pipeline_, request_id, options_.sse_keep_alive);
  pump->stop();
  if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();

  // The stream ended without the response: tell the client its request failed instead of leaving
  // it waiting — unless the upstream made the stream resumable. Then the upstream closed it early,
  // or this replica's drain deadline cut it while the call goes on at the server: the client
  // resumes it with Last-Event-ID, through any replica.
  const bool resumable_early_close = !outcome.upstream_failed && outcome.resumable;
  if (request_id && !outcome.response_seen && !outcome.client_gone && resumable_early_close &&
      outcome.cancelled) {
    exchange.outcome = Outcome::left_to_resumption;
    log::info("exchange ", message.method(), " id=", request_id->dump(), " on '", upstream.name(),
              "' outlived the drain: its stream ends without an error, and the client can resume "
              "it through another replica (Last-Event-ID)");
  }
  if (request_id && !outcome.response_seen && !outcome.client_gone && !resumable_early_close) {
    const std::string reason =
        outcome.cancelled ? "the gateway is shutting down; the request to upstream '" +
                                upstream.name() + "' was abandoned"
        : outcome.upstream_failed
            ? outcome.failure
            : "upstream '" + upstream.name() + "' closed the stream without responding";
    exchange.outcome = Outcome::upstream_stream_broken;
    co_await write_answer_event(
        out, exchange, pipeline_,
        mcp::make_error_response(*request_id, mcp::error_code::upstream_unavailable, reason));
    log::warn("exchange ", message.method(), " id=", request_id->dump(), " on '", upstream.name(),
              "': ", reason);
  }
  // A client that left before its answer: the record says so (it said "ok" so far).
  if (outcome.client_gone && request_id && !outcome.response_seen)
    mark_abandoned_by_client(exchange);
  exchange.client_gone = exchange.client_gone || outcome.client_gone;
  if (!exchange.client_gone) co_await out.end_stream();
  pipeline_.on_complete(exchange);
}

awaitable<void> Gateway::streamable_get(http::Request& request, const http::RequestOrigin& origin,
                                        http::Responder& out, upstream::Upstream& upstream,
                                        const Caller& caller, RequestAdmission& admitted) {
  if (!accepts(request[bhttp::field::accept], "text/event-stream")) {
    co_await out.send(jsonrpc_error(406, nullptr, mcp::error_code::invalid_request,
                                    "Not Acceptable: Accept must list text/event-stream"));
    co_return;
  }
  if (auto rejection = check_protocol_version(request, nullptr)) {
    co_await out.send(std::move(*rejection));
    co_return;
  }
  if (mcp::is_stateless_protocol_version(request[mcp::header::protocol_version])) {
    co_await out.send(stateless_method_not_allowed("GET"));
    co_return;
  }
  auto session = open_session(request, options_, upstream.name(),
                              mcp::SessionTransport::streamable_http, nullptr, caller);
  if (session.rejection) {
    co_await out.send(std::move(*session.rejection));
    co_return;
  }
  auto refusal = admit_session(admitted, request, nullptr, origin, caller, upstream);
  if (!refusal) refusal = admission_.admit_stream(admitted.stream);
  if (refusal) {
    co_await out.send(overload_response(*refusal, nullptr));
    co_return;
  }
  if (revisions_.at(upstream.name())->era() == UpstreamRevision::Era::stateless) {
    co_await listen_for_session_client(out, upstream, *session.claims, caller);
    co_return;
  }
  upstream::ForwardContext context;
  context.protocol_version = std::string(request[mcp::header::protocol_version]);
  context.last_event_id = std::string(request[mcp::header::last_event_id]);
  auto reply = co_await upstream.listen(*session.claims, context);
  if (reply.kind != upstream::UpstreamReply::Kind::stream) {
    if (reply.kind == upstream::UpstreamReply::Kind::not_supported) {
      co_await out.send(no_standalone_stream(upstream.name(), "offers"));
      co_return;
    }
    co_await out.send(reply_to_response(reply, nullptr, upstream.name()));
    co_return;
  }
  Exchange exchange;
  exchange.upstream = upstream.name();
  exchange.session = &*session.claims;
  exchange.identity = caller;
  co_await relay_standalone_stream(out, exchange, std::move(reply.stream));
}

awaitable<void> Gateway::relay_standalone_stream(
    http::Responder& out, Exchange& exchange, std::unique_ptr<upstream::ReplyStream> stream,
    const mcp::Json* request_id, std::string* held_response,
    const std::function<bool(std::string_view)>& on_event) {
  exchange.http_status = 200;
  const StreamCount counted(active_streams_);
  auto pump = co_await EventPump::start(std::move(stream));
  if (!co_await out.begin_stream(event_stream_header())) {
    pump->stop();
    co_return;
  }
  // A listen stream never ends by itself: shutdown closes it at once (the client reconnects).
  out.set_interruptible(true);
  auto outcome = co_await relay_events(out, *pump, exchange, pipeline_, request_id,
                                       options_.sse_keep_alive, held_response, on_event);
  pump->stop();
  if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();
  out.set_interruptible(false);
  if (!outcome.client_gone) co_await out.end_stream();
}

awaitable<void> Gateway::streamable_delete(http::Request& request, http::Responder& out,
                                           upstream::Upstream& upstream, const Caller& caller) {
  if (mcp::is_stateless_protocol_version(request[mcp::header::protocol_version])) {
    co_await out.send(stateless_method_not_allowed("DELETE"));
    co_return;
  }
  auto session = open_session(request, options_, upstream.name(),
                              mcp::SessionTransport::streamable_http, nullptr, caller);
  if (session.rejection) {
    co_await out.send(std::move(*session.rejection));
    co_return;
  }
  upstream::ForwardContext context;
  context.protocol_version = std::string(request[mcp::header::protocol_version]);
  auto reply = co_await upstream.end_session(*session.claims, context);
  if (reply.kind == upstream::UpstreamReply::Kind::accepted ||
      reply.kind == upstream::UpstreamReply::Kind::session_not_found) {
    options_.ended_sessions->add(request[mcp::header::session_id],
                                 session.claims->created_at + options_.session_max_age.count());
    forget_unsealed(request[mcp::header::session_id], upstream.name());
    admission_.sessions().end(request[mcp::header::session_id]);
  }
  if (reply.kind == upstream::UpstreamReply::Kind::accepted) {
    co_await out.send(http::Response{bhttp::status::ok, 11});
    co_return;
  }
  co_await out.send(reply_to_response(reply, nullptr, upstream.name()));
}

}  // namespace membrane::gateway
