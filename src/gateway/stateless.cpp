// MCP 2026-07-28 on the gateway's /mcp/<name> URLs: stateless clients (every request carries its
// revision and the client's capabilities), stateless upstreams (server/discover, no session), and
// the bridges between those and the session revisions in both directions.
#include "gateway/event_relay.hpp"
#include "gateway/gateway.hpp"
#include "gateway/responses.hpp"
#include "gateway/revision.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/http/sse.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {
namespace bhttp = http::bhttp;

namespace {

// What a requestState the gateway seals is bound to.
constexpr std::string_view request_state_purpose = "request-state";
// The inputRequests key of the gateway's own question (a policy `ask`).
constexpr std::string_view approval_key = "io.membrane/approval";

std::string dump(const mcp::Json& json) {
  return json.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

std::string result_message(const mcp::Json& id, mcp::Json result) {
  return dump(mcp::Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
}

// The JSON-RPC response among an upstream reply's text, when it is one.
std::optional<mcp::Json> parse_response(std::string_view text) {
  auto parsed = json::parse_or_discarded(text);
  if (!parsed.is_object() || (!parsed.contains("result") && !parsed.contains("error")))
    return std::nullopt;
  return parsed;
}

// A session server does not take a closed connection as a cancellation (a 2026-07-28 server
// does): the gateway says it for the client that left.
awaitable<void> tell_session_cancelled(upstream::Upstream& upstream,
                                       const mcp::SessionClaims& session,
                                       const mcp::Json& request_id,
                                       std::string_view reason = "the client went away") {
  const mcp::Json cancelled = {{"jsonrpc", "2.0"},
                               {"method", "notifications/cancelled"},
                               {"params", {{"requestId", request_id}, {"reason", reason}}}};
  upstream::ForwardContext context;
  context.protocol_version = session.protocol_version;
  const mcp::Message message(mcp::MessageKind::notification, cancelled);
  co_await upstream.send(message, dump(cancelled), &session, context);
}

// Reads an upstream reply to the end of the response to `id` (a message, or the response event
// of a stream), for the gateway's own requests (discover, initialize).
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

std::string upstream_failure(const upstream::UpstreamReply& reply, std::string_view upstream) {
  using Kind = upstream::UpstreamReply::Kind;
  if (reply.kind == Kind::unavailable) return reply.body;
  return "upstream '" + std::string(upstream) + "' answered HTTP " +
         std::to_string(reply.http_status) + ": " + reply.body.substr(0, 300);
}

}  // namespace

// ---- Which revision an upstream speaks ---------------------------------------------------------

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
  auto reply = co_await upstream.send(message, dump(body), nullptr, context);
  if (reached) *reached = reply.kind != upstream::UpstreamReply::Kind::unavailable;
  auto response = co_await read_response(reply, id);
  if (!response || !response->contains("result")) co_return std::nullopt;
  co_return (*response)["result"];
}

awaitable<UpstreamRevision::Era> Gateway::upstream_era(upstream::Upstream& upstream) {
  auto& revision = *revisions_.at(upstream.name());
  if (const auto era = revision.era(); era != UpstreamRevision::Era::unknown) co_return era;
  const std::string_view declared = upstream.declared_protocol();
  if (!upstream.traits().may_be_stateless ||
      (!declared.empty() && !mcp::is_stateless_protocol_version(declared))) {
    revision.learn(UpstreamRevision::Era::session);
    co_return UpstreamRevision::Era::session;
  }
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
  if (stateless || (!declared.empty() && mcp::is_stateless_protocol_version(declared))) {
    revision.learn(UpstreamRevision::Era::stateless, discover ? *discover : mcp::Json());
    log::info("upstream '", upstream.name(), "' speaks MCP ", mcp::stateless_protocol_version,
              " (stateless)");
    co_return UpstreamRevision::Era::stateless;
  }
  if (reached) {
    // An answer that is not a discover result (method not found, a session error) is a
    // session-era server; no answer at all says nothing yet.
    revision.learn(UpstreamRevision::Era::session);
    log::info("upstream '", upstream.name(), "' speaks MCP with sessions (no server/discover)");
  }
  co_return UpstreamRevision::Era::session;
}

// ---- Sessions the gateway holds for stateless clients of session servers -------------------

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

// ---- Downstream 2026-07-28 ---------------------------------------------------------------------

awaitable<void> Gateway::stateless_post(http::Request& request, const http::RequestOrigin& origin,
                                        http::Responder& out, upstream::Upstream& upstream,
                                        const Caller& caller, const mcp::Message& message,
                                        StatelessRequest checked) {
  const mcp::Json& id = message.id();
  auto era = revisions_.at(upstream.name())->era();
  if (era == UpstreamRevision::Era::unknown) era = co_await upstream_era(upstream);
  const bool stateless_upstream = era == UpstreamRevision::Era::stateless;

  if (message.is_notification()) {
    // A stateless server may want it; a session server has no session this notification is about.
    if (stateless_upstream) {
      upstream::ForwardContext context;
      add_stateless_headers(context, message, &request);
      auto reply = co_await upstream.send(message, std::move(request.body()), nullptr, context);
      co_await out.send(reply_to_response(reply, nullptr, upstream.name()));
    } else {
      co_await out.send(http::Response{bhttp::status::accepted, 11});
    }
    co_return;
  }

  // The client as the session stages know it, for this one request.
  mcp::SessionClaims client;
  client.upstream = upstream.name();
  client.subject = caller ? caller->subject : std::string();
  client.client_capabilities = checked.client_capabilities;
  client.client_name = mcp::client_name_of(mcp::Json{{"clientInfo", checked.client_info}});
  client.protocol_version = checked.protocol_version;
  client.created_at = unix_now();

  StatelessCall call;
  call.request = &request;
  if (upstream.traits().needs_initialize_replay) call.caller = caller_key(caller.get(), origin);
  call.upstream = &upstream;
  call.message = &message;
  call.client = &client;
  call.client_info = checked.client_info;

  // A requestState the gateway issued comes back here: it must be intact, this caller's, and
  // for this very request.
  if (const auto* params = message.params(); params && params->is_object()) {
    if (const auto state = params->find("requestState"); state != params->end()) {
      auto opened = state->is_string() ? options_.sealer->open_state(state->get<std::string>(),
                                                                     request_state_purpose)
                                       : std::nullopt;
      std::string problem;
      call.digest = request_digest(message);
      if (!opened || !opened->is_object()) {
        problem = "requestState was not issued by this gateway, or was altered";
      } else if (opened->value("up", std::string()) != upstream.name() ||
                 opened->value("sub", std::string()) != client.subject ||
                 opened->value("d", std::string()) != call.digest) {
        problem = "requestState belongs to another request";
      } else if (opened->value("x", std::int64_t{0}) < unix_now()) {
        problem = "requestState has expired; send the request again without it";
      }
      if (!problem.empty()) {
        co_await out.send(
            jsonrpc_error(400, id, mcp::error_code::invalid_params, "Invalid params: " + problem));
        co_return;
      }
      call.state = std::move(*opened);
      call.sealed_state = state->get<std::string>();
    }
    if (const auto responses = params->find("inputResponses");
        responses != params->end() && responses->is_object())
      call.input_responses = *responses;
  }

  Exchange exchange;
  exchange.upstream = upstream.name();
  exchange.message = &message;
  exchange.session = &client;
  exchange.identity = caller;
  exchange.client_address = client_address(origin);
  exchange.protocol_version = checked.protocol_version;
  exchange.upstream_protocol_version = stateless_upstream
                                           ? std::string(mcp::stateless_protocol_version)
                                           : std::string(mcp::latest_session_protocol_version);
  exchange.incoming_txn_token = request["Txn-Token"];
  exchange.incoming_traceparent = request["traceparent"];
  exchange.incoming_tracestate = request["tracestate"];
  if (pipeline_.wants_request_headers()) exchange.request_headers = request_headers_json(request);

  if (call.state.value("rl", false))
    exchange.limits_charged = co_await first_use_of_request_state(call.sealed_state);
  auto decision = co_await judge(exchange);
  if (decision.kind == StageDecision::Kind::confirm) {
    // A policy `ask`: the human is asked through the client, as an input request of ours.
    const bool approved_before = call.state.value("ap", false);
    // An answer counts only on the re-sent request the gateway asked it for.
    const auto answer = call.state.value("ask", false) ? call.input_responses.find(approval_key)
                                                       : call.input_responses.end();
    if (approved_before || answer != call.input_responses.end()) {
      ClientAnswer client_answer;
      client_answer.kind = ClientAnswer::Kind::answered;
      client_answer.response = {
          {"result", approved_before ? mcp::Json{{"action", "accept"}} : *answer}};
      decision = co_await judge_answer(exchange, confirmation_from(client_answer));
      call.approved = decision.kind == StageDecision::Kind::proceed;
    } else {
      mcp::Json input_requests = {
          {std::string(approval_key),
           {{"method", "elicitation/create"}, {"params", decision.confirm_params}}}};
      mcp::Json result = {{"resultType", "input_required"},
                          {"inputRequests", std::move(input_requests)},
                          {"requestState", seal_request_state(call, mcp::Json(), true)}};
      exchange.outcome = Outcome::input_required;
      co_await send_answer(out, exchange, pipeline_,
                           json_response(200, result_message(id, std::move(result))));
      pipeline_.on_complete(exchange);
      co_return;
    }
  }
  call.limits_charged = exchange.limits_charged;
  if (decision.answered()) {
    exchange.outcome = Outcome::answered_by_gateway;
    // The gateway's own results (a refusal) are complete results of this revision too.
    if (auto answer = parse_response(decision.body)) {
      mcp::mark_complete_result(*answer, message.method());
      decision.body = dump(*answer);
    }
    co_await send_answer(out, exchange, pipeline_,
                         json_response(decision.http_status, std::move(decision.body)));
    pipeline_.on_complete(exchange);
    co_return;
  }

  if (stateless_upstream) {
    co_await stateless_to_stateless(out, exchange, call);
  } else {
    co_await stateless_to_session(out, exchange, call);
  }
  pipeline_.on_complete(exchange);
}

// A request re-sent with the answers to an input request continues its call, which spent its
// rate-limit tokens on the first round. Each sealed state spares the charge once, in the same store
// as the limits (so across replicas with Redis): replaying one state does not make calls free.
awaitable<bool> Gateway::first_use_of_request_state(const std::string& sealed_state) const {
  cluster::BucketRequest once;
  once.key = "request-state\x1f" + hex_digest(sealed_state, 16);
  once.capacity = 1;
  // Full again only well after the state expired (x), when the state itself is refused.
  const double lifetime_seconds =
      std::max(1.0, std::chrono::duration<double>(options_.approval_timeout).count());
  once.refill_per_second = 1.0 / (2.0 * lifetime_seconds);
  std::vector<cluster::BucketRequest> buckets;
  buckets.push_back(std::move(once));
  const cluster::RateDecision taken = co_await options_.rate_limiter->take(std::move(buckets));
  // A store that cannot answer cannot check the limits either: the state is taken at its word.
  co_return taken.kind != cluster::RateDecision::Kind::limited;
}

std::string Gateway::seal_request_state(const StatelessCall& call, const mcp::Json& upstream_state,
                                        bool asking_approval) const {
  mcp::Json state = {
      {"up", call.upstream->name()},
      {"sub", call.client->subject},
      {"d", call.digest.empty() ? request_digest(*call.message) : call.digest},
      {"x",
       unix_now() +
           std::chrono::duration_cast<std::chrono::seconds>(options_.approval_timeout).count()}};
  if (call.approved) state["ap"] = true;
  if (call.limits_charged) state["rl"] = true;
  if (asking_approval) state["ask"] = true;
  if (!upstream_state.is_null()) state["us"] = upstream_state;
  if (!call.parked_id.empty()) state["c"] = call.parked_id;
  return options_.sealer->seal_state(state, request_state_purpose);
}

// The body to send upstream: the stages' rewrite (trace context) or the client's, without what
// only the gateway reads (its approval answer, its sealed state).
mcp::Json Gateway::upstream_body(const Exchange& exchange, const StatelessCall& call) const {
  mcp::Json body = exchange.rewritten_body.empty()
                       ? call.message->body()
                       : json::parse_or_discarded(exchange.rewritten_body);
  if (body.is_discarded()) body = call.message->body();
  auto& params = body["params"];
  if (!params.is_object()) return body;
  if (const auto responses = params.find("inputResponses"); responses != params.end()) {
    if (responses->is_object()) responses->erase(std::string(approval_key));
    if (!responses->is_object() || responses->empty()) params.erase(responses);
  }
  params.erase("requestState");
  if (const auto upstream_state = call.state.find("us"); upstream_state != call.state.end())
    params["requestState"] = *upstream_state;
  return body;
}

// What the client gets for an upstream's complete result or question: a question's state is
// wrapped in the gateway's, so the client's answer comes back through here (and a granted
// approval is not asked again).
void Gateway::finish_stateless_result(mcp::Json& response, const StatelessCall& call) const {
  const auto result = response.find("result");
  if (result == response.end() || !mcp::is_input_required(*result)) return;
  mcp::Json upstream_state;
  if (const auto state = result->find("requestState"); state != result->end())
    upstream_state = *state;
  (*result)["requestState"] = seal_request_state(call, upstream_state);
}

awaitable<void> Gateway::stateless_to_stateless(http::Responder& out, Exchange& exchange,
                                                StatelessCall& call) {
  const mcp::Message& message = *call.message;
  const mcp::Json& id = message.id();
  auto& upstream = *call.upstream;

  const std::string cache_key = ResultCache::request_key(upstream.name(), message);
  if (auto cached = result_cache_.find(cache_key, call.client->subject)) {
    std::string body = result_message(id, std::move(*cached));
    exchange.outcome = Outcome::cached;
    pipeline_.on_upstream_message(exchange, body);
    co_await send_answer(out, exchange, pipeline_, json_response(200, std::move(body)));
    co_return;
  }

  const mcp::Json body = upstream_body(exchange, call);
  upstream::ForwardContext context;
  add_stateless_headers(context, message, call.request);
  context.idempotent = !cache_key.empty();
  context.txn_token = exchange.txn_token;
  context.traceparent = exchange.trace.upstream_traceparent;
  context.tracestate = exchange.trace.trace_state;
  exchange.forwarded_at = Clock::now();
  auto answered =
      co_await unless_client_leaves(out, upstream.send(message, dump(body), nullptr, context));
  if (!answered) {
    mark_abandoned_by_client(exchange);
    co_return;
  }
  auto& reply = *answered;
  exchange.upstream_wait = Clock::now() - exchange.forwarded_at;

  using Kind = upstream::UpstreamReply::Kind;
  // `cacheable`: the text is what the upstream said (a response held back from a relayed stream
  // has been through the stages already, and the cache keeps only unfiltered results).
  const auto finish = [&](std::string& text, bool cacheable) {
    auto response = parse_response(text);
    if (!response) return;
    if (const auto result = response->find("result"); cacheable && result != response->end())
      result_cache_.store(cache_key, call.client->subject, *result);
    finish_stateless_result(*response, call);
    if (mcp::is_input_required(response->value("result", mcp::Json()))) {
      exchange.outcome = Outcome::input_required;
    }
    text = dump(*response);
  };
  if (reply.kind == Kind::message) {
    finish(reply.body, true);
    pipeline_.on_upstream_message(exchange, reply.body);
    co_await send_answer(out, exchange, pipeline_, json_response(200, std::move(reply.body)));
    co_return;
  }
  if (reply.kind != Kind::stream) {
    if (reply.kind == Kind::unavailable) {
      log::warn("exchange ", message.method(), " on '", upstream.name(), "' failed: ", reply.body);
      exchange.outcome = Outcome::upstream_unavailable;
    } else {
      exchange.outcome = Outcome::rejected;
    }
    co_await send_answer(out, exchange, pipeline_, reply_to_response(reply, id, upstream.name()));
    co_return;
  }

  exchange.http_status = 200;
  const StreamCount counted(active_streams_);
  auto pump = co_await EventPump::start(std::move(reply.stream));
  if (!co_await out.begin_stream(event_stream_header())) {
    exchange.client_gone = true;
    pump->stop();
    co_return;
  }
  if (message.method() == "subscriptions/listen") out.set_interruptible(true);
  std::string held;
  const std::function<bool(std::string_view)> invalidate = [&](std::string_view data) {
    invalidate_cached_lists(upstream.name(), data);
    return true;
  };
  auto outcome = co_await relay_events(out, *pump, exchange, pipeline_, &id,
                                       options_.sse_keep_alive, &held, invalidate);
  // Closing the stream is how a 2026-07-28 client cancels: the upstream's stream closes too.
  pump->stop();
  if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();
  out.set_interruptible(false);
  if (outcome.client_gone) {
    mark_abandoned_by_client(exchange);
    co_return;
  }
  http::SseEvent event;
  if (outcome.response_seen) {
    finish(held, false);
    event.data = std::move(held);
  } else if (message.method() != "subscriptions/listen") {
    event.data = mcp::make_error_response(
        id, mcp::error_code::upstream_unavailable,
        outcome.upstream_failed
            ? outcome.failure
            : "upstream '" + upstream.name() + "' closed the stream without responding");
    exchange.outcome = Outcome::upstream_stream_broken;
  }
  if (!event.data.empty() &&
      !co_await write_answer_event(out, exchange, pipeline_, std::move(event.data)))
    co_return;
  co_await out.end_stream();
}

void Gateway::invalidate_cached_lists(std::string_view upstream, std::string_view data) {
  if (data.find("list_changed") == std::string_view::npos &&
      data.find("resources/updated") == std::string_view::npos)
    return;
  const auto parsed = json::parse_or_discarded(data);
  if (!parsed.is_object()) return;
  for (const auto method : mcp::methods_invalidated_by(parsed.value("method", std::string())))
    result_cache_.invalidate(upstream, method);
}

// ---- Stateless client, session-era upstream ------------------------------------------------

awaitable<void> Gateway::stateless_to_session(http::Responder& out, Exchange& exchange,
                                              StatelessCall& call) {
  const mcp::Message& message = *call.message;
  const mcp::Json& id = message.id();
  auto& upstream = *call.upstream;

  // The answer to an upstream's question, for a call parked on this replica.
  if (const auto parked_id = call.state.find("c"); parked_id != call.state.end()) {
    auto parked =
        parked_id->is_string() ? parked_calls_.take(parked_id->get<std::string>()) : nullptr;
    if (!parked || parked->subject != call.client->subject ||
        parked->request_digest != call.digest) {
      exchange.outcome = Outcome::rejected;
      co_await send_answer(
          out, exchange, pipeline_,
          jsonrpc_error(
              400, id, mcp::error_code::invalid_params,
              "Invalid params: the call waiting for this input is no longer held by the gateway "
              "(it "
              "timed out, was answered already, or this request reached another replica); send the "
              "request again without requestState"));
      co_return;
    }
    upstream::ForwardContext context;
    context.protocol_version = parked->session->claims.protocol_version;
    for (const auto& [key, upstream_id] : parked->asked) {
      mcp::Json answer = {{"jsonrpc", "2.0"}, {"id", upstream_id}};
      if (const auto given = call.input_responses.find(key); given != call.input_responses.end()) {
        answer["result"] = *given;
      } else {
        answer["error"] = {{"code", mcp::error_code::invalid_params},
                           {"message", "the client gave no answer for input '" + key + "'"}};
      }
      co_await upstream.send(mcp::Message(mcp::MessageKind::response, answer), dump(answer),
                             &parked->session->claims, context);
    }
    exchange.forwarded_at = Clock::now();
    co_await relay_bridged(out, exchange, call, parked->pump, parked->session,
                           parked->upstream_request_id);
    co_return;
  }

  const std::string key = UpstreamSessionPool::key(
      upstream.name(), call.client->subject, call.client->client_capabilities, call.client_info);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string error;
    upstream::UpstreamReply overload;
    auto session = co_await pooled_session(upstream, key, *call.client, call.client_info,
                                           call.caller, error, &overload);
    if (!session && overload.kind == upstream::UpstreamReply::Kind::overloaded) {
      exchange.outcome = Outcome::overloaded;
      co_await send_answer(out, exchange, pipeline_,
                           reply_to_response(overload, id, upstream.name()));
      co_return;
    }
    if (!session) {
      log::warn("exchange ", message.method(), " on '", upstream.name(), "' failed: ", error);
      exchange.outcome = Outcome::upstream_unavailable;
      co_await send_answer(out, exchange, pipeline_,
                           jsonrpc_error(502, id, mcp::error_code::upstream_unavailable, error));
      co_return;
    }
    exchange.upstream_protocol_version = session->claims.protocol_version;
    if (message.method() == "server/discover") {
      exchange.outcome = Outcome::answered_by_gateway;
      std::string body =
          result_message(id, mcp::discover_from_initialize(session->initialize_result));
      co_await send_answer(out, exchange, pipeline_, json_response(200, std::move(body)));
      co_return;
    }
    if (message.method() == "subscriptions/listen") {
      co_await listen_bridged(out, exchange, call, session);
      co_return;
    }

    // Nothing of the gateway's to take out: the client's bytes go as they are (a session server
    // ignores the envelope's _meta keys).
    std::string raw;
    if (call.state.empty() && call.input_responses.empty() && exchange.rewritten_body.empty()) {
      raw = call.request->body();
    } else {
      mcp::Json body = upstream_body(exchange, call);
      mcp::strip_reserved_meta(body);
      raw = dump(body);
    }
    upstream::ForwardContext context;
    context.protocol_version = session->claims.protocol_version;
    context.txn_token = exchange.txn_token;
    context.traceparent = exchange.trace.upstream_traceparent;
    context.tracestate = exchange.trace.trace_state;
    context.idempotent = mcp::is_cacheable_method(message.method());
    exchange.forwarded_at = Clock::now();
    std::optional<upstream::UpstreamReply> answered;
    if (!upstream.traits().replies_at_once) {
      answered = co_await unless_client_leaves(
          out, upstream.send(message, std::move(raw), &session->claims, context));
    } else {
      // stdio answers with a stream at once; the relay watches the client from there.
      answered = co_await upstream.send(message, std::move(raw), &session->claims, context);
    }
    if (!answered) {
      mark_abandoned_by_client(exchange);
      co_await tell_session_cancelled(upstream, session->claims, id);
      co_return;
    }
    auto& reply = *answered;
    exchange.upstream_wait = Clock::now() - exchange.forwarded_at;

    using Kind = upstream::UpstreamReply::Kind;
    if (reply.kind == Kind::session_not_found && attempt == 0) {
      // The server forgot the session (restarted, timed out): open a new one, once.
      session_pool_.drop(key, session.get());
      continue;
    }
    if (reply.kind == Kind::message) {
      if (auto response = parse_response(reply.body)) {
        mcp::mark_complete_result(*response, message.method());
        reply.body = dump(*response);
      }
      pipeline_.on_upstream_message(exchange, reply.body);
      co_await send_answer(out, exchange, pipeline_, json_response(200, std::move(reply.body)));
      co_return;
    }
    if (reply.kind != Kind::stream) {
      exchange.outcome =
          reply.kind == Kind::unavailable ? Outcome::upstream_unavailable : Outcome::rejected;
      co_await send_answer(out, exchange, pipeline_, reply_to_response(reply, id, upstream.name()));
      co_return;
    }
    auto pump = co_await EventPump::start(std::move(reply.stream));
    co_await relay_bridged(out, exchange, call, std::move(pump), std::move(session), id);
    co_return;
  }
}

