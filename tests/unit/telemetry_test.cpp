#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "membrane/telemetry/metrics.hpp"
#include "membrane/telemetry/trace.hpp"

using namespace membrane::telemetry;

TEST_CASE("traceparent follows the W3C rules") {
  const auto parent = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  REQUIRE(parent);
  CHECK(parent->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(parent->span_id == "00f067aa0ba902b7");
  CHECK(parent->sampled);
  CHECK_FALSE(
      parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")->sampled);
  CHECK(format_traceparent(*parent) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  CHECK_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  CHECK_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(parse_traceparent("garbage"));
  CHECK(new_trace_id().size() == 32);
  CHECK(new_span_id().size() == 16);
  CHECK(new_trace_id() != new_trace_id());
}

TEST_CASE("spans encode as OTLP JSON") {
  Span span;
  span.trace_id = new_trace_id();
  span.span_id = new_span_id();
  span.name = "tools/call echo";
  span.kind = SpanKind::server;
  span.start_unix_nano = 1'790'000'000'000'000'000ULL;
  span.end_unix_nano = span.start_unix_nano + 5;
  span.attributes = {{"s", std::string("x")},
                     {"i", std::int64_t{42}},
                     {"n", std::int64_t{-7}},
                     {"b", true},
                     {"a", std::vector<std::string>{"r1"}}};
  span.error = true;
  span.status_message = "upstream_unavailable";
  const auto document = nlohmann::json::parse(otlp_json({span}, "membrane", "0.1.0"));
  const auto& encoded = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  CHECK(encoded["kind"] == 2);
  CHECK(encoded["startTimeUnixNano"] == "1790000000000000000");
  CHECK(encoded["endTimeUnixNano"] == "1790000000000000005");
  CHECK(encoded["attributes"][1]["value"]["intValue"] == "42");
  CHECK(encoded["attributes"][2]["value"]["intValue"] == "-7");
  CHECK(encoded["attributes"][3]["value"]["boolValue"] == true);
  CHECK(encoded["attributes"][4]["value"]["arrayValue"]["values"][0]["stringValue"] == "r1");
  CHECK(encoded["status"]["code"] == 2);
  CHECK_FALSE(encoded.contains("parentSpanId"));
  CHECK(document["resourceSpans"][0]["resource"]["attributes"][0]["key"] == "service.name");
}

TEST_CASE("span text that needs escaping survives the export encoding") {
  Span span;
  span.trace_id = new_trace_id();
  span.span_id = new_span_id();
  span.parent_span_id = new_span_id();
  span.trace_state = "k=\"v\"";
  span.name = "tools/call \xff\n\"quoted\"";
  span.attributes = {{"gen_ai.tool.call.arguments", std::string("{\"a\":\"\\u0000\"}\x01")},
                     {"ratio", 0.25},
                     {"rules", std::vector<std::string>{"a\"b", "\xc3\xa9"}}};
  span.error = true;
  span.status_message = "line\nbreak";
  const auto document = nlohmann::json::parse(otlp_json({span, span}, "mem\"brane", "1\n"));
  const auto& spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"];
  REQUIRE(spans.size() == 2);
  const auto& encoded = spans[1];
  // Invalid UTF-8 is replaced (U+FFFD), as the gateway's other JSON output does.
  CHECK(encoded["name"] == "tools/call \xef\xbf\xbd\n\"quoted\"");
  CHECK(encoded["parentSpanId"] == span.parent_span_id);
  CHECK(encoded["traceState"] == span.trace_state);
  CHECK(encoded["attributes"][0]["value"]["stringValue"] == "{\"a\":\"\\u0000\"}\x01");
  CHECK(encoded["attributes"][1]["value"]["doubleValue"] == 0.25);
  CHECK(encoded["attributes"][2]["value"]["arrayValue"]["values"][0]["stringValue"] == "a\"b");
  CHECK(encoded["status"]["message"] == "line\nbreak");
  CHECK(document["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"] ==
        "mem\"brane");
  CHECK(document["resourceSpans"][0]["scopeSpans"][0]["scope"]["version"] == "1\n");
}

TEST_CASE("metrics render in the Prometheus text format") {
  Metrics metrics;
  metrics.declare_counter("requests_total", "Requests.");
  metrics.declare_histogram("latency_seconds", "Latency.", {0.1, 1});
  metrics.declare_gauge_function("open", "Open now.", [] { return 3.0; });
  metrics.add("requests_total", {{"method", "tools/call"}, {"path", "a\"b\\c\nd"}});
  metrics.add("requests_total", {{"method", "tools/call"}, {"path", "a\"b\\c\nd"}}, 2);
  metrics.observe("latency_seconds", {}, 0.05);
  metrics.observe("latency_seconds", {}, 0.5);
  metrics.add("unknown_total", {});  // undeclared: ignored
  const std::string text = metrics.exposition();
  CHECK_THAT(text, Catch::Contains("# TYPE requests_total counter\n"));
  CHECK_THAT(text,
             Catch::Contains("requests_total{method=\"tools/call\",path=\"a\\\"b\\\\c\\nd\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{le=\"0.1\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{le=\"1\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_bucket{le=\"+Inf\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("latency_seconds_count 2\n"));
  CHECK_THAT(text, Catch::Contains("open 3\n"));
  CHECK(text.find("unknown_total") == std::string::npos);
}
