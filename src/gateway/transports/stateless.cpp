// The stateless downstream transport: MCP 2026-07-28 clients on the gateway's /mcp/<name> URLs
// (every request carries its revision and the client's capabilities; no session). The gateway's
// own questions and an upstream's go out as `input_required` with a requestState the gateway
// seals. A stateless upstream is spoken to here; a session-era one through
// stateless_to_session.cpp.
#include "gateway/gateway.hpp"
#include "gateway/responses.hpp"
#include "gateway/revision.hpp"
#include "gateway/transports/bridge_messages.hpp"
#include "gateway/transports/event_relay.hpp"
#include "gateway/transports/http_port.hpp"
#include "gateway/transports/upstream_replies.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/core/sha256.hpp"
#include "membrane/http/sse.hpp"
#include "membrane/mcp/param_headers.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {
namespace bhttp = http::bhttp;
using bridge::dump;
using bridge::parse_response;
using bridge::result_message;

namespace {

// What a requestState the gateway seals is bound to.
constexpr std::string_view request_state_purpose = "request-state";
// The inputRequests key of the gateway's own question (a policy `ask`).
constexpr std::string_view approval_key = "io.membrane/approval";

// A 2026-07-28 client cannot be asked in the middle of a request: the gateway's question goes out
// with the answer (input_required, with a requestState of the gateway's), and the client's reply
// comes back with the re-sent request.
class StatelessClientPort final : public HttpPort {
 public:
  StatelessClientPort(http::Responder& out, const StatelessCall& call)
      : HttpPort(out), call_(call) {}

  awaitable<ClientAnswer> ask_client(std::string_view method, const mcp::Json& params) override {
    const bool approved_before = call_.state.value("ap", false);
    // An answer counts only on the re-sent request the gateway asked it for.
    const auto answer = call_.state.value("ask", false) ? call_.input_responses.find(approval_key)
                                                        : call_.input_responses.end();
    if (approved_before || answer != call_.input_responses.end()) {
      answered_ = true;
      co_return ClientAnswer{
          ClientAnswer::Kind::answered,
          {{"result", approved_before ? mcp::Json{{"action", "accept"}} : *answer}}};
    }
    question_ = {{"method", method}, {"params", params}};
    co_return ClientAnswer{ClientAnswer::Kind::deferred, {}};
  }

  // The gateway's own results (a refusal) are complete results of this revision too.
  void shape_own_answer(std::string& message) override {
    if (auto answer = parse_response(message)) {
      mcp::mark_complete_result(*answer, call_.message->method());
      message = dump(*answer);
    }
  }

  // The question that goes out with the answer, as an inputRequests entry.
  const mcp::Json& question() const { return question_; }
  // The client answered the gateway's question with this request (an approval carried on).
  bool answered_from_request() const { return answered_; }

