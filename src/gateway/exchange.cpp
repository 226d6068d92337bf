#include "gateway/exchange.hpp"

#include "membrane/core/log.hpp"

namespace membrane::gateway {

void ExchangePipeline::add(std::unique_ptr<ExchangeStage> stage) {
  wants_messages_ = wants_messages_ || stage->wants_messages();
  stages_.push_back(std::move(stage));
}

StageDecision ExchangePipeline::on_request(Exchange& exchange) const {
  for (const auto& stage : stages_) {
    StageDecision decision = stage->on_request(exchange);
    if (decision.answered) return decision;
  }
  return StageDecision::proceed();
}

void ExchangePipeline::on_upstream_message(Exchange& exchange, std::string& message) const {
  ++exchange.upstream_messages;
  if (!wants_messages_) return;
  for (const auto& stage : stages_) {
    if (stage->wants_messages()) stage->on_upstream_message(exchange, message);
  }
}

void ExchangePipeline::on_complete(const Exchange& exchange) const {
  for (const auto& stage : stages_)
    stage->on_complete(exchange);
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
  log::info("exchange upstream=", exchange.upstream, " transport=",
            exchange.transport == DownstreamTransport::legacy_sse ? "sse" : "streamable-http",
            " client=", exchange.client_address, " method=", method,
            target.empty() ? "" : " target=", target,
            message && message->is_request() ? " id=" + message->id().dump() : std::string(),
            " status=", exchange.http_status, " outcome=", exchange.outcome,
            " messages=", exchange.upstream_messages, " duration_us=", micros,
            exchange.policy.empty() ? "" : " policy=", exchange.policy,
            exchange.client_gone ? " client_gone=true" : "");
}

}  // namespace membrane::gateway
