// Spans as the gateway records them, W3C trace context (traceparent) parsing and formatting, and
// their OTLP/HTTP JSON encoding (opentelemetry-proto, JSON mapping: hex ids, nanosecond times as
// strings, enum values as integers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace membrane::telemetry {

struct TraceParent {
  std::string trace_id;  // 32 lowercase hex, not all zero
  std::string span_id;   // 16 lowercase hex, not all zero
  bool sampled = true;
};

// `00-<trace id>-<span id>-<flags>`; nullopt when malformed (the W3C rules: version 00 only,
// lowercase hex, ids not all zero).
std::optional<TraceParent> parse_traceparent(std::string_view header);
std::string format_traceparent(const TraceParent& parent);
std::string new_trace_id();
std::string new_span_id();

enum class SpanKind { internal = 1, server = 2, client = 3 };

using AttributeValue =
    std::variant<std::string, std::int64_t, double, bool, std::vector<std::string>>;

struct Span {
  std::string trace_id;
  std::string span_id;
  std::string parent_span_id;  // empty for a root span
  std::string trace_state;
  std::string name;
  SpanKind kind = SpanKind::internal;
  std::uint64_t start_unix_nano = 0;
  std::uint64_t end_unix_nano = 0;
  // Keys are the semantic conventions' names, string literals: a span is built per exchange, and
  // its keys need no copies.
  std::vector<std::pair<std::string_view, AttributeValue>> attributes;
  bool error = false;  // status code ERROR (2); unset otherwise
  std::string status_message;
};

// An ExportTraceServiceRequest in OTLP JSON for `spans` of one service.
std::string otlp_json(const std::vector<Span>& spans, std::string_view service_name,
                      std::string_view service_version);

}  // namespace membrane::telemetry
