// A session client (MCP 2025-11-25 and earlier) in front of a stateless server (2026-07-28): the
// gateway answers initialize from server/discover, keeps the client's capabilities in its sealed
// session and adds them to every request's `_meta`, answers ping itself, and turns the server's
// `input_required` results into real requests on the client's stream, re-sending the call with
// the answers.
#include "gateway/gateway.hpp"
#include "gateway/responses.hpp"
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
namespace bhttp = http::bhttp;
using bridge::dump;

ExchangeRequest Gateway::bridged_exchange(const BridgedMessage& bridged) const {
  ExchangeRequest described;
  described.upstream = bridged.upstream->name();
  described.routing = bridged.upstream->member_routing();
  described.transport = bridged.transport;
  described.message = bridged.message;
  described.session = bridged.claims;
  described.identity = bridged.caller;
  described.protocol_version = bridged.protocol_version;
  described.upstream_protocol_version = std::string(mcp::stateless_protocol_version);
  described.http = bridged.http;
  described.origin = bridged.origin;
  described.sender = bridged.sender;
  return described;
}

awaitable<void> Gateway::serve_bridged(http::Responder& out, const BridgedMessage& bridged) {
  if (co_await answer_for_stateless_upstream(out, bridged)) co_return;
  auto port = session_client_port(out, bridged.claims);
  ExchangeRunner runner(filters_, port, bridged_exchange(bridged));
  if (co_await runner.run_request_filters() != ExchangeRunner::Verdict::forward) co_return;
  co_await forward_to_stateless(port, runner, *bridged.upstream);
}

void Gateway::end_bridged_session(std::string_view session_id) {
  bridged_sessions_.forget(std::string(session_id));
}

awaitable<bool> Gateway::answer_for_stateless_upstream(http::Responder& out,
                                                       const BridgedMessage& bridged) {
  const mcp::Message& message = *bridged.message;
  upstream::Upstream& upstream = *bridged.upstream;
  const std::string_view session_id = bridged.session_id;
  const mcp::Json& id = message.id();
  if (message.is_notification() || message.is_response()) {
    // A stateless server learns of a cancellation by its request closing; initialized and roots
    // changed concern nothing it keeps.
    if (message.method() == "notifications/cancelled" && message.params()) {
      const auto request_id = message.params()->value("requestId", mcp::Json());
      if (!request_id.is_null())
        in_flight_calls_.cancel(InFlightCalls::key(session_id, request_id));
    }
    co_await out.send(http::Response{bhttp::status::accepted, 11});
    co_return true;
  }
  const auto method = message.method();
  const auto answer_now = [&](std::string text) -> awaitable<bool> {
    co_await out.send(json_response(200, std::move(text)));
    co_return true;
  };
  if (method == "ping")
    co_return co_await answer_now(bridge::result_message(id, mcp::Json::object()));
  if (method == "logging/setLevel") {
    // 2026-07-28 has no session to keep a level: it goes with each of the session's requests.
    const auto* params = message.params();
    const std::string level =
        params && params->is_object() ? params->value("level", std::string()) : std::string();
    if (!mcp::is_log_level(level)) {
      co_return co_await answer_now(mcp::make_error_response(
          id, mcp::error_code::invalid_params,
          "Invalid params: level must be one of debug, info, notice, warning, error, critical, "
          "alert, emergency"));
    }
    bridged_sessions_.set_log_level(std::string(session_id), level);
    co_return co_await answer_now(bridge::result_message(id, mcp::Json::object()));
  }
  if (method.starts_with("tasks/")) {
    // 2026-07-28 has tasks as an extension of its own shape (no tasks/result, no tasks/list);
    // initialize offered this client no tasks capability.
    co_return co_await answer_now(mcp::make_error_response(
        id, mcp::error_code::method_not_found,
        std::string(method) + " is not available: upstream '" + upstream.name() +
            "' speaks MCP 2026-07-28, whose tasks extension the gateway does not bridge to " +
            "session clients (initialize offered no tasks capability)"));
  }
  if (method == "resources/subscribe" || method == "resources/unsubscribe") {
    co_await answer_subscription(out, bridged);
    co_return true;
  }
  if (!message.is_initialize()) co_return false;

  const mcp::Json params =
      message.params() && message.params()->is_object() ? *message.params() : mcp::Json::object();
  const mcp::Json capabilities = params.value("capabilities", mcp::Json::object());
  const mcp::Json client_info = params.value("clientInfo", mcp::Json());
  HttpPort port(out);
  ExchangeRequest described = bridged_exchange(bridged);
  described.protocol_version = params.value("protocolVersion", std::string());
  ExchangeRunner runner(filters_, port, std::move(described));
  Exchange& exchange = runner.exchange();
  if (co_await runner.run_request_filters() != ExchangeRunner::Verdict::forward) co_return true;
  runner.forwarding();
  const auto envelope =
      mcp::stateless_envelope(mcp::stateless_protocol_version, capabilities, client_info);
  const auto discover = co_await discover_upstream(upstream, envelope);
  runner.upstream_answered();
  if (!discover) {
    exchange.outcome = Outcome::upstream_unavailable;
    const std::string why = "upstream '" + upstream.name() + "' did not answer server/discover";
    co_await runner.answer(jsonrpc_error(502, id, mcp::error_code::upstream_unavailable, why));
    co_return true;
  }
  const auto result =
      mcp::initialize_from_discover(*discover, params.value("protocolVersion", std::string()));
  mcp::SessionClaims opened;
  opened.upstream = upstream.name();
  opened.created_at = unix_now();
  if (bridged.caller) opened.subject = bridged.caller->subject;
  opened.initialize_params = params;
  opened.client_capabilities = capabilities;
  opened.client_name = mcp::client_name_of(params);
  opened.protocol_version = result.value("protocolVersion", std::string());
  const mcp::Json answer = {{"jsonrpc", "2.0"}, {"id", id}, {"result", result}};
  auto response = json_response(200, dump(answer));
  response.set(mcp::header::session_id,
               options_.sealer->seal(opened, mcp::SessionTransport::streamable_http));
  exchange.outcome = Outcome::answered_by_gateway;
  if (bridged.on_opened) bridged.on_opened(opened);
  co_await runner.answer(std::move(response));
  co_return true;
}

