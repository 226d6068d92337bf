#include "gateway/exchange/runner.hpp"

#include "gateway/admission.hpp"
#include "gateway/responses.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {
namespace {

// A filter that keeps pausing is broken; the exchange ends instead of looping.
constexpr int max_pauses_per_filter = 16;

const mcp::Json& request_id_of(const Exchange& exchange) {
  static const mcp::Json none;
  return exchange.message && exchange.message->is_request() ? exchange.message->id() : none;
}

}  // namespace

std::shared_ptr<const ExchangeRequest::Sender> copy_sender(
    const http::Request& request, const http::RequestOrigin& origin, const FilterChain& chain,
    const std::shared_ptr<const identity::Identity>& identity, std::string session_id) {
  auto sender = std::make_shared<ExchangeRequest::Sender>();
  sender->client_address = client_address(origin);
  sender->session_id = std::move(session_id);
  sender->txn_token = std::string(request["Txn-Token"]);
  sender->traceparent = std::string(request["traceparent"]);
  sender->tracestate = std::string(request["tracestate"]);
  if (chain.wants_request_headers()) sender->headers = request_headers_json(request);
  sender->caller_key = caller_key(identity.get(), origin);
  return sender;
}

ExchangeRunner::ExchangeRunner(const FilterChain& chain, DownstreamPort& port,
                               ExchangeRequest request)
    : port_(port), sender_(std::move(request.sender)), origin_(request.origin) {
  exchange_->upstream = std::move(request.upstream);
  exchange_->transport = request.transport;
  exchange_->message = request.message;
  exchange_->session = request.session;
  exchange_->identity = std::move(request.identity);
  exchange_->upstream_protocol_version = request.upstream_protocol_version.empty()
                                             ? request.protocol_version
                                             : std::move(request.upstream_protocol_version);
  exchange_->protocol_version = std::move(request.protocol_version);
  if (origin_) exchange_->client_address = client_address(*origin_);
  if (request.http) {
    const http::Request& http = *request.http;
    exchange_->session_id = http[mcp::header::session_id];
    exchange_->incoming_txn_token = http["Txn-Token"];
    exchange_->incoming_traceparent = http["traceparent"];
    exchange_->incoming_tracestate = http["tracestate"];
    if (chain.wants_request_headers()) exchange_->request_headers = request_headers_json(http);
  } else if (sender_) {
    exchange_->client_address = sender_->client_address;
    exchange_->session_id = sender_->session_id;
    exchange_->incoming_txn_token = sender_->txn_token;
    exchange_->incoming_traceparent = sender_->traceparent;
    exchange_->incoming_tracestate = sender_->tracestate;
    exchange_->request_headers = sender_->headers;
  }
  exchange_->limits.charged = request.limits_charged;
  if (request.routing) route_through(*request.routing);
  filters_ = chain.make(*exchange_);
}

ExchangeRunner::~ExchangeRunner() {
  // An exchange abandoned midway (an exception, a cancelled coroutine) still leaves its record.
  try {
    complete();
  } catch (const std::exception& error) {
    log::error("exchange on '", exchange_->upstream, "': completing it failed: ", error.what());
  }
}

awaitable<ClientAnswer> ExchangeRunner::Asker::ask_client(std::string_view method,
                                                          const mcp::Json& params) {
  auto answer = co_await runner_.port_.ask_client(method, params);
  if (answer.kind == ClientAnswer::Kind::client_gone) runner_.exchange_->client_gone = true;
  co_return answer;
}

awaitable<bool> ExchangeRunner::Asker::keep_client_waiting() {
  const bool there = co_await runner_.port_.keep_client_waiting();
  if (!there) runner_.exchange_->client_gone = true;
  co_return there;
}

awaitable<FilterStep> ExchangeRunner::resume_paused(Filter& filter) {
  for (int round = 0; round < max_pauses_per_filter; ++round) {
    FilterStep step = co_await filter.resume(*exchange_, asker_);
    if (step.kind != FilterStep::Kind::pause) co_return step;
  }
  co_return FilterStep::answer(
      200, mcp::make_error_response(request_id_of(*exchange_), mcp::error_code::internal_error,
                                    "a gateway filter did not finish deciding"));
}

awaitable<ExchangeRunner::Verdict> ExchangeRunner::run_request_filters() {
  for (std::size_t index = 0; index < filters_.size(); ++index) {
    Filter& filter = *filters_[index];
    FilterStep step = filter.on_request(*exchange_);
    // Not `paused ? co_await … : step`: GCC 12 destroys a class temporary of a conditional
    // expression around a co_await twice.
    if (step.kind == FilterStep::Kind::pause) {
      FilterStep decided = co_await resume_paused(filter);
      step = std::move(decided);
    }
    if (step.kind == FilterStep::Kind::deferred) co_return Verdict::deferred;
    if (step.kind != FilterStep::Kind::answer) continue;
    // The client left while it was being asked: there is nobody to answer.
    if (exchange_->client_gone) {
      abandoned_by_client();
      co_return Verdict::answered;
    }
    exchange_->outcome = Outcome::answered_by_gateway;
    port_.shape_own_answer(step.body);
    co_await answer_json(step.http_status, std::move(step.body));
    co_return Verdict::answered;
  }
  if (exchange_->client_gone) {
    abandoned_by_client();
    co_return Verdict::answered;
  }
  co_return Verdict::forward;
}

