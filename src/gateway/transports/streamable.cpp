// The Streamable HTTP downstream transport (MCP 2025-11-25 §transports, and the 2025-06-18 /
// 2025-03-26 clients that negotiate down to it): POST, GET and DELETE on /mcp/<name>, sessions
// sealed in Mcp-Session-Id. A 2026-07-28 request on the same URL goes to stateless.cpp.
#include "gateway/gateway.hpp"

#include <unordered_map>

#include "gateway/responses.hpp"
#include "gateway/transports/event_relay.hpp"
#include "gateway/transports/http_port.hpp"
#include "gateway/transports/upstream_replies.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {
namespace bhttp = http::bhttp;

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
// The claims are shared with the requests that use them, not copied for each: besides their
// strings they hold the client's capabilities and, for upstreams that replay `initialize` (stdio),
// its whole parameters, JSON trees of several allocations each.
struct UnsealedEntry {
  std::shared_ptr<const mcp::SessionClaims> claims;
  mcp::SessionTransport transport;
};
thread_local std::unordered_map<std::string, UnsealedEntry> recently_unsealed;

// The cache key of a sealed id on a route, written into one buffer per thread: looking an id up
// allocates nothing.
const std::string& unsealed_key(std::string_view sealed, std::string_view upstream) {
  thread_local std::string key;
  key.assign(upstream).push_back('\n');
  key.append(sealed);
  return key;
}

std::shared_ptr<const mcp::SessionClaims> unseal_cached(const mcp::SessionSealer& sealer,
                                                        std::string_view sealed,
                                                        std::string_view upstream,
                                                        mcp::SessionTransport transport) {
  constexpr std::size_t capacity = 4096;
  const std::string& key = unsealed_key(sealed, upstream);
  if (const auto it = recently_unsealed.find(key);
      it != recently_unsealed.end() && it->second.transport == transport) {
    return it->second.claims;
  }
  auto unsealed = sealer.unseal(sealed, upstream, transport);
  if (!unsealed) return nullptr;
  auto claims = std::make_shared<const mcp::SessionClaims>(std::move(*unsealed));
  if (recently_unsealed.size() >= capacity) recently_unsealed.clear();
  recently_unsealed.insert_or_assign(key, UnsealedEntry{claims, transport});
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
  std::shared_ptr<const mcp::SessionClaims> claims;
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
                                                     const mcp::Json& id, ServedRevisions served) {
  const std::string_view version = request[mcp::header::protocol_version];
  if (version.empty()) return std::nullopt;
  for (const auto known : served)
    if (known == version) return std::nullopt;
  return unsupported_version_response(id, version, served);
}

// MCP 2026-07-28 removed these requests: answered as a 2026-07-28 server answers them, whatever
// the upstream behind the route speaks.
http::Response removed_in_stateless(const mcp::Json& id, std::string_view method) {
  const std::string_view instead =
      method == "initialize" ? "there is no handshake: server/discover describes the server"
      : method == "ping"     ? "there is no ping"
      : method == "logging/setLevel"
          ? "set _meta[\"io.modelcontextprotocol/logLevel\"] on each request"
          : "subscribe with resourceSubscriptions in subscriptions/listen";
  return jsonrpc_error(404, id, mcp::error_code::method_not_found,
                       "Method not found: " + std::string(method) + " is not part of MCP " +
                           std::string(mcp::stateless_protocol_version) + " (" +
                           std::string(instead) + ")");
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

}  // namespace

SessionClientPort Gateway::session_client_port(http::Responder& out,
                                               const mcp::SessionClaims* session) const {
  return SessionClientPort(out, session,
                           SessionClientPort::Asking{&client_requests_, options_.sse_keep_alive,
                                                     options_.approval_timeout});
}

// A POST checked up to where it is forwarded: its message and session, or the answer that ends it.
// The checks are apart from the coroutine that forwards, and their answers are one member here,
// because every answer sent from a coroutine is a temporary held in its frame: with a dozen of
// them the frame passed 1 KiB, which Asio does not recycle per thread (malloc's slow path on
// every call).
struct CheckedPost {
  std::optional<mcp::Message> message;
  std::shared_ptr<const mcp::SessionClaims> claims;  // null for initialize
  bool stateless = false;                            // a 2026-07-28 request, checked apart
  std::optional<http::Response> answer;
};

