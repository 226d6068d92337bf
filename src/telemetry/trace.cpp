#include "membrane/telemetry/trace.hpp"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "membrane/core/ascii.hpp"
#include "membrane/core/json.hpp"

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

// The JSON text is written directly, not built as a tree and dumped: a batch holds hundreds of
// spans, and the tree cost more than the rest of the export.
void append_attribute_value(std::string& out, const AttributeValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) {
    out += "{\"stringValue\":";
    json::append_string(out, *text);
  } else if (const auto* number = std::get_if<std::int64_t>(&value)) {
    // OTLP JSON: 64-bit integers are strings.
    out += "{\"intValue\":\"";
    ascii::append_decimal(out, *number);
    out.push_back('"');
  } else if (const auto* real = std::get_if<double>(&value)) {
    out += "{\"doubleValue\":" + nlohmann::json(*real).dump();
  } else if (const auto* flag = std::get_if<bool>(&value)) {
    out += *flag ? "{\"boolValue\":true" : "{\"boolValue\":false";
  } else {
    out += "{\"arrayValue\":{\"values\":[";
    bool first = true;
    for (const auto& item : std::get<std::vector<std::string>>(value)) {
      out += first ? "{\"stringValue\":" : ",{\"stringValue\":";
      first = false;
      json::append_string(out, item);
      out.push_back('}');
    }
    out += "]}";
  }
  out.push_back('}');
}

void append_member(std::string& out, std::string_view key, std::string_view text) {
  out.push_back(',');
  json::append_string(out, key);
  out.push_back(':');
  json::append_string(out, text);
}

// OTLP JSON writes 64-bit integers as strings. Written in place: a nanosecond time has more
// digits than a short string holds, and a batch has two per span.
void append_integer_member(std::string& out, std::string_view key, std::uint64_t number) {
  out.push_back(',');
  json::append_string(out, key);
  out += ":\"";
  ascii::append_decimal(out, number);
  out.push_back('"');
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
  std::string out;
  // A span with the attributes the gateway sets is about 1.5 KiB: one allocation per batch.
  out.reserve(256 + spans.size() * 2048);
  out +=
      R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":)";
  json::append_string(out, service_name);
  out += R"(}},{"key":"service.version","value":{"stringValue":)";
  json::append_string(out, service_version);
  out += R"(}}]},"scopeSpans":[{"scope":{"name":"membrane","version":)";
  json::append_string(out, service_version);
  out += R"(},"spans":[)";
  bool first_span = true;
  for (const auto& span : spans) {
    out += first_span ? "{\"traceId\":" : ",{\"traceId\":";
    first_span = false;
    json::append_string(out, span.trace_id);
    append_member(out, "spanId", span.span_id);
    if (!span.parent_span_id.empty()) append_member(out, "parentSpanId", span.parent_span_id);
    if (!span.trace_state.empty()) append_member(out, "traceState", span.trace_state);
    append_member(out, "name", span.name);
    out += ",\"kind\":";
    ascii::append_decimal(out, static_cast<int>(span.kind));
    append_integer_member(out, "startTimeUnixNano", span.start_unix_nano);
    append_integer_member(out, "endTimeUnixNano", span.end_unix_nano);
    out += ",\"attributes\":[";
    bool first_attribute = true;
    for (const auto& [key, value] : span.attributes) {
      out += first_attribute ? "{\"key\":" : ",{\"key\":";
      first_attribute = false;
      json::append_string(out, key);
      out += ",\"value\":";
      append_attribute_value(out, value);
      out.push_back('}');
    }
    out.push_back(']');
    if (span.error) {
      out += ",\"status\":{\"code\":2";
      append_member(out, "message", span.status_message);
      out.push_back('}');
    }
    out.push_back('}');
  }
  out += "]}]}]}";
  return out;
}

}  // namespace membrane::telemetry