void ExchangeRunner::route_through(const upstream::MemberRouting& routing) {
  RouteFact& route = exchange_->route;
  route.routing = &routing;
  route.virtual_server = routing.published_name();
  if (!exchange_->message) return;
  auto target = routing.route(*exchange_->message);
  if (!target) return;
  route.published_name = exchange_->message->target_name();
  route.own_name = std::move(target->name);
  exchange_->upstream = std::move(target->upstream);
}

upstream::ForwardContext ExchangeRunner::forward_context(const upstream::Upstream& upstream) const {
  upstream::ForwardContext context;
  if (!exchange_->route.own_name.empty())
    context.member = upstream::MemberTarget{exchange_->upstream, exchange_->route.own_name};
  context.protocol_version = exchange_->upstream_protocol_version;
  context.txn_token = exchange_->txn.token;
  context.traceparent = exchange_->trace.upstream_traceparent;
  context.tracestate = exchange_->trace.trace_state;
  if (upstream.traits().needs_initialize_replay) {
    context.caller = sender_   ? sender_->caller_key
                     : origin_ ? caller_key(exchange_->identity.get(), *origin_)
                               : std::string();
  }
  return context;
}

std::string ExchangeRunner::forwarded_body(std::string client_bytes) {
  if (exchange_->forwarded_meta.empty() ||
      mcp::splice_meta(client_bytes, exchange_->forwarded_meta))
    return client_bytes;
  // The text could not take the members without doubt (the client sent one of them itself, say):
  // rewritten through a tree, where the gateway's value wins.
  return forwarded_message().dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

mcp::Json ExchangeRunner::forwarded_message() const {
  mcp::Json body = exchange_->message->body();
  if (exchange_->forwarded_meta.empty()) return body;
  mcp::Json& params = body["params"];
  if (!params.is_object()) params = mcp::Json::object();
  mcp::Json& meta = params["_meta"];
  if (!meta.is_object()) meta = mcp::Json::object();
  for (const auto& [name, value] : exchange_->forwarded_meta)
    meta[name] = value;
  return body;
}

void ExchangeRunner::on_upstream_message(std::string& message) {
  ++exchange_->upstream_messages;
  for (auto filter = filters_.rbegin(); filter != filters_.rend(); ++filter)
    (*filter)->on_upstream_message(*exchange_, message);
}

bool ExchangeRunner::answer_gated() const {
  for (const auto& filter : filters_)
    if (filter->gates_answer()) return true;
  return false;
}

awaitable<std::string> ExchangeRunner::withheld_reason() {
  std::string withheld;
  for (auto& filter : filters_) {
    if (!filter->gates_answer()) continue;
    std::string reason = co_await filter->on_answer(*exchange_);
    if (withheld.empty()) withheld = std::move(reason);
  }
  co_return withheld;
}

awaitable<std::string> ExchangeRunner::answer_or_withheld(std::string message) {
  if (!answer_gated()) co_return message;
  const std::string withheld = co_await withheld_reason();
  if (withheld.empty()) co_return message;
  co_return mcp::make_error_response(request_id_of(*exchange_), mcp::error_code::internal_error,
                                     withheld);
}

awaitable<bool> ExchangeRunner::answer(http::Response response) {
  exchange_->http_status = response.result_int();
  std::string withheld;
  if (answer_gated()) withheld = co_await withheld_reason();
  if (!withheld.empty()) {
    response =
        jsonrpc_error(503, request_id_of(*exchange_), mcp::error_code::internal_error, withheld);
    exchange_->http_status = 503;
  }
  const bool sent = co_await port_.respond(std::move(response));
  if (!sent) exchange_->client_gone = true;
  co_return sent;
}

awaitable<bool> ExchangeRunner::answer_message(std::string message, bool last) {
  // A message on a stream: the HTTP status was 200 when the stream began (202 for legacy posts).
  if (exchange_->http_status == 0) exchange_->http_status = 200;
  std::string answer = co_await answer_or_withheld(std::move(message));
  const bool sent = co_await port_.deliver(std::move(answer), last);
  if (!sent) exchange_->client_gone = true;
  co_return sent;
}

awaitable<bool> ExchangeRunner::answer_json(unsigned status, std::string message) {
  if (port_.streaming()) co_return co_await answer_message(std::move(message));
  co_return co_await answer(json_response(status, std::move(message)));
}

void ExchangeRunner::abandoned_by_client() {
  exchange_->client_gone = true;
  exchange_->outcome = Outcome::client_gone;
}

void ExchangeRunner::complete() {
  if (completed_) return;
  completed_ = true;
  for (auto& filter : filters_)
    filter->on_complete(*exchange_);
}

}  // namespace membrane::gateway
