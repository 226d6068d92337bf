#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "gateway/filters/policy/tool_catalog.hpp"
#include "membrane/mcp/tool_pins.hpp"

using namespace membrane;

namespace {
mcp::Json weather(const std::string& description) {
  return {{"name", "weather"},
          {"description", description},
          {"inputSchema", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}};
}

std::string temporary_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}
}  // namespace

TEST_CASE("a tool's digest ignores key order and names the parts that changed") {
  const auto pinned = mcp::digest_tool(weather("Current weather."));
  const auto reordered = mcp::digest_tool(mcp::Json::parse(
      R"({"inputSchema": {"properties": {"city": {"type": "string"}}, "type": "object"},
          "description": "Current weather.", "name": "weather"})"));
  CHECK(pinned == reordered);
  CHECK(pinned.digest.starts_with("sha256:"));
  CHECK(pinned.digest.size() == 7 + 64);

  auto changed = weather("Current weather, with an outlook.");
  changed["inputSchema"]["properties"]["notes"] = {{"type", "string"}};
  changed["annotations"] = {{"readOnlyHint", true}};
  const auto now = mcp::digest_tool(changed);
  CHECK_FALSE(pinned == now);
  CHECK(mcp::changed_parts(pinned, now) == "description, inputSchema, annotations");
}

TEST_CASE("pins files round-trip, and a bad one is refused with file:line:col") {
  mcp::ToolPins pins;
  pins["fs"]["read_file"] = mcp::digest_tool(weather("x"));
  const auto path = temporary_file("membrane-pins-test.yaml", "");
  mcp::write_pins_file(path, pins);
  const auto read = mcp::read_pins_file(path);
  REQUIRE(read.at("fs").count("read_file") == 1);
  CHECK(read.at("fs").at("read_file") == pins["fs"]["read_file"]);
  CHECK(read.at("fs").at("read_file").parts.at("description") ==
        pins["fs"]["read_file"].parts.at("description"));

  const auto bad =
      temporary_file("membrane-pins-bad.yaml", "upstreams:\n  fs:\n    read_file: [1]\n");
  CHECK_THROWS_WITH(mcp::read_pins_file(bad), Catch::Contains("membrane-pins-bad.yaml:3:16: tool "
                                                              "'read_file' needs 'digest"));
  const auto missing = temporary_file("membrane-pins-missing.yaml", "tools: {}\n");
  CHECK_THROWS_WITH(mcp::read_pins_file(missing), Catch::Contains("'upstreams:'"));
  CHECK_THROWS_WITH(mcp::read_pins_file("/nonexistent/pins.yaml"),
                    Catch::Contains(":1:1: cannot read"));
}

TEST_CASE("the catalog pins a tool at first sight, reports a change once, and honours file pins") {
  gateway::ToolCatalog catalog;
  auto first = catalog.learn("rug", weather("Current weather."));
  REQUIRE(first.entry);
  CHECK_FALSE(first.entry->changed());
  auto again = catalog.learn("rug", weather("Current weather, now with more."));
  REQUIRE(again.entry);
  CHECK(again.entry->changes == "description");
  CHECK(again.newly_changed);
  CHECK_FALSE(catalog.learn("rug", weather("Current weather, now with more.")).newly_changed);
  CHECK(catalog.find("rug", "weather")->changed());
  CHECK(catalog.find("other", "weather") == nullptr);
  // Back to what was pinned: no longer changed.
  CHECK_FALSE(catalog.learn("rug", weather("Current weather.")).entry->changed());

  mcp::ToolPins pins;
  pins["rug"]["weather"] = mcp::digest_tool(weather("Approved text."));
  gateway::ToolCatalog pinned(pins);
  CHECK(pinned.learn("rug", weather("Current weather.")).entry->changed());
  pinned.replace_file_pins({});
  CHECK_FALSE(pinned.learn("rug", weather("Current weather.")).entry->changed());

  mcp::Json nameless = {{"description", "x"}};
  CHECK(catalog.learn("rug", nameless).entry == nullptr);
  CHECK(catalog.learn("rug", {{"name", std::string(300, 'n')}}).entry == nullptr);
}

TEST_CASE("the catalog keeps at most its budget of definitions per upstream, and pins the rest") {
  gateway::ToolCatalog catalog;
  // 100 tools of about 200 KiB each: 20 MiB, over the 16 MiB an upstream may hold.
  const std::string padding(200 * 1024, 'x');
  std::size_t kept = 0;
  for (int i = 0; i < 100; ++i) {
    mcp::Json tool = {{"name", "t" + std::to_string(i)}, {"description", padding}};
    const auto learnt = catalog.learn("big", tool);
    REQUIRE(learnt.entry);
    CHECK(learnt.entry->digest.digest.starts_with("sha256:"));
    if (!learnt.entry->definition.is_null()) ++kept;
  }
  CHECK(kept > 0);
  CHECK(kept * 200 * 1024 <= gateway::ToolCatalog::max_upstream_definition_bytes);
  // A tool listed again in its place costs nothing more.
  mcp::Json again = {{"name", "t0"}, {"description", padding}};
  CHECK_FALSE(catalog.learn("big", again).entry->definition.is_null());
}
