// The metrics filter: counts every exchange into the Prometheus families of the admin listener's
// /metrics: requests by method, upstream, status and outcome; latency (whole exchange, the
// gateway's own share before forwarding, the upstream's wait); policy decisions by verdict and
// rule; upstream failures.
#pragma once

#include <memory>

#include "gateway/exchange/filter.hpp"
#include "membrane/telemetry/metrics.hpp"

namespace membrane::gateway {

class MetricsFilterFactory final : public FilterFactory {
 public:
  // Declares the families it records into.
  explicit MetricsFilterFactory(std::shared_ptr<telemetry::Metrics> metrics);
  std::string_view name() const override { return "metrics"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;

 private:
  std::shared_ptr<telemetry::Metrics> metrics_;
};

}  // namespace membrane::gateway