CheckedPost Gateway::check_post(const http::Request& request, const http::RequestOrigin& origin,
                                const upstream::Upstream& upstream, const Caller& caller,
                                RequestAdmission& admitted) {
  CheckedPost post;
  const std::string_view accept = request[bhttp::field::accept];
  if (!accepts(accept, "application/json") || !accepts(accept, "text/event-stream")) {
    post.answer = jsonrpc_error(406, nullptr, mcp::error_code::invalid_request,
                                "Not Acceptable: Accept must list both application/json and "
                                "text/event-stream");
    return post;
  }
  auto posted = read_posted_message(request);
  if (posted.rejection) {
    // A removed method is not there to have its params checked.
    if (mcp::is_stateless_protocol_version(request[mcp::header::protocol_version]) &&
        mcp::is_removed_in_stateless(posted.method)) {
      post.answer = removed_in_stateless(posted.id, posted.method);
    } else {
      post.answer = std::move(posted.rejection);
    }
    return post;
  }
  post.message = std::move(posted.message);
  const mcp::Message& message = *post.message;
  const mcp::Json& id = message.id();
  if (auto refusal = admit_message(admitted, request, message, origin, caller, upstream)) {
    post.answer = overload_response(*refusal, id);
    return post;
  }
  // MCP 2026-07-28: the revision is per request, and such a request has no session.
  if (is_stateless_request(request, message)) {
    post.stateless = true;
    return post;
  }
  // An unknown revision on a request with neither a session nor initialize can only mean a
  // sessionless one: what the route serves of those is what server/discover says.
  const bool sessionless =
      request[mcp::header::session_id].empty() && !message.is_initialize() &&
      !mcp::is_supported_protocol_version(request[mcp::header::protocol_version]);
  if (auto rejection =
          check_protocol_version(request, id, sessionless ? stateless_revisions : every_revision)) {
    post.answer = std::move(rejection);
    return post;
  }
  if (message.is_initialize()) return post;

  auto session = open_session(request, options_, upstream.name(),
                              mcp::SessionTransport::streamable_http, id, caller);
  if (session.rejection) {
    post.answer = std::move(session.rejection);
    return post;
  }
  if (auto refusal = admit_session(admitted, request, &message, origin, caller, upstream)) {
    post.answer = overload_response(*refusal, id);
    return post;
  }
  // The client's answer to a question the gateway itself asked (an approval) ends here.
  if (message.is_response() &&
      client_requests_.consume(ClientRequests::session_key(*session.claims), message)) {
    post.answer = http::Response{bhttp::status::accepted, 11};
    return post;
  }
  post.claims = std::move(session.claims);
  return post;
}

awaitable<void> Gateway::streamable_post(http::Request& request, const http::RequestOrigin& origin,
                                         http::Responder& out, upstream::Upstream& upstream,
                                         const Caller& caller, RequestAdmission& admitted) {
  CheckedPost post = check_post(request, origin, upstream, caller, admitted);
  if (post.answer) {
    co_await out.send(std::move(*post.answer));
    co_return;
  }
  const mcp::Message& message = *post.message;
  if (post.stateless) {
    co_await streamable_stateless_post(request, origin, out, upstream, caller, message);
    co_return;
  }
  // A server that speaks only 2026-07-28 behind a session client: the gateway plays the
  // session's part. A server that also takes sessions gives the client one of its own.
  bool stateless_upstream = false;
  if (message.is_initialize()) {
    stateless_upstream = co_await bridges_session_clients(upstream);
  } else if (post.claims) {
    stateless_upstream = is_bridged_session(*post.claims);
  }
  const mcp::SessionClaims* claims = post.claims.get();
  std::string protocol_version(request[mcp::header::protocol_version]);
  if (protocol_version.empty() && claims) protocol_version = claims->protocol_version;
  if (protocol_version.empty() && message.is_initialize() && message.params())
    protocol_version = message.params()->value("protocolVersion", std::string());
  if (stateless_upstream) {
    co_await bridge_session_post(out, upstream, message, caller, request, origin,
                                 std::move(protocol_version), claims);
    co_return;
  }

  auto port = session_client_port(out, claims);
  ExchangeRunner runner(filters_, port,
                        session_exchange_request(upstream, message, claims, caller,
                                                 std::move(protocol_version), request, origin));
  if (co_await runner.run_request_filters() != ExchangeRunner::Verdict::forward) co_return;
  co_await forward_to_session_upstream(port, runner, upstream, request, caller);
}