// Relays a session server's reply stream to a stateless client: notifications about the call go
// out as SSE events, and a question the server asks ends this response with `input_required`
// while the call stays parked until the client re-sends with its answers.
awaitable<void> Gateway::relay_bridged(http::Responder& out, Exchange& exchange,
                                       StatelessCall& call, std::shared_ptr<EventPump> pump,
                                       std::shared_ptr<const PooledSession> session,
                                       mcp::Json upstream_request_id) {
  auto& upstream = *call.upstream;
  const mcp::Json& id = call.message->id();
  const StreamCount counted(active_streams_);
  bool streaming = false;
  exchange.http_status = 200;
  // The call's final answer.
  const auto send_text = [&](std::string text) -> awaitable<bool> {
    if (!streaming)
      co_return co_await send_answer(out, exchange, pipeline_, json_response(200, std::move(text)));
    if (!co_await write_answer_event(out, exchange, pipeline_, std::move(text))) co_return false;
    co_return co_await out.end_stream();
  };
  // A stdio child is told by the upstream itself when the call's stream is dropped unanswered.
  const auto cancel_upstream = [&]() -> awaitable<void> {
    if (!upstream.traits().cancels_dropped_calls)
      co_await tell_session_cancelled(upstream, session->claims, upstream_request_id);
  };
  // Over HTTP a server may ask on the session's standalone stream instead of the call's: that
  // stream's requests come to this pump while the call runs.
  std::unique_ptr<SessionStream::Attachment> attached;
  if (upstream.traits().shared_session_stream) {
    std::vector<SessionStream::HeldQuestion> held;
    attached = session->stream->attach(SessionStream::Role::call, pump,
                                       mcp::may_require_input(call.message->method()), &held);
    for (auto& question : held) {
      if (!pump->inject(std::move(question.read)))
        co_await answer_server_request(upstream, session, std::move(question.request));
    }
    co_await follow_session_stream(upstream, session);
  }

  bool client_left = false;
  const auto watch = out.watch_client([&client_left, &pump] {
    client_left = true;
    pump->stop();
  });
  for (;;) {
    auto next = co_await pump->next(options_.sse_keep_alive);
    if (client_left) {
      mark_abandoned_by_client(exchange);
      co_await cancel_upstream();
      co_return;
    }
    if (next.kind == EventPump::Kind::tick) {
      if (streaming && !co_await out.write_chunk(http::sse_keep_alive_comment)) {
        mark_abandoned_by_client(exchange);
        pump->stop();
        co_await cancel_upstream();
        co_return;
      }
      continue;
    }
    if (next.kind != EventPump::Kind::message) {
      pump->stop();
      if (next.kind == EventPump::Kind::cancelled)
        co_await asio::this_coro::reset_cancellation_state();
      exchange.outcome = Outcome::upstream_stream_broken;
      const std::string reason =
          next.kind == EventPump::Kind::failed
              ? next.read.error
              : "upstream '" + upstream.name() + "' closed the stream without responding";
      exchange.client_gone = !co_await send_text(
          mcp::make_error_response(id, mcp::error_code::upstream_unavailable, reason));
      co_return;
    }
    std::string data = std::move(next.read.event.data);
    if (data.empty()) continue;
    auto parsed = mcp::parse_message(data);
    if (!parsed.message) continue;
    auto& upstream_message = *parsed.message;

    if (upstream_message.is_response()) {
      if (upstream_message.id() != upstream_request_id) continue;
      pump->stop();
      // The client knows the call by its own id.
      upstream_message.body()["id"] = id;
      mcp::mark_complete_result(upstream_message.body(), call.message->method());
      std::string text = dump(upstream_message.body());
      pipeline_.on_upstream_message(exchange, text);
      exchange.client_gone = !co_await send_text(std::move(text));
      co_return;
    }

    if (upstream_message.is_request()) {
      const std::string method(upstream_message.method());
      if (mcp::is_input_request_method(method) && mcp::may_require_input(call.message->method())) {
        // The server's question goes to the client as an input request; the call waits here.
        const std::string key = method + ":" + mcp::id_key(upstream_message.id());
        mcp::Json request_params =
            upstream_message.params() ? *upstream_message.params() : mcp::Json::object();
        auto parked = std::make_shared<ParkedCall>();
        parked->pump = pump;
        parked->session = session;
        parked->upstream = upstream.name();
        parked->subject = call.client->subject;
        if (call.digest.empty()) call.digest = request_digest(*call.message);
        parked->request_digest = call.digest;
        parked->upstream_request_id = upstream_request_id;
        parked->asked.emplace(key, upstream_message.id());
        parked->expires = Clock::now() + options_.approval_timeout;
        const auto expires = parked->expires;
        call.parked_id = parked_calls_.park(std::move(parked));
        asio::co_spawn(co_await asio::this_coro::executor,
                       expire_parked_call(call.parked_id, expires), asio::detached);
        mcp::Json result = {
            {"resultType", "input_required"},
            {"inputRequests", {{key, {{"method", method}, {"params", std::move(request_params)}}}}},
            {"requestState", seal_request_state(call, mcp::Json())}};
        exchange.outcome = Outcome::input_required;
        exchange.client_gone = !co_await send_text(result_message(id, std::move(result)));
        co_return;
      }
      // Anything else the server asks (ping, or a question outside a call) is answered here.
      co_await answer_server_request(upstream, session, std::move(upstream_message.body()));
      continue;
    }

    // A notification: about this call (progress, log lines) it goes to the client.
    invalidate_cached_lists(upstream.name(), data);
    const auto method = upstream_message.method();
    if (method != "notifications/progress" && method != "notifications/message") continue;
    if (!streaming) {
      if (!co_await out.begin_stream(event_stream_header())) {
        mark_abandoned_by_client(exchange);
        pump->stop();
        co_await cancel_upstream();
        co_return;
      }
      streaming = true;
    }
    if (method == "notifications/progress") {
      // A re-sent request has its own progress token; the upstream still reports on the first.
      const auto* token = call.message->progress_token();
      if (!token) continue;
      auto& params = upstream_message.body()["params"];
      if (params.is_object() && params.value("progressToken", mcp::Json()) != *token) {
        params["progressToken"] = *token;
        data = dump(upstream_message.body());
      }
    }
    pipeline_.on_upstream_message(exchange, data);
    http::SseEvent event;
    event.data = std::move(data);
    if (!co_await out.write_chunk(http::format_sse_event(event))) {
      mark_abandoned_by_client(exchange);
      pump->stop();
      co_await cancel_upstream();
      co_return;
    }
  }
}

