#include "gateway/filters/metrics/metrics_filter.hpp"

namespace membrane::gateway {
namespace {

double seconds(Clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

const std::vector<double> latency_buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10,    30,     60};

class MetricsFilter final : public Filter {
 public:
  explicit MetricsFilter(telemetry::Metrics& metrics) : metrics_(metrics) {}
  void on_complete(const Exchange& exchange) override;

 private:
  telemetry::Metrics& metrics_;
};

}  // namespace

MetricsFilterFactory::MetricsFilterFactory(std::shared_ptr<telemetry::Metrics> metrics)
    : metrics_(std::move(metrics)) {
  metrics_->declare_counter("membrane_requests_total",
                            "MCP messages handled, by method, upstream, HTTP status and outcome.");
  metrics_->declare_histogram("membrane_request_duration_seconds",
                              "Whole exchanges, from the request to the end of the response.",
                              latency_buckets);
  metrics_->declare_histogram(
      "membrane_gateway_duration_seconds",
      "The gateway's own share: from the request to handing it to the upstream (auth, policy, "
      "transaction token).",
      latency_buckets);
  metrics_->declare_histogram("membrane_upstream_duration_seconds",
                              "From handing a request to the upstream to the start of its reply.",
                              latency_buckets);
  metrics_->declare_counter(
      "membrane_policy_decisions_total",
      "Policy decisions that a rule (or the default) made, by verdict and rule.");
  metrics_->declare_counter("membrane_upstream_errors_total",
                            "Exchanges an upstream failed: unreachable, broken stream, refused.");
}

std::unique_ptr<Filter> MetricsFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message) return nullptr;  // listen streams are counted as streams, not requests
  return std::make_unique<MetricsFilter>(*metrics_);
}

void MetricsFilter::on_complete(const Exchange& exchange) {
  const mcp::Message* message = exchange.message;
  const std::string method =
      message->is_response() ? std::string("(response)") : std::string(message->method());
  const std::string status = std::to_string(exchange.http_status);
  metrics_.add("membrane_requests_total", {{"method", method},
                                           {"upstream", exchange.upstream},
                                           {"status", status},
                                           {"outcome", std::string(to_string(exchange.outcome))}});
  metrics_.observe("membrane_request_duration_seconds",
                   {{"method", method}, {"upstream", exchange.upstream}},
                   seconds(Clock::now() - exchange.started));
  if (exchange.forwarded_at != Clock::time_point{}) {
    metrics_.observe("membrane_gateway_duration_seconds", {{"method", method}},
                     seconds(exchange.forwarded_at - exchange.started));
    metrics_.observe("membrane_upstream_duration_seconds", {{"upstream", exchange.upstream}},
                     seconds(exchange.upstream_wait));
  }
  if (!exchange.policy.verdict.empty()) {
    metrics_.add("membrane_policy_decisions_total",
                 {{"verdict", exchange.policy.verdict}, {"rule", exchange.policy.rule}});
  }
  if (is_upstream_failure(exchange.outcome)) {
    metrics_.add(
        "membrane_upstream_errors_total",
        {{"upstream", exchange.upstream}, {"outcome", std::string(to_string(exchange.outcome))}});
  }
}

}  // namespace membrane::gateway
