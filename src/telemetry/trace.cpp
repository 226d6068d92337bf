#include "membrane/telemetry/trace.hpp"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include <random>

namespace membrane::telemetry {
namespace {

bool is_lower_hex(std::string_view text) {
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool all_zero(std::string_view text) {
  return text.find_first_not_of('0') == std::string_view::npos;
}

// Trace and span ids need to be unique and unpredictable enough to sample on, not secret: a
// per-thread generator seeded from the OS is enough and costs nanoseconds per id.
std::string random_hex(std::size_t bytes) {
  thread_local std::mt19937_64 generator = [] {
    std::uint64_t seed = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1)
      seed = std::random_device{}();
    return std::mt19937_64(seed);
  }();
  static constexpr char hex[] = "0123456789abcdef";
  for (;;) {
    std::string out;
    out.reserve(2 * bytes);
    for (std::size_t i = 0; i < bytes; i += 8) {
      std::uint64_t word = generator();
      for (std::size_t j = 0; j < 8 && i + j < bytes; ++j, word >>= 8) {
        out.push_back(hex[(word >> 4) & 15]);
        out.push_back(hex[word & 15]);
      }
    }
    if (!all_zero(out)) return out;
  }
}

nlohmann::json attribute_value(const AttributeValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) return {{"stringValue", *text}};
  // OTLP JSON: 64-bit integers are strings.
  if (const auto* number = std::get_if<std::int64_t>(&value))
    return {{"intValue", std::to_string(*number)}};
  if (const auto* real = std::get_if<double>(&value)) return {{"doubleValue", *real}};
  if (const auto* flag = std::get_if<bool>(&value)) return {{"boolValue", *flag}};
  nlohmann::json values = nlohmann::json::array();
  for (const auto& item : std::get<std::vector<std::string>>(value))
    values.push_back({{"stringValue", item}});
  return {{"arrayValue", {{"values", values}}}};
}

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view header) {
  // 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
  if (header.size() != 55 || header.substr(0, 3) != "00-" || header[35] != '-' || header[52] != '-')
    return std::nullopt;
  TraceParent parent;
  parent.trace_id = std::string(header.substr(3, 32));
  parent.span_id = std::string(header.substr(36, 16));
  const std::string_view flags = header.substr(53, 2);
  if (!is_lower_hex(parent.trace_id) || !is_lower_hex(parent.span_id) || !is_lower_hex(flags) ||
      all_zero(parent.trace_id) || all_zero(parent.span_id)) {
    return std::nullopt;
  }
  parent.sampled = (std::stoi(std::string(flags), nullptr, 16) & 1) != 0;
  return parent;
}

std::string format_traceparent(const TraceParent& parent) {
  return "00-" + parent.trace_id + "-" + parent.span_id + (parent.sampled ? "-01" : "-00");
}

std::string new_trace_id() {
  return random_hex(16);
}

std::string new_span_id() {
  return random_hex(8);
}

std::string otlp_json(const std::vector<Span>& spans, std::string_view service_name,
                      std::string_view service_version) {
  nlohmann::json encoded = nlohmann::json::array();
  for (const auto& span : spans) {
    nlohmann::json attributes = nlohmann::json::array();
    for (const auto& [key, value] : span.attributes)
      attributes.push_back({{"key", key}, {"value", attribute_value(value)}});
    nlohmann::json item = {{"traceId", span.trace_id},
                           {"spanId", span.span_id},
                           {"name", span.name},
                           {"kind", static_cast<int>(span.kind)},
                           {"startTimeUnixNano", std::to_string(span.start_unix_nano)},
                           {"endTimeUnixNano", std::to_string(span.end_unix_nano)},
                           {"attributes", std::move(attributes)}};
    if (!span.parent_span_id.empty()) item["parentSpanId"] = span.parent_span_id;
    if (!span.trace_state.empty()) item["traceState"] = span.trace_state;
    if (span.error) item["status"] = {{"code", 2}, {"message", span.status_message}};
    encoded.push_back(std::move(item));
  }
  const nlohmann::json request = {
      {"resourceSpans",
       {{{"resource",
          {{"attributes",
            {{{"key", "service.name"}, {"value", {{"stringValue", service_name}}}},
             {{"key", "service.version"}, {"value", {{"stringValue", service_version}}}}}}}},
         {"scopeSpans",
          {{{"scope", {{"name", "membrane"}, {"version", service_version}}},
            {"spans", std::move(encoded)}}}}}}}};
  return request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace membrane::telemetry
