#include "gateway/filters/trace/trace_filter.hpp"

#include "gateway/responses.hpp"
#include "membrane/core/ascii.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/sha256.hpp"

namespace membrane::gateway {
namespace {

// Exchanges are timed on the steady clock; spans need wall-clock time. One reading of both clocks
// per exchange converts all its times.
class WallClock {
 public:
  WallClock()
      : steady_now_(Clock::now()),
        wall_now_(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()) {}

  Clock::time_point steady_now() const { return steady_now_; }

  std::uint64_t unix_nanos(Clock::time_point when) const {
    const auto before_now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(steady_now_ - when).count();
    return static_cast<std::uint64_t>(wall_now_ - before_now);
  }

 private:
  Clock::time_point steady_now_;
  std::int64_t wall_now_;
};

// One span of this exchange's trace.
telemetry::Span make_span(const TraceFact& trace, std::string span_id, std::string parent,
                          std::string name, telemetry::SpanKind kind, const WallClock& clock,
                          Clock::time_point start) {
  telemetry::Span span;
  span.trace_id = trace.trace_id;
  span.span_id = std::move(span_id);
  span.parent_span_id = std::move(parent);
  span.trace_state = trace.trace_state;
  span.name = std::move(name);
  span.kind = kind;
  span.start_unix_nano = clock.unix_nanos(start);
  span.end_unix_nano = clock.unix_nanos(clock.steady_now());
  return span;
}

// A JSON-RPC id as text: a string as it is, a number in decimal (most clients count).
std::string request_id_text(const mcp::Json& id) {
  if (id.is_string()) return id.get<std::string>();
  std::string text;
  if (id.is_number_unsigned())
    ascii::append_decimal(text, id.get<std::uint64_t>());
  else if (id.is_number_integer())
    ascii::append_decimal(text, id.get<std::int64_t>());
  else
    text = id.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  return text;
}

std::string span_name(const mcp::Message& message) {
  const auto target = message.target_name();
  return std::string(message.method()) + (target.empty() ? "" : " " + std::string(target));
}

class TraceFilter final : public Filter {
 public:
  TraceFilter(otel::OtlpExporter& exporter, TraceCapture capture)
      : exporter_(exporter), capture_(capture) {}
  FilterStep on_request(Exchange& exchange) override;
  // Sees replies last (first filter), so a captured result is already redacted.
  void on_upstream_message(Exchange& exchange, std::string& message) override;
  void on_complete(const Exchange& exchange) override;

 private:
  otel::OtlpExporter& exporter_;
  TraceCapture capture_;
  std::string captured_result_;
};

}  // namespace

std::unique_ptr<Filter> TraceFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message || !exchange.message->is_request()) return nullptr;
  return std::make_unique<TraceFilter>(*exporter_, capture_);
}

FilterStep TraceFilter::on_request(Exchange& exchange) {
  const mcp::Message* message = exchange.message;
  auto& trace = exchange.trace;
  std::optional<telemetry::TraceParent> parent;
  std::string state(exchange.incoming_tracestate);
  if (!exchange.incoming_traceparent.empty())
    parent = telemetry::parse_traceparent(exchange.incoming_traceparent);
  const mcp::Json* params = message->params();
  if (!parent && params) {
    // MCP carries trace context in params._meta as well (for transports without headers).
    if (const auto meta = params->find("_meta"); meta != params->end() && meta->is_object()) {
      if (const auto value = meta->find("traceparent"); value != meta->end() && value->is_string())
        parent = telemetry::parse_traceparent(value->get_ref<const std::string&>());
      if (const auto value = meta->find("tracestate"); value != meta->end() && value->is_string())
        state = value->get<std::string>();
    }
  }
  trace.trace_id = parent ? parent->trace_id : telemetry::new_trace_id();
  trace.parent_span_id = parent ? parent->span_id : std::string();
  trace.sampled = parent ? parent->sampled : true;
  trace.trace_state = std::move(state);
  trace.server_span_id = telemetry::new_span_id();
  trace.client_span_id = telemetry::new_span_id();
  trace.upstream_traceparent =
      telemetry::format_traceparent({trace.trace_id, trace.client_span_id, trace.sampled});

  // The upstream sees the context in params._meta too (stdio servers have no headers).
  exchange.forwarded_meta.emplace_back("traceparent", trace.upstream_traceparent);
  if (!trace.trace_state.empty())
    exchange.forwarded_meta.emplace_back("tracestate", trace.trace_state);
  return FilterStep::proceed();
}

