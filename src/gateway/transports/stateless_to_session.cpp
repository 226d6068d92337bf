// A stateless (2026-07-28) client in front of a session-era server: its calls run on a pooled
// upstream session, a server's question ends the response with `input_required` while the call
// stays parked, subscriptions/listen is fed from the session's standalone stream, and whatever the
// server asks that no 2026-07-28 client can take is answered here.
#include "gateway/gateway.hpp"
#include "gateway/responses.hpp"
#include "gateway/revision.hpp"
#include "gateway/transports/bridge_messages.hpp"
#include "gateway/transports/event_relay.hpp"
#include "gateway/transports/http_port.hpp"
#include "gateway/transports/upstream_replies.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/http/sse.hpp"
#include "membrane/mcp/listen.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {
namespace {

// How long a server's first question waits for the others it asks with it.
constexpr std::chrono::milliseconds question_gathering_window{10};
constexpr std::size_t max_gathered_questions = 16;

// 2026-07-28 answers an unknown method with 404, whatever the session server's transport did.
unsigned http_status_for_stateless_client(const mcp::Json& response) {
  const auto error = response.find("error");
  const bool not_found = error != response.end() && error->is_object() &&
                         error->value("code", 0) == mcp::error_code::method_not_found;
  return not_found ? 404 : 200;
}

// The client capability a server's question needs.
std::string_view capability_for(std::string_view question) {
  if (question == "sampling/createMessage") return "sampling";
  if (question == "elicitation/create") return "elicitation";
  return "roots";
}

}  // namespace

using bridge::dump;
using bridge::parse_response;
using bridge::request_in_session;
using bridge::result_message;
using bridge::tell_session_cancelled;

awaitable<void> Gateway::stateless_to_session(HttpPort& port, ExchangeRunner& runner,
                                              StatelessCall& call) {
  Exchange& exchange = runner.exchange();
  http::Responder& out = port.responder();
  const mcp::Message& message = *call.message;
  const mcp::Json& id = message.id();
  auto& upstream = *call.upstream;
  // A session server never sees the client's Mcp-Param-* headers.
  if (co_await refused_param_headers(runner, upstream, message, *call.request)) co_return;

  // The answer to an upstream's question, for a call parked on this replica.
  if (const auto parked_id = call.state.find("c"); parked_id != call.state.end()) {
    auto parked =
        parked_id->is_string() ? parked_calls_.take(parked_id->get<std::string>()) : nullptr;
    if (!parked || parked->subject != call.client->subject ||
        parked->request_digest != call.digest) {
      exchange.outcome = Outcome::rejected;
      co_await runner.answer(jsonrpc_error(
          400, id, mcp::error_code::invalid_params,
          "Invalid params: the call waiting for this input is no longer held by the gateway (it "
          "timed out, was answered already, or this request reached another replica); send the "
          "request again without requestState"));
      co_return;
    }
    // The client's answers go to the parked call's session, in the revision spoken there.
    exchange.upstream_protocol_version = parked->session->claims.protocol_version;
    const auto context = runner.forward_context(upstream);
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
    runner.forwarding();
    co_await relay_bridged(port, runner, call, parked->pump, parked->session,
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
      co_await runner.answer(reply_to_response(overload, id, upstream.name()));
      co_return;
    }
    if (!session) {
      log::warn("exchange ", message.method(), " on '", upstream.name(), "' failed: ", error);
      exchange.outcome = Outcome::upstream_unavailable;
      co_await runner.answer(jsonrpc_error(502, id, mcp::error_code::upstream_unavailable, error));
      co_return;
    }
    exchange.upstream_protocol_version = session->claims.protocol_version;
    if (message.method() == "server/discover") {
      exchange.outcome = Outcome::answered_by_gateway;
      std::string body =
          result_message(id, mcp::discover_from_initialize(session->initialize_result));
      co_await runner.answer(json_response(200, std::move(body)));
      co_return;
    }
    if (message.method() == "subscriptions/listen") {
      co_await listen_bridged(port, runner, call, session);
      co_return;
    }
    co_await lower_session_log_level(upstream, *session, message);

    // The envelope's reserved _meta keys go: a server that speaks both revisions reads a body
    // naming 2026-07-28 under a session header as a header mismatch.
    mcp::Json body = upstream_body(runner, call);
    mcp::strip_reserved_meta(body);
    std::string raw = dump(body);
    auto context = runner.forward_context(upstream);
    context.idempotent = mcp::is_cacheable_method(message.method());
    runner.forwarding();
    std::optional<upstream::UpstreamReply> answered;
    if (!upstream.traits().replies_at_once) {
      answered = co_await unless_client_leaves(
          out, upstream.send(message, std::move(raw), &session->claims, context));
    } else {
      // stdio answers with a stream at once; the relay watches the client from there.
      answered = co_await upstream.send(message, std::move(raw), &session->claims, context);
    }
    if (!answered) {
      runner.abandoned_by_client();
      co_await tell_session_cancelled(upstream, session->claims, id);
      co_return;
    }
    auto& reply = *answered;
    runner.upstream_answered();

    using Kind = upstream::UpstreamReply::Kind;
    if (reply.kind == Kind::session_not_found && attempt == 0) {
      // The server forgot the session (restarted, timed out): open a new one, once.
      session_pool_.drop(key, session.get());
      continue;
    }
    if (reply.kind == Kind::message) {
      unsigned status = 200;
      if (auto response = parse_response(reply.body)) {
        mcp::mark_complete_result(*response, message.method());
        learn_param_headers(upstream, message.method(), *response);
        reply.body = dump(*response);
        status = http_status_for_stateless_client(*response);
      }
      runner.on_upstream_message(reply.body);
      co_await runner.answer(json_response(status, std::move(reply.body)));
      co_return;
    }
    if (reply.kind != Kind::stream) {
      exchange.outcome = outcome_of(reply);
      co_await runner.answer(reply_to_response(reply, id, upstream.name()));
      co_return;
    }
    auto pump = co_await EventPump::start(std::move(reply.stream));
    co_await relay_bridged(port, runner, call, std::move(pump), std::move(session), id);
    co_return;
  }
}