ExchangeRequest Gateway::session_exchange_request(
    const upstream::Upstream& upstream, const mcp::Message& message,
    const mcp::SessionClaims* claims, const Caller& caller, std::string protocol_version,
    const http::Request& request, const http::RequestOrigin& origin) const {
  ExchangeRequest described;
  described.upstream = upstream.name();
  described.routing = upstream.member_routing();
  described.message = &message;
  described.session = claims;
  described.identity = caller;
  described.protocol_version = std::move(protocol_version);
  described.http = &request;
  described.origin = &origin;
  return described;
}

awaitable<void> Gateway::streamable_stateless_post(
    http::Request& request, const http::RequestOrigin& origin, http::Responder& out,
    upstream::Upstream& upstream, const Caller& caller, const mcp::Message& message) {
  auto checked = check_stateless_request(request, message, stateless_revisions);
  if (checked.rejection) {
    co_await out.send(std::move(*checked.rejection));
    co_return;
  }
  if (message.is_request() && mcp::is_removed_in_stateless(message.method())) {
    co_await out.send(removed_in_stateless(message.id(), message.method()));
    co_return;
  }
  co_await stateless_post(request, origin, out, upstream, caller, message, std::move(checked));
}

awaitable<void> Gateway::bridge_session_post(http::Responder& out, upstream::Upstream& upstream,
                                             const mcp::Message& message, const Caller& caller,
                                             http::Request& request,
                                             const http::RequestOrigin& origin,
                                             std::string protocol_version,
                                             const mcp::SessionClaims* claims) {
  BridgedMessage bridged;
  bridged.upstream = &upstream;
  bridged.message = &message;
  bridged.caller = caller;
  bridged.http = &request;
  bridged.origin = &origin;
  bridged.protocol_version = std::move(protocol_version);
  bridged.session_id = request[mcp::header::session_id];
  bridged.claims = claims;
  co_await serve_bridged(out, bridged);
}

// The frames of the coroutines a call goes through stay under 1 KiB (what Asio recycles per
// thread): the hop's context, the reply and the stream relay each live in a coroutine of their own.
awaitable<void> Gateway::forward_to_session_upstream(SessionClientPort& port,
                                                     ExchangeRunner& runner,
                                                     upstream::Upstream& upstream,
                                                     http::Request& request, const Caller& caller) {
  Exchange& exchange = runner.exchange();
  const mcp::Message& message = *exchange.message;
  const mcp::Json& id = message.id();
  auto answered = co_await send_session_message(port, runner, upstream, request);
  if (!answered) {
    runner.abandoned_by_client();
    co_return;
  }
  upstream::UpstreamReply& reply = *answered;
  runner.upstream_answered();

  std::string sealed_session;
  if (message.is_initialize() && (reply.kind == upstream::UpstreamReply::Kind::message ||
                                  reply.kind == upstream::UpstreamReply::Kind::stream)) {
    sealed_session =
        options_.sealer->seal(claims_after_initialize(upstream, message, reply, caller),
                              mcp::SessionTransport::streamable_http);
  }
  if (reply.kind == upstream::UpstreamReply::Kind::stream) {
    co_await relay_session_stream(port, runner, upstream, std::move(reply.stream),
                                  std::move(sealed_session));
    co_return;
  }

  exchange.outcome = outcome_of(reply);
  if (reply.kind == upstream::UpstreamReply::Kind::unavailable)
    log::warn("exchange ", message.method(), " on '", upstream.name(), "' failed: ", reply.body);
  if (reply.kind == upstream::UpstreamReply::Kind::message) runner.on_upstream_message(reply.body);
  if (port.streaming()) {
    co_await runner.answer_message(reply_as_message(reply, id, upstream.name()));
    co_return;
  }
  auto response = reply_to_response(reply, id, upstream.name());
  if (!sealed_session.empty()) response.set(mcp::header::session_id, sealed_session);
  co_await runner.answer(std::move(response));
}