// resources/subscribe and resources/unsubscribe of a bridged session: 2026-07-28 subscribes in
// subscriptions/listen, so the gateway keeps the session's URIs (on this replica) and the listen
// behind the session's GET stream asks for them. Judged and recorded like any request.
awaitable<void> Gateway::answer_subscription(http::Responder& out, const BridgedMessage& bridged) {
  const mcp::Message& message = *bridged.message;
  upstream::Upstream& upstream = *bridged.upstream;
  const mcp::Json& id = message.id();
  HttpPort port(out);
  ExchangeRunner runner(filters_, port, bridged_exchange(bridged));
  Exchange& exchange = runner.exchange();
  if (co_await runner.run_request_filters() != ExchangeRunner::Verdict::forward) co_return;
  exchange.outcome = Outcome::answered_by_gateway;
  const auto* params = message.params();
  const std::string uri =
      params && params->is_object() ? params->value("uri", std::string()) : std::string();
  const auto refuse = [&](int code, std::string why) -> awaitable<void> {
    co_await runner.answer(json_response(200, mcp::make_error_response(id, code, std::move(why))));
  };
  if (uri.empty() || uri.size() > mcp::ListenFilter::max_uri_size) {
    co_await refuse(mcp::error_code::invalid_params,
                    "Invalid params: uri must be a non-empty string of at most " +
                        std::to_string(mcp::ListenFilter::max_uri_size) + " bytes");
    co_return;
  }
  const auto discover = revisions_.at(upstream.name())->discover();
  const auto capabilities =
      discover.is_object() ? discover.value("capabilities", mcp::Json()) : mcp::Json();
  const auto resources =
      capabilities.is_object() ? capabilities.find("resources") : capabilities.end();
  const bool offered = resources != capabilities.end() && resources->is_object() &&
                       resources->value("subscribe", false) == true;
  if (!offered) {
    co_await refuse(mcp::error_code::method_not_found,
                    std::string(message.method()) + " is not available: upstream '" +
                        upstream.name() + "' does not offer resource subscriptions");
    co_return;
  }
  const std::string session(bridged.session_id);
  if (message.method() == "resources/unsubscribe") {
    bridged_sessions_.unsubscribe(session, uri);
  } else if (!bridged_sessions_.subscribe(session, uri)) {
    co_await refuse(mcp::error_code::invalid_params,
                    "no more subscriptions: a session may hold at most " +
                        std::to_string(BridgedSessions::max_subscriptions) +
                        ", and this gateway's subscriptions for bridged sessions are at their "
                        "limit when that is not it");
    co_return;
  }
  co_await runner.answer(json_response(200, bridge::result_message(id, mcp::Json::object())));
}