// Relays a session server's reply stream to a stateless client: notifications about the call go
// out as SSE events, and a question the server asks ends this response with `input_required`
// while the call stays parked until the client re-sends with its answers.
awaitable<void> Gateway::relay_bridged(HttpPort& port, ExchangeRunner& runner, StatelessCall& call,
                                       std::shared_ptr<EventPump> pump,
                                       std::shared_ptr<const PooledSession> session,
                                       mcp::Json upstream_request_id) {
  Exchange& exchange = runner.exchange();
  http::Responder& out = port.responder();
  auto& upstream = *call.upstream;
  const mcp::Json& id = call.message->id();
  const StreamCount counted(active_streams_);
  exchange.http_status = 200;
  // The call's final answer.
  const auto send_text = [&](std::string text) -> awaitable<bool> {
    co_return co_await runner.answer_json(200, std::move(text));
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

  // The level the request asked for in `_meta` (-1: none, so no log lines).
  int log_threshold = -1;
  if (const auto* params = call.message->params(); params && params->is_object()) {
    if (const auto meta = params->find("_meta"); meta != params->end() && meta->is_object())
      log_threshold =
          mcp::log_severity(meta->value(std::string(mcp::meta::log_level), std::string()));
  }
  bool client_left = false;
  const auto watch = out.watch_client([&client_left, &pump] {
    client_left = true;
    pump->stop();
  });
  for (;;) {
    auto next = co_await pump->next(options_.sse_keep_alive);
    if (client_left) {
      runner.abandoned_by_client();
      co_await cancel_upstream();
      co_return;
    }
    if (next.kind == EventPump::Kind::tick) {
      if (port.streaming() && !co_await out.write_chunk(http::sse_keep_alive_comment)) {
        runner.abandoned_by_client();
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
      learn_param_headers(*call.upstream, call.message->method(), upstream_message.body());
      std::string text = dump(upstream_message.body());
      runner.on_upstream_message(text);
      exchange.client_gone = !co_await runner.answer_json(
          http_status_for_stateless_client(upstream_message.body()), std::move(text));
      co_return;
    }

    if (upstream_message.is_request()) {
      const std::string method(upstream_message.method());
      const std::string_view capability = capability_for(method);
      const auto& declared = call.client->client_capabilities;
      if (mcp::is_input_request_method(method) &&
          (!declared.is_object() || !declared.contains(capability))) {
        // The client cannot answer it: 2026-07-28 has an error that says which capability the
        // request needed, and the call goes no further at the server.
        co_await answer_server_request(upstream, session, std::move(upstream_message.body()));
        pump->stop();
        co_await cancel_upstream();
        exchange.outcome = Outcome::answered_by_gateway;
        const mcp::Json error = {
            {"jsonrpc", "2.0"},
            {"id", id},
            {"error",
             {{"code", mcp::error_code::missing_client_capability},
              {"message", "upstream '" + upstream.name() + "' asked the client for " + method +
                              ", and the client did not declare the " + std::string(capability) +
                              " capability"},
              {"data", {{"requiredCapabilities", {{capability, mcp::Json::object()}}}}}}}};
        if (port.streaming()) {
          exchange.client_gone = !co_await send_text(dump(error));
        } else {
          co_await runner.answer(json_response(400, dump(error)));
        }
        co_return;
      }
      if (mcp::is_input_request_method(method) && mcp::may_require_input(call.message->method())) {
        // The server's question goes to the client as an input request; the call waits here.
        // Questions a server asks together (one per input it needs) arrive together: those
        // already on their way are gathered into the same round.
        mcp::Json input_requests = mcp::Json::object();
        std::map<std::string, mcp::Json> asked;
        const auto take_question = [&](mcp::Message& question) {
          const std::string key = std::string(question.method()) + ":" + mcp::id_key(question.id());
          input_requests[key] = {
              {"method", question.method()},
              {"params", question.params() ? *question.params() : mcp::Json::object()}};
          asked.emplace(key, question.id());
        };
        take_question(upstream_message);
        while (asked.size() < max_gathered_questions) {
          auto more = co_await pump->next(question_gathering_window);
          if (more.kind != EventPump::Kind::message) break;
          auto next_parsed = mcp::parse_message(more.read.event.data);
          if (!next_parsed.message || !next_parsed.message->is_request()) {
            // Not a question (the call's own answer may follow a question the session's stream
            // handed it): it stays on the stream for the continuation to relay.
            pump->inject(std::move(more.read));
            break;
          }
          auto& next_question = *next_parsed.message;
          const std::string next_method(next_question.method());
          const std::string_view needs = capability_for(next_method);
          if (mcp::is_input_request_method(next_method) && declared.is_object() &&
              declared.contains(needs)) {
            take_question(next_question);
          } else {
            co_await answer_server_request(upstream, session, std::move(next_question.body()));
          }
        }
        auto parked = std::make_shared<ParkedCall>();
        parked->pump = pump;
        parked->session = session;
        parked->upstream = upstream.name();
        parked->subject = call.client->subject;
        if (call.digest.empty()) call.digest = request_digest(*call.message);
        parked->request_digest = call.digest;
        parked->upstream_request_id = upstream_request_id;
        parked->asked = std::move(asked);
        parked->expires = Clock::now() + options_.approval_timeout;
        const auto expires = parked->expires;
        call.parked_id = parked_calls_.park(std::move(parked));
        asio::co_spawn(co_await asio::this_coro::executor,
                       expire_parked_call(call.parked_id, expires), asio::detached);
        mcp::Json result = {{"resultType", "input_required"},
                            {"inputRequests", std::move(input_requests)},
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
    // A 2026-07-28 client gets log lines only at or above the level its request names.
    if (method == "notifications/message") {
      const auto* params = upstream_message.params();
      const int severity = mcp::log_severity(
          params && params->is_object() ? params->value("level", std::string()) : std::string());
      if (log_threshold < 0 || severity < log_threshold) continue;
    }
    if (!co_await port.begin_stream()) {
      runner.abandoned_by_client();
      pump->stop();
      co_await cancel_upstream();
      co_return;
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
    runner.on_upstream_message(data);
    http::SseEvent event;
    event.data = std::move(data);
    if (!co_await out.write_chunk(http::format_sse_event(event))) {
      runner.abandoned_by_client();
      pump->stop();
      co_await cancel_upstream();
      co_return;
    }
  }
}

// subscriptions/listen for a session server: its standalone stream, as the 2026-07-28 listen
// stream. The acknowledgement comes first, with the part of the client's filter the server can
// honour; then the change notifications that filter asks for, each tagged with the subscription
// id (the listen request's id), as a 2026-07-28 server sends them.
awaitable<void> Gateway::listen_bridged(HttpPort& port, ExchangeRunner& runner, StatelessCall& call,
                                        std::shared_ptr<const PooledSession> session) {
  Exchange& exchange = runner.exchange();
  http::Responder& out = port.responder();
  const mcp::Message& message = *exchange.message;
  const mcp::Json& listen_id = message.id();
  auto& upstream = *call.upstream;
  std::string filter_error;
  const auto requested = mcp::ListenFilter::from_params(message.params(), filter_error);
  if (!requested) {
    exchange.outcome = Outcome::answered_by_gateway;
    co_await runner.answer(jsonrpc_error(400, listen_id, mcp::error_code::invalid_params,
                                         "Invalid params: " + filter_error));
    co_return;
  }
  auto honoured =
      requested->honoured_by(session->initialize_result.value("capabilities", mcp::Json()));
  // Over HTTP the session's one standalone stream is shared (calls hear its requests), so the
  // listen is fed from it rather than opening another.
  const bool shared_stream = upstream.traits().shared_session_stream;
  upstream::UpstreamReply reply;
  std::shared_ptr<EventPump> fed;
  std::unique_ptr<SessionStream::Attachment> attached;
  if (honoured.empty()) {
    // Nothing the server could ever send belongs to this listen: no stream to follow.
  } else if (shared_stream) {
    fed = co_await EventPump::start_fed();
    attached = session->stream->attach(SessionStream::Role::listen, fed);
    co_await follow_session_stream(upstream, session);
  } else {
    upstream::ForwardContext context;
    context.protocol_version = session->claims.protocol_version;
    reply = co_await upstream.listen(session->claims, context);
  }
  // Resource updates need a subscription in the session; a URI the server refuses is left out of
  // the acknowledged filter. Subscriptions stay with the pooled session (another listen of the
  // same caller may share them); the filter below keeps each listen to its own URIs.
  std::vector<std::string> subscribed;
  for (const auto& uri : honoured.resource_uris) {
    if (co_await subscribe_in_session(upstream, *session, uri)) subscribed.push_back(uri);
  }
  honoured.resource_uris = std::move(subscribed);

  const StreamCount counted(active_streams_);
  exchange.http_status = 200;
  if (!co_await out.begin_stream(event_stream_header())) {
    exchange.client_gone = true;
    co_return;
  }
  http::SseEvent frame;
  frame.data = dump(mcp::listen_acknowledgement(listen_id, honoured));
  if (!co_await out.write_chunk(http::format_sse_event(frame))) {
    exchange.client_gone = true;
    co_return;
  }
  if (honoured.empty()) {
    // As a 2026-07-28 server does: acknowledged, then closed at once (gracefully).
    co_await runner.answer_message(dump(mcp::listen_closed_response(
        listen_id, session->initialize_result.value("serverInfo", mcp::Json()))));
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
  // question outside any call) is answered here and not relayed. Of the change notifications,
  // only those the filter asks for belong to the listen, tagged with its id. Log lines sent
  // outside any call have no other way to the client: they follow untagged, as a 2026-07-28
  // server passes them on over stdio. Anything else concerns no request of this client.
  const EventCheck relay_changes = [&](std::string& data) {
    invalidate_cached_lists(upstream.name(), data);
    auto parsed = mcp::parse_message(data);
    if (!parsed.message) return false;
    if (parsed.message->is_request()) {
      asio::co_spawn(executor,
                     answer_server_request(upstream, session, std::move(parsed.message->body())),
                     asio::detached);
      return false;
    }
    if (!parsed.message->is_notification()) return false;
    if (parsed.message->method() == "notifications/message") return true;
    auto& notification = parsed.message->body();
    const auto* params = parsed.message->params();
    const std::string uri =
        params && params->is_object() ? params->value("uri", std::string()) : std::string();
    if (!honoured.accepts(parsed.message->method(), uri)) return false;
    mcp::tag_with_subscription(notification, listen_id);
    data = dump(notification);
    return true;
  };
  auto outcome = co_await relay_events(out, *pump, &runner, nullptr, options_.sse_keep_alive,
                                       nullptr, relay_changes);
  pump->stop();
  if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();
  out.set_interruptible(false);
  exchange.client_gone = outcome.client_gone;
  if (!outcome.client_gone) co_await out.end_stream();
}

// A request's `_meta` logLevel below what the pooled session logs at: the session is told with
// logging/setLevel (session servers keep the level per session), once per lower level.
awaitable<void> Gateway::lower_session_log_level(upstream::Upstream& upstream,
                                                 const PooledSession& session,
                                                 const mcp::Message& message) {
  const auto* params = message.params();
  if (!params || !params->is_object()) co_return;
  const auto meta = params->find("_meta");
  if (meta == params->end() || !meta->is_object()) co_return;
  const std::string level = meta->value(std::string(mcp::meta::log_level), std::string());
  const int severity = mcp::log_severity(level);
  if (severity < 0) co_return;
  const auto capabilities = session.initialize_result.value("capabilities", mcp::Json());
  if (!capabilities.is_object() || !capabilities.contains("logging")) co_return;
  int current = session.log_level->load();
  do {
    if (severity >= current) co_return;
  } while (!session.log_level->compare_exchange_weak(current, severity));
  // Named, not written in the call: GCC 12 rejected a literal and a braced argument to this
  // co_await ("array used as initializer").
  const mcp::Json id = "membrane-log-level";
  mcp::Json set_level = {{"level", level}};
  co_await request_in_session(upstream, session.claims, id, "logging/setLevel",
                              std::move(set_level), nullptr);
}

// resources/subscribe in a pooled session, for a listen's resourceSubscriptions.
awaitable<bool> Gateway::subscribe_in_session(upstream::Upstream& upstream,
                                              const PooledSession& session,
                                              const std::string& uri) {
  std::string failure;
  const mcp::Json id = "membrane-subscribe";
  mcp::Json params = {{"uri", uri}};
  const auto response = co_await request_in_session(
      upstream, session.claims, id, "resources/subscribe", std::move(params), &failure);
  if (response && response->contains("result")) co_return true;
  log::info("upstream '", upstream.name(), "' refused resources/subscribe for a listen: ",
            response ? dump(*response).substr(0, 200) : failure);
  co_return false;
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