// subscriptions/listen for a session server: its standalone stream, as the 2026-07-28 listen
// stream (acknowledged first, then the change notifications).
awaitable<void> Gateway::listen_bridged(http::Responder& out, Exchange& exchange,
                                        StatelessCall& call,
                                        std::shared_ptr<const PooledSession> session) {
  auto& upstream = *call.upstream;
  // Over HTTP the session's one standalone stream is shared (calls hear its requests), so the
  // listen is fed from it rather than opening another.
  const bool shared_stream = upstream.traits().shared_session_stream;
  upstream::UpstreamReply reply;
  std::shared_ptr<EventPump> fed;
  std::unique_ptr<SessionStream::Attachment> attached;
  if (shared_stream) {
    fed = co_await EventPump::start_fed();
    attached = session->stream->attach(SessionStream::Role::listen, fed);
    co_await follow_session_stream(upstream, session);
  } else {
    upstream::ForwardContext context;
    context.protocol_version = session->claims.protocol_version;
    reply = co_await upstream.listen(session->claims, context);
  }
  const StreamCount counted(active_streams_);
  exchange.http_status = 200;
  if (!co_await out.begin_stream(event_stream_header())) {
    exchange.client_gone = true;
    co_return;
  }
  http::SseEvent acknowledged;
  acknowledged.data = dump(mcp::Json{{"jsonrpc", "2.0"},
                                     {"method", "notifications/subscriptions/acknowledged"},
                                     {"params", mcp::Json::object()}});
  if (!co_await out.write_chunk(http::format_sse_event(acknowledged))) {
    exchange.client_gone = true;
    co_return;
  }
  out.set_interruptible(true);
  if (!shared_stream && reply.kind != upstream::UpstreamReply::Kind::stream) {
    // The server has no standalone stream: nothing will ever change; keep the listen open.
    for (;;) {
      asio::steady_timer wait(co_await asio::this_coro::executor, options_.sse_keep_alive);
      auto [ec] = co_await wait.async_wait(use_nothrow);
      if (ec || !co_await out.write_chunk(http::sse_keep_alive_comment)) break;
    }
    out.set_interruptible(false);
    co_return;
  }
  // Not `shared_stream ? fed : co_await …`: GCC 12 destroys a class temporary of a conditional
  // expression around a co_await twice. That double free of the pump crashed the gateway on
  // every 2026-07-28 listen to a stdio upstream (the only kind that takes the co_await branch).
  std::shared_ptr<EventPump> pump = fed;
  if (!shared_stream) pump = co_await EventPump::start(std::move(reply.stream));
  const auto executor = co_await asio::this_coro::executor;
  // Servers never send requests to a 2026-07-28 client: one on the session's stream (a ping, a
  // question outside any call) is answered here and not relayed.
  const std::function<bool(std::string_view)> relay_changes = [&](std::string_view data) {
    invalidate_cached_lists(upstream.name(), data);
    if (data.find("\"method\"") == std::string_view::npos ||
        data.find("\"id\"") == std::string_view::npos)
      return true;
    auto parsed = mcp::parse_message(data);
    if (!parsed.message || !parsed.message->is_request()) return true;
    asio::co_spawn(executor,
                   answer_server_request(upstream, session, std::move(parsed.message->body())),
                   asio::detached);
    return false;
  };
  auto outcome = co_await relay_events(out, *pump, exchange, pipeline_, nullptr,
                                       options_.sse_keep_alive, nullptr, relay_changes);
  pump->stop();
  if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();
  out.set_interruptible(false);
  exchange.client_gone = outcome.client_gone;
  if (!outcome.client_gone) co_await out.end_stream();
}

