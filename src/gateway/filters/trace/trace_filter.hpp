// The trace filter: a SERVER span for every request the gateway handles and a CLIENT span for its
// hop to the upstream, named and attributed by the OpenTelemetry GenAI/MCP conventions
// (`tools/call get_weather`, mcp.method.name, gen_ai.tool.name, …) plus Membrane's own
// (membrane.policy.verdict, membrane.txn.id, …). The W3C trace context is read from the request
// headers or params._meta and passed on in both (TraceFact), so the upstream's spans join the same
// trace. Arguments and results go into spans only when the operator opted in, after redaction.
#pragma once

#include <memory>

#include "gateway/exchange/filter.hpp"
#include "otel/otlp_exporter.hpp"

namespace membrane::gateway {

struct TraceCapture {
  bool arguments = false;  // gen_ai.tool.call.arguments (after redaction)
  bool results = false;    // gen_ai.tool.call.result (after redaction)
};

class TraceFilterFactory final : public FilterFactory {
 public:
  TraceFilterFactory(std::shared_ptr<otel::OtlpExporter> exporter, TraceCapture capture = {})
      : exporter_(std::move(exporter)), capture_(capture) {}
  std::string_view name() const override { return "trace"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;

 private:
  std::shared_ptr<otel::OtlpExporter> exporter_;
  TraceCapture capture_;
};

}  // namespace membrane::gateway
