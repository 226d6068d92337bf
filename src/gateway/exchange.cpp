#include "gateway/exchange.hpp"

#include <algorithm>

#include "membrane/core/log.hpp"

namespace membrane::gateway {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::ok:
      return "ok";
    case Outcome::error_response:
      return "error_response";
    case Outcome::answered_by_gateway:
      return "answered_by_gateway";
    case Outcome::cached:
      return "cached";
    case Outcome::input_required:
      return "input_required";
    case Outcome::left_to_resumption:
      return "left_to_resumption";
    case Outcome::cancelled:
      return "cancelled";
    case Outcome::client_gone:
      return "client_gone";
    case Outcome::answer_withheld:
      return "answer_withheld";
    case Outcome::overloaded:
      return "overloaded";
    case Outcome::rejected:
      return "rejected";
    case Outcome::session_not_found:
      return "session_not_found";
    case Outcome::upstream_unavailable:
      return "upstream_unavailable";
    case Outcome::upstream_stream_broken:
      return "upstream_stream_broken";
  }
  return "unknown";
}

bool is_failure(Outcome outcome) {
  switch (outcome) {
    case Outcome::ok:
    case Outcome::answered_by_gateway:
    case Outcome::cached:
    case Outcome::input_required:
      return false;
    default:
      return true;
  }
}

bool is_upstream_failure(Outcome outcome) {
  return outcome == Outcome::upstream_unavailable || outcome == Outcome::upstream_stream_broken ||
         outcome == Outcome::rejected || outcome == Outcome::session_not_found;
}

void ExchangePipeline::add(std::unique_ptr<ExchangeStage> stage) {
  wants_messages_ = wants_messages_ || stage->wants_messages();
  stages_.push_back(std::move(stage));
}

namespace {
StageDecision run_from(const std::vector<std::unique_ptr<ExchangeStage>>& stages, std::size_t first,
                       Exchange& exchange) {
  for (std::size_t index = first; index < stages.size(); ++index) {
    StageDecision decision = stages[index]->on_request(exchange);
    if (decision.kind == StageDecision::Kind::confirm) exchange.confirming_stage = index;
    if (decision.kind == StageDecision::Kind::charge_limits) exchange.limiting_stage = index;
    if (decision.kind != StageDecision::Kind::proceed) return decision;
  }
  return StageDecision::proceed();
}
}  // namespace

StageDecision ExchangePipeline::on_request(Exchange& exchange) const {
  return run_from(stages_, 0, exchange);
}

StageDecision ExchangePipeline::on_confirmation(Exchange& exchange,
                                                const Confirmation& confirmation) const {
  const std::size_t asker = exchange.confirming_stage;
  if (asker >= stages_.size()) return StageDecision::proceed();
  StageDecision decision = stages_[asker]->on_confirmation(exchange, confirmation);
  if (decision.kind == StageDecision::Kind::confirm) {
    // One question per stage and exchange: asking again would loop.
    return StageDecision::answer(
        200, mcp::make_error_response(exchange.message ? exchange.message->id() : mcp::Json(),
                                      mcp::error_code::internal_error,
                                      "a gateway stage asked for a second confirmation"));
  }
  if (decision.kind == StageDecision::Kind::charge_limits) exchange.limiting_stage = asker;
  if (decision.kind != StageDecision::Kind::proceed) return decision;
  return run_from(stages_, asker + 1, exchange);
}

StageDecision ExchangePipeline::on_limits(Exchange& exchange, const LimitOutcome& outcome) const {
  const std::size_t asker = exchange.limiting_stage;
  if (asker >= stages_.size()) return StageDecision::proceed();
  StageDecision decision = stages_[asker]->on_limits(exchange, outcome);
  if (decision.kind == StageDecision::Kind::confirm ||
      decision.kind == StageDecision::Kind::charge_limits) {
    // Limits come last in a stage's judgement: anything more would loop.
    return StageDecision::answer(
        200, mcp::make_error_response(exchange.message ? exchange.message->id() : mcp::Json(),
                                      mcp::error_code::internal_error,
                                      "a gateway stage asked for more after its rate limits"));
  }
  if (decision.kind == StageDecision::Kind::answer) return decision;
  return run_from(stages_, asker + 1, exchange);
}

void ExchangePipeline::on_upstream_message(Exchange& exchange, std::string& message) const {
  ++exchange.upstream_messages;
  if (!wants_messages_) return;
  // Replies travel back through the stages in reverse order (as in Envoy's filter chains): the
  // first stage sees a reply last, after every later stage has rewritten it.
  for (auto stage = stages_.rbegin(); stage != stages_.rend(); ++stage) {
    if ((*stage)->wants_messages()) (*stage)->on_upstream_message(exchange, message);
  }
}

bool ExchangePipeline::wants_request_headers() const {
  return std::any_of(stages_.begin(), stages_.end(),
                     [](const auto& stage) { return stage->wants_request_headers(); });
}

std::string ExchangePipeline::on_answer(Exchange& exchange) const {
  std::string withheld;
  for (const auto& stage : stages_) {
    std::string reason = stage->on_answer(exchange);
    if (withheld.empty()) withheld = std::move(reason);
  }
  return withheld;
}

void ExchangePipeline::on_complete(const Exchange& exchange) const {
  for (const auto& stage : stages_)
    stage->on_complete(exchange);
}

std::string Exchange::PolicyRecord::notes() const {
  if (!redacted) return note;
  return note.empty() ? std::string("redacted") : note + ":redacted";
}

std::string Exchange::PolicyRecord::summary() const {
  if (!verdict.empty()) {
    const std::string after = notes();
    return verdict + ":" + rule + (after.empty() ? "" : ":" + after);
  }
  if (redacted) return "redacted";
  return hidden_tools ? "hid:" + std::to_string(hidden_tools) : std::string();
}

void AccessLogStage::on_complete(const Exchange& exchange) {
  if (!log::enabled(log::Level::info)) return;
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - exchange.started)
          .count();
  const mcp::Message* message = exchange.message;
  const std::string method = !message                 ? std::string("(listen)")
                             : message->is_response() ? std::string("(response)")
                                                      : std::string(message->method());
  const std::string_view target = message ? message->target_name() : std::string_view();
  const std::string policy = exchange.policy.summary();
  log::info("exchange upstream=", exchange.upstream, " transport=",
            exchange.transport == DownstreamTransport::legacy_sse ? "sse" : "streamable-http",
            " client=", exchange.client_address, " method=", method,
            target.empty() ? "" : " target=", target,
            message && message->is_request() ? " id=" + message->id().dump() : std::string(),
            " status=", exchange.http_status, " outcome=", to_string(exchange.outcome),
            " messages=", exchange.upstream_messages, " duration_us=", micros,
            policy.empty() ? "" : " policy=", policy,
            exchange.client_gone ? " client_gone=true" : "");
}

}  // namespace membrane::gateway