// A parked call whose client did not come back in time: the upstream's stream closes and the
// session server is told, now rather than when another call happens to be parked.
awaitable<void> Gateway::expire_parked_call(std::string parked_id, Clock::time_point expires) {
  asio::steady_timer timer(co_await asio::this_coro::executor, expires);
  co_await timer.async_wait(use_nothrow);
  const auto call = parked_calls_.take_expired(parked_id);
  if (!call) co_return;  // continued (or swept) meanwhile
  call->pump->stop();
  auto* upstream = find_upstream(call->upstream);
  if (!upstream || draining_) co_return;
  log::info("parked call on '", call->upstream, "' expired: the client did not answer within ",
            options_.approval_timeout.count(), " ms");
  co_await tell_session_cancelled(*upstream, call->session->claims, call->upstream_request_id,
                                  "the client did not answer the server's question in time");
}

// The gateway's answer to a session server's request that no 2026-07-28 client can take: `{}` to
// a ping, -32601 to anything else.
awaitable<void> Gateway::answer_server_request(upstream::Upstream& upstream,
                                               std::shared_ptr<const PooledSession> session,
                                               mcp::Json request) {
  const std::string method = request.value("method", std::string());
  mcp::Json answer = {{"jsonrpc", "2.0"}, {"id", request.value("id", mcp::Json())}};
  if (method == "ping") {
    answer["result"] = mcp::Json::object();
  } else {
    answer["error"] = {
        {"code", mcp::error_code::method_not_found},
        {"message", "the client speaks MCP " + std::string(mcp::stateless_protocol_version) +
                        " and cannot answer " + method + " here"}};
  }
  upstream::ForwardContext context;
  context.protocol_version = session->claims.protocol_version;
  const mcp::Message message(mcp::MessageKind::response, answer);
  co_await upstream.send(message, dump(answer), &session->claims, context);
}

