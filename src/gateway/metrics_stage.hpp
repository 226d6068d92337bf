// The metrics stage: counts every exchange into the Prometheus families of the admin listener's
// /metrics: requests by method, upstream, status and outcome; latency (whole exchange, the
// gateway's own share before forwarding, the upstream's wait); policy decisions by verdict and
// rule; upstream failures.
#pragma once

#include <memory>

#include "gateway/exchange.hpp"
#include "membrane/telemetry/metrics.hpp"

namespace membrane::gateway {

class MetricsStage final : public ExchangeStage {
 public:
  // Declares the families it records into.
  explicit MetricsStage(std::shared_ptr<telemetry::Metrics> metrics);
  std::string_view name() const override { return "metrics"; }
  void on_complete(const Exchange& exchange) override;

 private:
  std::shared_ptr<telemetry::Metrics> metrics_;
};

}  // namespace membrane::gateway
