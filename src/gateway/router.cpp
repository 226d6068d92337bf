// The gateway's front door: health and readiness, the Origin/Host check, the well-known
// endpoints (transaction-token keys, protected-resource metadata, token exchange),
// authentication, and routing of /mcp/<name> and /sse/<name> to their transports.
#include "gateway/gateway.hpp"

#include <ctime>
#include <stdexcept>
#include <unordered_map>

#include "gateway/responses.hpp"
#include "gateway/transports/legacy_sse.hpp"
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
                 FilterChain filters)
    : options_(std::move(options)),
      filters_(std::move(filters)),
      admission_(options_.admission, options_.overload_stats),
      services_{options_, filters_, client_requests_, admission_, active_streams_, *this} {
  if (!options_.rate_limiter) options_.rate_limiter = cluster::make_local_rate_limiter();
  if (!options_.ended_sessions) options_.ended_sessions = std::make_shared<EndedSessions>();
  for (auto& upstream : upstreams) {
    std::string name = upstream->name();
    revisions_.emplace(name, std::make_unique<UpstreamRevision>());
    upstreams_.emplace(std::move(name), std::move(upstream));
  }
  legacy_ = std::make_unique<LegacySseTransport>(services_);
  if (!options_.default_upstream.empty() && !find_upstream(options_.default_upstream))
    throw std::invalid_argument("default_upstream '" + options_.default_upstream +
                                "' names no configured upstream");
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

// Most requests are calls to a named upstream: they go on from a frame of a few words. Every other
// route is in route_request, whose many answers, each a temporary held across its co_await, make
// a frame of several KiB; a coroutine frame over 1 KiB is not recycled by the worker thread and
// costs a trip through malloc's slow path on every request.
awaitable<void> Gateway::handle(http::Request& request, const http::RequestOrigin& origin,
                                http::Responder& out) {
  if (auto* upstream = unauthenticated_mcp_route(request)) {
    // DNS-rebinding defence before anything else is looked at, as on every other route.
    if (auto refusal = refuse_foreign_origin(request, origin)) {
      co_await out.send(std::move(*refusal));
      co_return;
    }
    co_await handle_streamable(request, origin, out, *upstream, Caller{});
    co_return;
  }
  co_await route_request(request, origin, out);
}

upstream::Upstream* Gateway::unauthenticated_mcp_route(const http::Request& request) const {
  if (options_.authenticator) return nullptr;
  const std::string_view path = target_path(request.target());
  upstream::Upstream* upstream = nullptr;
  std::string_view rest;
  if (path == "/mcp") {
    if (!options_.default_upstream.empty()) upstream = find_upstream(options_.default_upstream);
  } else if (const auto name = path_segment(path, "/mcp/", rest); !name.empty() && rest.empty()) {
    upstream = find_upstream(name);
  }
  return upstream;
}

awaitable<void> Gateway::route_request(http::Request& request, const http::RequestOrigin& origin,
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
  // The default route: /mcp and /sse are the default upstream's, for clients that rewrite any
  // path to one of them. Its legacy message endpoint is /sse/<name>/message, as for any other.
  if (!options_.default_upstream.empty() && (path == "/mcp" || path == "/sse")) {
    auto* upstream = find_upstream(options_.default_upstream);
    Authentication authentication;
    if (options_.authenticator)
      authentication = co_await authenticate(request, origin, upstream->name(), path);
    if (authentication.refusal) {
      co_await out.send(std::move(*authentication.refusal));
      co_return;
    }
    if (path == "/mcp") {
      co_await handle_streamable(request, origin, out, *upstream, authentication.caller);
    } else {
      co_await legacy_->handle(request, origin, out, *upstream, false, authentication.caller);
    }
    co_return;
  }
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
                        "/sse/<name> (HTTP+SSE), and at /mcp and /sse when default_upstream "
                        "names one; configured: " +
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
  auto sse_name = mcp_name.empty() ? path_segment(resource_path, "/sse/", rest) : mcp_name;
  if (!options_.default_upstream.empty() && (resource_path == "/mcp" || resource_path == "/sse"))
    sse_name = options_.default_upstream;
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

}  // namespace membrane::gateway