awaitable<void> Gateway::forward_to_stateless(SessionClientPort& port, ExchangeRunner& runner,
                                              upstream::Upstream& upstream) {
  Exchange& exchange = runner.exchange();
  http::Responder& out = port.responder();
  const mcp::Message& message = *exchange.message;
  const mcp::Json& id = message.id();
  const mcp::SessionClaims& claims = *exchange.session;
  exchange.upstream_protocol_version = std::string(mcp::stateless_protocol_version);

  mcp::Json body = runner.forwarded_message();
  auto envelope = mcp::stateless_envelope(mcp::stateless_protocol_version,
                                          claims.client_capabilities, client_info_of(claims));
  if (auto level = bridged_sessions_.log_level(std::string(exchange.session_id)); !level.empty())
    envelope[std::string(mcp::meta::log_level)] = std::move(level);
  mcp::add_envelope(body, envelope);

  // Writes the final message: as the JSON response, or as the last event of the stream.
  const auto finish = [&](std::string text, bool relayed = false) -> awaitable<void> {
    // A response held back from a relayed stream went through the filters already.
    if (!relayed) runner.on_upstream_message(text);
    co_await runner.answer_json(200, std::move(text));
  };
  const auto begin_streaming = [&]() -> awaitable<bool> {
    if (port.streaming()) co_return true;
    exchange.http_status = 200;
    if (!co_await port.begin_stream()) {
      exchange.client_gone = true;
      co_return false;
    }
    co_return true;
  };

  const std::string subject = claims.subject;
  const std::string cache_key = ResultCache::request_key(upstream.name(), message);
  if (auto cached = result_cache_.find(cache_key, subject)) {
    exchange.outcome = Outcome::cached;
    const mcp::Json answer = {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(*cached)}};
    co_await finish(dump(answer));
    co_return;
  }

  auto context = runner.forward_context(upstream);
  add_stateless_headers(context, message, nullptr);
  context.idempotent = !cache_key.empty();
  const EventCheck invalidate = [&](std::string& data) {
    invalidate_cached_lists(upstream.name(), data);
    return true;
  };

  // The client's notifications/cancelled for this call closes the upstream request.
  const auto cancellation = std::make_shared<CallCancellation>();
  const auto executor = co_await asio::this_coro::executor;
  const auto tracking =
      in_flight_calls_.track(InFlightCalls::key(exchange.session_id, id), executor, cancellation);
  const auto end_cancelled = [&]() -> awaitable<void> {
    // The client has stopped waiting; the answer only ends the HTTP exchange.
    exchange.outcome = Outcome::cancelled;
    std::string answer = mcp::make_error_response(id, mcp::error_code::request_cancelled,
                                                  "the client cancelled the request");
    co_await finish(std::move(answer));
  };

  for (int round = 0;; ++round) {
    if (round == 0) runner.forwarding();
    auto answered = co_await unless_client_leaves(
        out, upstream.send(message, dump(body), nullptr, context), cancellation.get());
    if (!answered) {
      if (cancellation->cancelled()) {
        co_await end_cancelled();
      } else {
        runner.abandoned_by_client();
      }
      co_return;
    }
    auto& reply = *answered;
    if (round == 0) runner.upstream_answered();

    using Kind = upstream::UpstreamReply::Kind;
    std::string text;
    if (reply.kind == Kind::message) {
      text = std::move(reply.body);
    } else if (reply.kind == Kind::stream) {
      if (!co_await begin_streaming()) co_return;
      const StreamCount counted(active_streams_);
      auto pump = co_await EventPump::start(std::move(reply.stream));
      cancellation->on_cancel([&pump] { pump->stop(); });
      auto outcome = co_await relay_events(out, *pump, &runner, &id, options_.sse_keep_alive, &text,
                                           invalidate);
      cancellation->on_cancel(nullptr);
      pump->stop();
      if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();
      if (outcome.client_gone) {
        runner.abandoned_by_client();
        co_return;
      }
      if (cancellation->cancelled() && !outcome.response_seen) {
        co_await end_cancelled();
        co_return;
      }
      if (!outcome.response_seen) {
        exchange.outcome = Outcome::upstream_stream_broken;
        const std::string why =
            outcome.upstream_failed
                ? outcome.failure
                : "upstream '" + upstream.name() + "' closed the stream without responding";
        std::string failure =
            mcp::make_error_response(id, mcp::error_code::upstream_unavailable, why);
        co_await finish(std::move(failure));
        co_return;
      }
    } else if (auto answer = json_rpc_answer(reply, id)) {
      // A 2026-07-28 server gives some JSON-RPC errors an HTTP status too (404 for an unknown
      // method). To a session client that status says something else (404: the session is gone),
      // so the answer goes on as a JSON-RPC response like any other.
      text = std::move(*answer);
    } else {
      exchange.outcome = outcome_of(reply);
      if (port.streaming()) {
        std::string failure = mcp::make_error_response(id, mcp::error_code::upstream_unavailable,
                                                       reply.body.substr(0, 500));
        co_await finish(std::move(failure));
        co_return;
      }
      co_await runner.answer(reply_to_response(reply, id, upstream.name()));
      co_return;
    }

    auto response = json::parse_or_discarded(text);
    const mcp::Json* result =
        response.is_object() && response.contains("result") ? &response["result"] : nullptr;
    if (!result || !mcp::is_input_required(*result) || !mcp::may_require_input(message.method())) {
      // Only a first-round answer that came unfiltered: never a retried result (SEP-2549).
      if (result && round == 0 && reply.kind == Kind::message)
        result_cache_.store(cache_key, subject, *result);
      co_await finish(std::move(text), reply.kind == Kind::stream);
      co_return;
    }
    if (round >= max_input_rounds) {
      exchange.outcome = Outcome::error_response;
      const std::string why = "upstream '" + upstream.name() + "' kept asking for input after " +
                              std::to_string(max_input_rounds) + " rounds";
      std::string failure = mcp::make_error_response(id, mcp::error_code::internal_error, why);
      co_await finish(std::move(failure));
      co_return;
    }

    // The server's questions become real requests on the client's stream.
    if (!co_await begin_streaming()) co_return;
    mcp::Json answers = mcp::Json::object();
    if (const auto requests = result->find("inputRequests");
        requests != result->end() && requests->is_object()) {
      for (const auto& [key, input] : requests->items()) {
        const std::string method = input.value("method", std::string());
        const mcp::Json params = input.value("params", mcp::Json::object());
        auto answer = co_await port.ask_client(method, params);
        if (answer.kind == ClientAnswer::Kind::client_gone) {
          exchange.client_gone = true;
          co_return;
        }
        const auto answered = answer.response.find("result");
        if (answer.kind != ClientAnswer::Kind::answered || answered == answer.response.end()) {
          exchange.outcome = Outcome::error_response;
          std::string why = answer.kind == ClientAnswer::Kind::timed_out
                                ? "the client did not answer " + method + " in time"
                                : "the client could not answer " + method;
          if (const auto error = answer.response.find("error");
              error != answer.response.end() && error->is_object())
            why += ": " + error->value("message", std::string());
          std::string failure = mcp::make_error_response(id, mcp::error_code::internal_error, why);
          co_await finish(std::move(failure));
          co_return;
        }
        answers[key] = *answered;
      }
    }
    auto& params = body["params"];
    params["inputResponses"] = std::move(answers);
    if (const auto state = result->find("requestState"); state != result->end()) {
      params["requestState"] = *state;
    } else {
      params.erase("requestState");
    }
  }
}

