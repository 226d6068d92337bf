// The trace stage: a SERVER span for every request the gateway handles and a CLIENT span for its
// hop to the upstream, named and attributed by the OpenTelemetry GenAI/MCP conventions
// (`tools/call get_weather`, mcp.method.name, gen_ai.tool.name, …) plus Membrane's own
// (membrane.policy.verdict, membrane.txn.id, …). The W3C trace context is read from the request
// headers or params._meta and passed on in both, so the upstream's spans join the same trace.
// Arguments and results never go into spans.
#pragma once

#include <memory>

#include "gateway/exchange.hpp"
#include "otel/otlp_exporter.hpp"

namespace membrane::gateway {

class TraceStage final : public ExchangeStage {
 public:
  explicit TraceStage(std::shared_ptr<otel::OtlpExporter> exporter)
      : exporter_(std::move(exporter)) {}
  std::string_view name() const override { return "trace"; }
  StageDecision on_request(Exchange& exchange) override;
  void on_complete(const Exchange& exchange) override;

 private:
  std::shared_ptr<otel::OtlpExporter> exporter_;
};

}  // namespace membrane::gateway