// Starts reading the pooled session's standalone stream unless someone already does. The reader
// runs detached until a keep-alive tick finds nobody attached.
awaitable<void> Gateway::follow_session_stream(upstream::Upstream& upstream,
                                               std::shared_ptr<const PooledSession> session) {
  if (!session->stream->claim_reader()) co_return;
  asio::co_spawn(co_await asio::this_coro::executor, read_session_stream(upstream, session),
                 asio::detached);
}

awaitable<void> Gateway::read_session_stream(upstream::Upstream& upstream,
                                             std::shared_ptr<const PooledSession> session) {
  auto& shared = *session->stream;
  upstream::ForwardContext context;
  context.protocol_version = session->claims.protocol_version;
  auto reply = co_await upstream.listen(session->claims, context);
  if (reply.kind != upstream::UpstreamReply::Kind::stream) {
    shared.reader_ended(reply.kind == upstream::UpstreamReply::Kind::not_supported);
    co_return;
  }
  auto pump = co_await EventPump::start(std::move(reply.stream));
  // Questions held for a call that did not come in time are refused, so the server does not wait.
  const auto refuse_held = [&](bool all) -> awaitable<void> {
    for (auto& question : shared.take_expired(Clock::now(), all))
      co_await answer_server_request(upstream, session, std::move(question.request));
  };
  while (!draining_) {
    auto next = co_await pump->next(options_.sse_keep_alive);
    if (next.kind == EventPump::Kind::tick) {
      co_await refuse_held(false);
      if (shared.idle()) break;
      continue;
    }
    if (next.kind != EventPump::Kind::message) break;
    const auto& data = next.read.event.data;
    if (data.empty()) continue;
    invalidate_cached_lists(upstream.name(), data);
    auto parsed = mcp::parse_message(data);
    if (!parsed.message) continue;
    if (parsed.message->is_request()) {
      if (!mcp::is_input_request_method(parsed.message->method())) {
        co_await answer_server_request(upstream, session, std::move(parsed.message->body()));
        continue;
      }
      std::optional<SessionStream::HeldQuestion> evicted;
      SessionStream::HeldQuestion question{next.read, parsed.message->body(),
                                           Clock::now() + options_.approval_timeout};
      if (const auto call = shared.route_question(std::move(question), evicted);
          call && !call->inject(next.read)) {
        co_await answer_server_request(upstream, session, std::move(parsed.message->body()));
      }
      if (evicted) co_await answer_server_request(upstream, session, std::move(evicted->request));
    } else if (parsed.message->is_notification()) {
      for (const auto& listener : shared.listeners())
        listener->inject(next.read);
    }
  }
  pump->stop();
  co_await refuse_held(true);
  shared.reader_ended();
}

}  // namespace membrane::gateway
