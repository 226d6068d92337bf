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

struct TraceCapture {
  bool arguments = false;  // gen_ai.tool.call.arguments (after redaction)
  bool results = false;    // gen_ai.tool.call.result (after redaction)
};

class TraceStage final : public ExchangeStage {
 public:
  TraceStage(std::shared_ptr<otel::OtlpExporter> exporter, TraceCapture capture = {})
      : exporter_(std::move(exporter)), capture_(capture) {}
  std::string_view name() const override { return "trace"; }
  StageDecision on_request(Exchange& exchange) override;
  // Sees replies last (first stage), so a captured result is already redacted.
  bool wants_messages() const override { return capture_.results; }
  void on_upstream_message(Exchange& exchange, std::string& message) override;
  void on_complete(const Exchange& exchange) override;

 private:
  std::shared_ptr<otel::OtlpExporter> exporter_;
  TraceCapture capture_;
};

}  // namespace membrane::gateway
