#include "gateway/filters/access_log/access_log_filter.hpp"

#include "membrane/core/log.hpp"

namespace membrane::gateway {
namespace {

class AccessLogFilter final : public Filter {
 public:
  void on_complete(const Exchange& exchange) override;
};

void AccessLogFilter::on_complete(const Exchange& exchange) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - exchange.started)
          .count();
  const mcp::Message* message = exchange.message;
  const std::string method = !message                 ? std::string("(listen)")
                             : message->is_response() ? std::string("(response)")
                                                      : std::string(message->method());
  const std::string_view target = target_name(exchange);
  const std::string policy = exchange.policy.summary();
  log::info("exchange upstream=", exchange.upstream,
            exchange.route.virtual_server.empty() ? "" : " virtual=", exchange.route.virtual_server,
            " transport=",
            exchange.transport == DownstreamTransport::legacy_sse ? "sse" : "streamable-http",
            " client=", exchange.client_address, " method=", method,
            target.empty() ? "" : " target=", target,
            message && message->is_request() ? " id=" + message->id().dump() : std::string(),
            " status=", exchange.http_status, " outcome=", to_string(exchange.outcome),
            " messages=", exchange.upstream_messages, " duration_us=", micros,
            policy.empty() ? "" : " policy=", policy,
            exchange.client_gone ? " client_gone=true" : "");
}

}  // namespace

std::unique_ptr<Filter> AccessLogFilterFactory::make(const Exchange&) const {
  // The level is read per exchange: a gateway at warn level makes no access-log filters.
  if (!log::enabled(log::Level::info)) return nullptr;
  return std::make_unique<AccessLogFilter>();
}

}  // namespace membrane::gateway