awaitable<std::optional<upstream::UpstreamReply>> Gateway::send_session_message(
    SessionClientPort& port, ExchangeRunner& runner, upstream::Upstream& upstream,
    http::Request& request) {
  const Exchange& exchange = runner.exchange();
  const mcp::Message& message = *exchange.message;
  const auto context = runner.forward_context(upstream);
  std::string body = runner.forwarded_body(std::move(request.body()));
  runner.forwarding();
  // A call that may wait for the client's input is abandoned when the client leaves.
  if (message.is_request() && mcp::may_require_input(message.method()) &&
      !upstream.traits().replies_at_once) {
    co_return co_await unless_client_leaves(
        port.responder(), upstream.send(message, std::move(body), exchange.session, context));
  }
  co_return co_await upstream.send(message, std::move(body), exchange.session, context);
}

awaitable<void> Gateway::relay_session_stream(SessionClientPort& port, ExchangeRunner& runner,
                                              upstream::Upstream& upstream,
                                              std::unique_ptr<upstream::ReplyStream> stream,
                                              std::string sealed_session) {
  Exchange& exchange = runner.exchange();
  const mcp::Message& message = *exchange.message;
  http::Responder& out = port.responder();
  exchange.http_status = 200;
  const StreamCount counted(active_streams_);
  auto pump = co_await EventPump::start(std::move(stream));
  if (!co_await port.begin_stream(stream_header(sealed_session))) {
    exchange.client_gone = true;
    pump->stop();
    co_return;
  }
  const mcp::Json* request_id = message.is_request() ? &message.id() : nullptr;
  auto outcome = co_await relay_events(out, *pump, &runner, request_id, options_.sse_keep_alive);
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
    co_await runner.answer_message(
        mcp::make_error_response(*request_id, mcp::error_code::upstream_unavailable, reason),
        false);
    log::warn("exchange ", message.method(), " id=", request_id->dump(), " on '", upstream.name(),
              "': ", reason);
  }
  // A client that left before its answer: the record says so (it said "ok" so far).
  if (outcome.client_gone && request_id && !outcome.response_seen) runner.abandoned_by_client();
  exchange.client_gone = exchange.client_gone || outcome.client_gone;
  if (!exchange.client_gone) co_await out.end_stream();
}

awaitable<void> Gateway::streamable_get(http::Request& request, const http::RequestOrigin& origin,
                                        http::Responder& out, upstream::Upstream& upstream,
                                        const Caller& caller, RequestAdmission& admitted) {
  if (!accepts(request[bhttp::field::accept], "text/event-stream")) {
    co_await out.send(jsonrpc_error(406, nullptr, mcp::error_code::invalid_request,
                                    "Not Acceptable: Accept must list text/event-stream"));
    co_return;
  }
  if (auto rejection = check_protocol_version(request, nullptr, every_revision)) {
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
  if (is_bridged_session(*session.claims)) {
    co_await listen_for_session_client(out, upstream, *session.claims,
                                       std::string(request[mcp::header::session_id]));
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
  co_await relay_standalone_stream(out, std::move(reply.stream));
}

// A listen stream: no filter looks at it (it answers no request of the client's).
awaitable<void> Gateway::relay_standalone_stream(http::Responder& out,
                                                 std::unique_ptr<upstream::ReplyStream> stream) {
  const StreamCount counted(active_streams_);
  auto pump = co_await EventPump::start(std::move(stream));
  if (!co_await out.begin_stream(event_stream_header())) {
    pump->stop();
    co_return;
  }
  // A listen stream never ends by itself: shutdown closes it at once (the client reconnects).
  out.set_interruptible(true);
  auto outcome = co_await relay_events(out, *pump, nullptr, nullptr, options_.sse_keep_alive);
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
    bridged_sessions_.forget(std::string(request[mcp::header::session_id]));
    admission_.sessions().end(request[mcp::header::session_id]);
  }
  if (reply.kind == upstream::UpstreamReply::Kind::accepted) {
    co_await out.send(http::Response{bhttp::status::ok, 11});
    co_return;
  }
  co_await out.send(reply_to_response(reply, nullptr, upstream.name()));
}

}  // namespace membrane::gateway