 private:
  const StatelessCall& call_;
  mcp::Json question_;
  bool answered_ = false;
};

}  // namespace

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
    if (!stateless_upstream) {
      co_await out.send(http::Response{bhttp::status::accepted, 11});
      co_return;
    }
    HttpPort port(out);
    ExchangeRequest described;
    described.upstream = upstream.name();
    described.routing = upstream.member_routing();
    described.message = &message;
    described.identity = caller;
    described.protocol_version = checked.protocol_version;
    described.http = &request;
    described.origin = &origin;
    ExchangeRunner runner(filters_, port, std::move(described));
    if (co_await runner.run_request_filters() != ExchangeRunner::Verdict::forward) co_return;
    auto context = runner.forward_context(upstream);
    add_stateless_headers(context, message, &request);
    runner.forwarding();
    auto reply = co_await upstream.send(message, runner.forwarded_body(std::move(request.body())),
                                        nullptr, context);
    runner.upstream_answered();
    runner.exchange().outcome = outcome_of(reply);
    co_await runner.answer(reply_to_response(reply, nullptr, upstream.name()));
    co_return;
  }

  // The client as the filters know a session client, for this one request.
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

  StatelessClientPort port(out, call);
  ExchangeRequest described;
  described.upstream = upstream.name();
  described.routing = upstream.member_routing();
  described.message = &message;
  described.session = &client;
  described.identity = caller;
  described.protocol_version = checked.protocol_version;
  described.upstream_protocol_version = stateless_upstream
                                            ? std::string(mcp::stateless_protocol_version)
                                            : std::string(mcp::latest_session_protocol_version);
  described.http = &request;
  described.origin = &origin;
  if (call.state.value("rl", false))
    described.limits_charged = co_await first_use_of_request_state(call.sealed_state);
  ExchangeRunner runner(filters_, port, std::move(described));
  const auto verdict = co_await runner.run_request_filters();
  call.limits_charged = runner.exchange().limits.charged;
  if (verdict == ExchangeRunner::Verdict::deferred) {
    // A policy `ask`: the human is asked through the client, as an input request of ours.
    mcp::Json input_requests = {{std::string(approval_key), port.question()}};
    mcp::Json result = {{"resultType", "input_required"},
                        {"inputRequests", std::move(input_requests)},
                        {"requestState", seal_request_state(call, mcp::Json(), true)}};
    runner.exchange().outcome = Outcome::input_required;
    co_await runner.answer(json_response(200, result_message(id, std::move(result))));
    co_return;
  }
  if (verdict != ExchangeRunner::Verdict::forward) co_return;
  call.approved = port.answered_from_request();

  if (stateless_upstream) {
    co_await stateless_to_stateless(port, runner, call);
  } else {
    co_await stateless_to_session(port, runner, call);
  }
}

