// Unit tests for SEP-2243 Mcp-Param-* declarations and checks (mcp/param_headers.cpp).
#include "membrane/mcp/param_headers.hpp"

#include <catch2/catch.hpp>

#include <map>

namespace mcp = membrane::mcp;

namespace {

mcp::HeaderLookup headers(std::map<std::string, std::string> values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<std::string_view> {
    const auto found = values.find(std::string(name));
    if (found == values.end()) return std::nullopt;
    return std::string_view(found->second);
  };
}

const mcp::Json schema = mcp::Json::parse(R"({
  "type": "object",
  "properties": {
    "region": {"type": "string", "x-mcp-header": "Region"},
    "count": {"type": "integer", "x-mcp-header": "Count"},
    "dry": {"type": "boolean", "x-mcp-header": "Dry"},
    "nested": {"type": "object", "properties": {"zone": {"type": "string", "x-mcp-header": "Zone"}}},
    "listed": {"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}},
    "bad name": {"type": "string", "x-mcp-header": "has space"},
    "object": {"type": "object", "x-mcp-header": "Object"}
  }
})");

}  // namespace

TEST_CASE("Mcp-Param declarations: properties chains only, valid names, primitive types") {
  const auto declared = mcp::param_headers_of(schema);
  std::vector<std::string> names;
  for (const auto& d : declared)
    names.push_back(d.name);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"Count", "Dry", "Region", "Zone"});
  for (const auto& d : declared) {
    if (d.name == "Zone") CHECK(d.path == std::vector<std::string>{"nested", "zone"});
    CHECK(d.numeric == (d.name == "Count"));
  }
  CHECK(mcp::param_headers_of(mcp::Json::object()).empty());
  CHECK(mcp::param_headers_of(mcp::Json::array()).empty());
}

TEST_CASE("Mcp-Param declarations: a name given twice, in any case, declares nothing") {
  const auto declared = mcp::param_headers_of(mcp::Json::parse(R"({"properties": {
      "a": {"type": "string", "x-mcp-header": "Region"},
      "b": {"type": "string", "x-mcp-header": "REGION"},
      "c": {"type": "string", "x-mcp-header": "Zone"}}})"));
  REQUIRE(declared.size() == 1);
  CHECK(declared.front().name == "Zone");
}

TEST_CASE("Mcp-Param declarations: a schema nested without end is read only so deep") {
  mcp::Json deep = {{"type", "string"}, {"x-mcp-header", "Deep"}};
  for (int level = 0; level < 1000; ++level)
    deep = {{"type", "object"}, {"properties", {{"p", deep}}}};
  CHECK(mcp::param_headers_of(deep).empty());
}

TEST_CASE("Mcp-Param check: headers that repeat the arguments pass, literally or as Base64") {
  const auto declared = mcp::param_headers_of(schema);
  const mcp::Json arguments = {
      {"region", "eu-west"}, {"count", 42}, {"dry", true}, {"nested", {{"zone", "Zoë"}}}};
  CHECK_FALSE(mcp::param_header_mismatch(declared, arguments,
                                         headers({{"Mcp-Param-Region", " eu-west "},
                                                  {"Mcp-Param-Count", "42.0"},
                                                  {"Mcp-Param-Dry", "true"},
                                                  {"Mcp-Param-Zone", "=?base64?Wm/Dqw==?="}})));
  // An argument that is absent or null needs no header.
  CHECK_FALSE(mcp::param_header_mismatch(declared, {{"region", nullptr}}, headers({})));
}

TEST_CASE("Mcp-Param check: a missing, different or badly encoded header is named") {
  const auto declared = mcp::param_headers_of(schema);
  const mcp::Json arguments = {{"region", "Hello"}};
  const auto missing = mcp::param_header_mismatch(declared, arguments, headers({}));
  REQUIRE(missing);
  CHECK((*missing)["header"] == "Mcp-Param-Region");
  CHECK_THAT((*missing)["body"].get<std::string>(), Catch::Contains("absent"));

  const auto differs =
      mcp::param_header_mismatch(declared, arguments, headers({{"Mcp-Param-Region", "Other"}}));
  REQUIRE(differs);
  CHECK_THAT((*differs)["body"].get<std::string>(), Catch::Contains("\"Other\""));

  for (const std::string bad :
       {"=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?=", "=?base64?/w==?="}) {
    const auto invalid =
        mcp::param_header_mismatch(declared, arguments, headers({{"Mcp-Param-Region", bad}}));
    REQUIRE(invalid);
    CHECK_THAT((*invalid)["body"].get<std::string>(), Catch::Contains("invalid Base64"));
  }
  // Without both ends of the sentinel the value is taken as it is.
  CHECK_FALSE(mcp::param_header_mismatch(declared, {{"region", "=?base64?SGVsbG8="}},
                                         headers({{"Mcp-Param-Region", "=?base64?SGVsbG8="}})));
  CHECK_FALSE(mcp::param_header_mismatch(declared, arguments,
                                         headers({{"Mcp-Param-Region", "=?base64?SGVsbG8=?="}})));
  CHECK(
      mcp::param_header_mismatch(declared, {{"count", 42}}, headers({{"Mcp-Param-Count", "43"}})));
  CHECK(
      mcp::param_header_mismatch(declared, {{"count", 42}}, headers({{"Mcp-Param-Count", "4e1"}})));
}