// A session client's standalone stream (GET) in front of a stateless server: the server's
// `subscriptions/listen` stream, for every change notification a 2025 client can receive, and
// the updates of the resources the session subscribed to. When the session subscribes or
// unsubscribes, the gateway listens again with the new set; the client's stream stays open.
// The acknowledgement is 2026-07-28 only and stays here.
awaitable<void> Gateway::listen_for_session_client(http::Responder& out,
                                                   upstream::Upstream& upstream,
                                                   const mcp::SessionClaims& claims,
                                                   std::string session_id) {
  const auto feed =
      std::make_shared<BridgedSessions::ListenFeed>(co_await asio::this_coro::executor);
  bridged_sessions_.attach(session_id, feed);
  const EventCheck relay_changes = [&](std::string& data) {
    invalidate_cached_lists(upstream.name(), data);
    if (data.find("notifications/subscriptions/acknowledged") != std::string_view::npos)
      return false;
    // The subscription's stamp means nothing on a session's standalone stream.
    if (data.find(mcp::meta::subscription_id) != std::string_view::npos) {
      auto notification = json::parse_or_discarded(data);
      if (notification.is_object() && mcp::untag_subscription(notification))
        data = dump(notification);
    }
    return true;
  };
  const StreamCount counted(active_streams_);
  bool streaming = false;
  for (;;) {
    const mcp::Json listen_id = "membrane-listen-" + mcp::base64url_encode(mcp::random_bytes(9));
    mcp::Json filter = {
        {"toolsListChanged", true}, {"promptsListChanged", true}, {"resourcesListChanged", true}};
    if (auto uris = bridged_sessions_.subscriptions(session_id); !uris.empty())
      filter["resourceSubscriptions"] = std::move(uris);
    mcp::Json body = {{"jsonrpc", "2.0"},
                      {"id", listen_id},
                      {"method", "subscriptions/listen"},
                      {"params", {{"notifications", std::move(filter)}}}};
    mcp::add_envelope(
        body, mcp::stateless_envelope(mcp::stateless_protocol_version, claims.client_capabilities,
                                      client_info_of(claims)));
    const mcp::Message message(mcp::MessageKind::request, body);
    upstream::ForwardContext context;
    add_stateless_headers(context, message, nullptr);
    auto reply = co_await upstream.send(message, dump(body), nullptr, context);
    if (reply.kind != upstream::UpstreamReply::Kind::stream) {
      if (!streaming)
        co_await out.send(
            no_standalone_stream(upstream.name(), "speaks MCP 2026-07-28 and offers"));
      break;
    }
    auto pump = co_await EventPump::start(std::move(reply.stream));
    if (!streaming) {
      if (!co_await out.begin_stream(event_stream_header())) {
        pump->stop();
        co_return;
      }
      // A listen stream never ends by itself: shutdown closes it at once (the client reconnects).
      out.set_interruptible(true);
      streaming = true;
    }
    feed->feeding(pump);
    // Subscribed while this listen was being opened: it may lack the new URI.
    if (feed->listen_again_pending()) pump->stop();
    // The listen's own response (the server ending it) is held back: the client never asked.
    std::string ended;
    auto outcome = co_await relay_events(out, *pump, nullptr, &listen_id, options_.sse_keep_alive,
                                         &ended, relay_changes);
    pump->stop();
    feed->feeding(nullptr);
    if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();
    if (outcome.client_gone || outcome.cancelled) {
      out.set_interruptible(false);
      co_return;
    }
    if (!feed->take_listen_again()) break;  // the server ended the listen itself
  }
  if (streaming) {
    out.set_interruptible(false);
    co_await out.end_stream();
  }
}

}  // namespace membrane::gateway