// A request re-sent with the answers to an input request continues its call, which spent its
// rate-limit tokens on the first round. Each sealed state spares the charge once, in the same store
// as the limits (so across replicas with Redis): replaying one state does not make calls free.
awaitable<bool> Gateway::first_use_of_request_state(const std::string& sealed_state) const {
  cluster::BucketRequest once;
  once.key = "request-state\x1f" + core::sha256_hex(sealed_state, 16);
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

// The body to send upstream: the filters' rewrite (trace context) or the client's, without what
// only the gateway reads (its approval answer, its sealed state).
mcp::Json Gateway::upstream_body(ExchangeRunner& runner, const StatelessCall& call) const {
  mcp::Json body = runner.forwarded_message();
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

awaitable<void> Gateway::stateless_to_stateless(HttpPort& port, ExchangeRunner& runner,
                                                StatelessCall& call) {
  Exchange& exchange = runner.exchange();
  http::Responder& out = port.responder();
  const mcp::Message& message = *call.message;
  const mcp::Json& id = message.id();
  auto& upstream = *call.upstream;

  // SEP-2243: a server over stdio cannot check the Mcp-Param-* headers its tools declare.
  if (!upstream.traits().sees_request_headers &&
      co_await refused_param_headers(runner, upstream, message, *call.request))
    co_return;

  const std::string cache_key = ResultCache::request_key(upstream.name(), message);
  if (auto cached = result_cache_.find(cache_key, call.client->subject)) {
    std::string body = result_message(id, std::move(*cached));
    exchange.outcome = Outcome::cached;
    runner.on_upstream_message(body);
    co_await runner.answer(json_response(200, std::move(body)));
    co_return;
  }

  const mcp::Json body = upstream_body(runner, call);
  auto context = runner.forward_context(upstream);
  add_stateless_headers(context, message, call.request);
  context.idempotent = !cache_key.empty();
  runner.forwarding();
  auto answered =
      co_await unless_client_leaves(out, upstream.send(message, dump(body), nullptr, context));
  if (!answered) {
    runner.abandoned_by_client();
    co_return;
  }
  auto& reply = *answered;
  runner.upstream_answered();

  using Kind = upstream::UpstreamReply::Kind;
  // `cacheable`: the text is what the upstream said (a response held back from a relayed stream
  // has been through the filters already, and the cache keeps only unfiltered results).
  const auto finish = [&](std::string& text, bool cacheable) {
    auto response = parse_response(text);
    if (!response) return;
    if (const auto result = response->find("result"); cacheable && result != response->end())
      result_cache_.store(cache_key, call.client->subject, *result);
    // Only a server that cannot check its Mcp-Param-* headers needs the gateway to know them.
    if (!upstream.traits().sees_request_headers)
      learn_param_headers(upstream, message.method(), *response);
    finish_stateless_result(*response, call);
    if (mcp::is_input_required(response->value("result", mcp::Json()))) {
      exchange.outcome = Outcome::input_required;
    }
    text = dump(*response);
  };
  if (reply.kind == Kind::message) {
    finish(reply.body, true);
    runner.on_upstream_message(reply.body);
    co_await runner.answer(json_response(200, std::move(reply.body)));
    co_return;
  }
  if (reply.kind != Kind::stream) {
    if (reply.kind == Kind::unavailable)
      log::warn("exchange ", message.method(), " on '", upstream.name(), "' failed: ", reply.body);
    exchange.outcome = outcome_of(reply);
    co_await runner.answer(reply_to_response(reply, id, upstream.name()));
    co_return;
  }

  exchange.http_status = 200;
  const StreamCount counted(active_streams_);
  auto pump = co_await EventPump::start(std::move(reply.stream));
  if (!co_await port.begin_stream()) {
    exchange.client_gone = true;
    pump->stop();
    co_return;
  }
  if (message.method() == "subscriptions/listen") out.set_interruptible(true);
  std::string held;
  const EventCheck invalidate = [&](std::string& data) {
    invalidate_cached_lists(upstream.name(), data);
    return true;
  };
  auto outcome =
      co_await relay_events(out, *pump, &runner, &id, options_.sse_keep_alive, &held, invalidate);
  // Closing the stream is how a 2026-07-28 client cancels: the upstream's stream closes too.
  pump->stop();
  if (outcome.cancelled) co_await asio::this_coro::reset_cancellation_state();
  out.set_interruptible(false);
  if (outcome.client_gone) {
    runner.abandoned_by_client();
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
  if (event.data.empty()) {
    co_await out.end_stream();
    co_return;
  }
  co_await runner.answer_message(std::move(event.data));
}

void Gateway::learn_param_headers(const upstream::Upstream& upstream, std::string_view method,
                                  const mcp::Json& response) {
  if (method != "tools/list") return;
  const auto result = response.find("result");
  if (result != response.end() && result->is_object())
    tool_param_headers_.learn(upstream.name(), *result);
}

awaitable<bool> Gateway::refused_param_headers(ExchangeRunner& runner,
                                               const upstream::Upstream& upstream,
                                               const mcp::Message& message,
                                               const http::Request& request) {
  if (message.method() != "tools/call") co_return false;
  auto mismatch = param_header_mismatch(upstream, message, request);
  if (!mismatch) co_return false;
  runner.exchange().outcome = Outcome::answered_by_gateway;
  mcp::Json error = {{"code", mcp::error_code::header_mismatch},
                     {"message", "Bad Request: the request headers and body disagree: " +
                                     mismatch->value("body", std::string())},
                     {"data", {{"mismatch", std::move(*mismatch)}}}};
  const mcp::Json answer = {{"jsonrpc", "2.0"}, {"id", message.id()}, {"error", std::move(error)}};
  co_await runner.answer(json_response(400, dump(answer)));
  co_return true;
}

std::optional<mcp::Json> Gateway::param_header_mismatch(const upstream::Upstream& upstream,
                                                        const mcp::Message& message,
                                                        const http::Request& request) const {
  const auto* params = message.params();
  if (!params || !params->contains("name") || !(*params)["name"].is_string()) return std::nullopt;
  const auto declared =
      tool_param_headers_.find(upstream.name(), (*params)["name"].get<std::string>());
  if (declared.empty()) return std::nullopt;
  const auto arguments = params->find("arguments");
  if (arguments == params->end() || !arguments->is_object()) return std::nullopt;
  return mcp::param_header_mismatch(
      declared, *arguments, [&request](std::string_view name) -> std::optional<std::string_view> {
        const auto found = request.find(name);
        if (found == request.end()) return std::nullopt;
        return found->value();
      });
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

}  // namespace membrane::gateway