void TraceFilter::on_upstream_message(Exchange& exchange, std::string& message) {
  if (!capture_.results || exchange.trace.trace_id.empty()) return;
  if (message.find("\"result\"") == std::string::npos) return;
  const auto body = json::parse_or_discarded(message);
  if (!body.is_object() || body.value("id", mcp::Json()) != exchange.message->id()) return;
  if (const auto result = body.find("result"); result != body.end())
    captured_result_ = result->dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

void TraceFilter::on_complete(const Exchange& exchange) {
  const mcp::Message* message = exchange.message;
  const auto& trace = exchange.trace;
  if (trace.trace_id.empty() || !trace.sampled) return;
  const WallClock clock;
  const std::string name = span_name(*message);
  const std::string method(message->method());

  telemetry::Span server = make_span(trace, trace.server_span_id, trace.parent_span_id, name,
                                     telemetry::SpanKind::server, clock, exchange.started);
  auto& attributes = server.attributes;
  // Room for the usual set; 16 pairs stay within the allocator's per-thread cache.
  attributes.reserve(16);
  attributes.emplace_back("mcp.method.name", method);
  if (!exchange.session_id.empty())
    attributes.emplace_back("mcp.session.id", core::session_digest(exchange.session_id));
  if (!exchange.protocol_version.empty())
    attributes.emplace_back("mcp.protocol.version", exchange.protocol_version);
  if (!exchange.upstream_protocol_version.empty())
    attributes.emplace_back("membrane.upstream.protocol.version",
                            exchange.upstream_protocol_version);
  const mcp::Json& id = message->id();
  attributes.emplace_back("jsonrpc.request.id", request_id_text(id));
  attributes.emplace_back("network.transport", std::string("tcp"));
  attributes.emplace_back("network.protocol.name", std::string("http"));
  if (!exchange.client_address.empty())
    attributes.emplace_back("client.address",
                            exchange.client_address.substr(0, exchange.client_address.rfind(':')));
  attributes.emplace_back("membrane.upstream", exchange.upstream);
  if (!exchange.route.virtual_server.empty()) {
    attributes.emplace_back("membrane.virtual_server", exchange.route.virtual_server);
    if (!exchange.route.published_name.empty())
      attributes.emplace_back("membrane.published_name", exchange.route.published_name);
  }
  if (!exchange.task.id.empty()) attributes.emplace_back("mcp.task.id", exchange.task.id);
  if (!exchange.task.status.empty())
    attributes.emplace_back("mcp.task.status", exchange.task.status);
  if (method == "tools/call") {
    attributes.emplace_back("gen_ai.operation.name", std::string("execute_tool"));
    attributes.emplace_back("gen_ai.tool.name", std::string(target_name(exchange)));
  } else if (method == "resources/read") {
    attributes.emplace_back("mcp.resource.uri", std::string(target_name(exchange)));
  } else if (method == "prompts/get") {
    attributes.emplace_back("gen_ai.prompt.name", std::string(target_name(exchange)));
  }
  if (!exchange.policy.verdict.empty()) {
    attributes.emplace_back("membrane.policy.verdict", exchange.policy.verdict);
    attributes.emplace_back("membrane.policy.rule_ids",
                            std::vector<std::string>{exchange.policy.rule});
  }
  if (const auto txn = exchange.txn.id(); !txn.empty())
    attributes.emplace_back("membrane.txn.id", std::string(txn));
  const bool failed = is_failure(exchange.outcome);
  if (failed || exchange.http_status >= 400) {
    server.error = true;
    server.status_message = to_string(exchange.outcome);
    attributes.emplace_back("error.type", failed ? std::string(to_string(exchange.outcome))
                                                 : std::to_string(exchange.http_status));
  }
  // Redacted now, by the redactor the policy (later in the chain) has put in place.
  if (const auto* params = message->params(); capture_.arguments && params) {
    if (const auto arguments = params->find("arguments"); arguments != params->end()) {
      mcp::Json copy = *arguments;
      if (exchange.policy.redactor) exchange.policy.redactor->redact(copy);
      attributes.emplace_back("gen_ai.tool.call.arguments",
                              copy.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
    }
  }
  if (!captured_result_.empty())
    attributes.emplace_back("gen_ai.tool.call.result", captured_result_);
  if (exchange.http_status)
    attributes.emplace_back("http.response.status_code",
                            static_cast<std::int64_t>(exchange.http_status));

  if (exchange.forwarded_at != Clock::time_point{}) {
    telemetry::Span client = make_span(trace, trace.client_span_id, trace.server_span_id, name,
                                       telemetry::SpanKind::client, clock, exchange.forwarded_at);
    client.attributes.reserve(8);
    client.attributes.emplace_back("mcp.method.name", method);
    client.attributes.emplace_back("membrane.upstream", exchange.upstream);
    client.attributes.emplace_back("network.transport", std::string("tcp"));
    // The client span is the upstream hop: its revision is the one spoken to the upstream.
    if (!exchange.upstream_protocol_version.empty())
      client.attributes.emplace_back("mcp.protocol.version", exchange.upstream_protocol_version);
    if (method == "tools/call") {
      client.attributes.emplace_back("gen_ai.operation.name", std::string("execute_tool"));
      client.attributes.emplace_back("gen_ai.tool.name", std::string(target_name(exchange)));
    }
    if (server.error) {
      client.error = true;
      client.status_message = to_string(exchange.outcome);
    }
    exporter_.enqueue(std::move(client));
  }
  exporter_.enqueue(std::move(server));
}

}  // namespace membrane::gateway
