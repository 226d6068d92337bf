// What a virtual server publishes and where each published name leads (no I/O).
#include <catch2/catch.hpp>

#include "gateway/virtual/virtual_catalog.hpp"
#include "membrane/mcp/sealed_session.hpp"

using membrane::gateway::ItemKind;
using membrane::gateway::Selection;
using membrane::gateway::VirtualCatalog;
using membrane::gateway::VirtualMember;
using Json = membrane::mcp::Json;

namespace {

Selection only(std::vector<std::string> include, std::vector<std::string> exclude = {}) {
  Selection selection;
  selection.include = std::move(include);
  selection.exclude = std::move(exclude);
  selection.everything = false;
  return selection;
}

// ev: prefix "ev", some tools, one renamed; files: prefix "files", everything but move_file;
// bare: no prefix.
VirtualCatalog workbench() {
  VirtualMember ev;
  ev.upstream = "everything";
  ev.prefix = "ev";
  ev.tools = only({"echo", "get-*"}, {"get-env"});
  ev.renames = {{"get-sum", "add"}};
  ev.descriptions = {{"echo", "Says it back."}};
  ev.annotations = {{"echo", Json{{"readOnlyHint", true}, {"title", "Echo"}}}};
  ev.prompts = only({"simple-prompt"});
  VirtualMember files;
  files.upstream = "files";
  files.prefix = "files";
  files.tools.exclude = {"move_file"};
  files.resources = only({"file:///srv/*"});
  VirtualMember bare;
  bare.upstream = "modern";
  bare.prefix = "";
  return VirtualCatalog("workbench", "_", "", {ev, files, bare});
}

}  // namespace

TEST_CASE("A published tool name leads to its member and its own name there") {
  const auto catalog = workbench();
  const auto echo = catalog.owner_of(ItemKind::tool, "ev_echo");
  REQUIRE(echo);
  CHECK(echo->member == 0);
  CHECK(echo->name == "echo");
  const auto add = catalog.owner_of(ItemKind::tool, "add");
  REQUIRE(add);
  CHECK(add->member == 0);
  CHECK(add->name == "get-sum");
  const auto read = catalog.owner_of(ItemKind::tool, "files_read_file");
  REQUIRE(read);
  CHECK(read->member == 1);
  CHECK(read->name == "read_file");
  const auto bare = catalog.owner_of(ItemKind::tool, "long_task");
  REQUIRE(bare);
  CHECK(bare->member == 2);
  CHECK(bare->name == "long_task");
}

TEST_CASE("A name that is not published leads nowhere, even if a member has the tool") {
  const auto catalog = workbench();
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "ev_get-sum"));    // renamed: only `add` reaches it
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "ev_get-env"));    // excluded
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "ev_trigger-x"));  // not included
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "files_move_file"));
  // Under another member's prefix: never the unprefixed member, whatever it lists.
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "ev_unknown"));
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "ev_"));
  // Unprefixed, it is the bare member's own get-sum.
  REQUIRE(catalog.owner_of(ItemKind::tool, "get-sum"));
  CHECK(catalog.owner_of(ItemKind::tool, "get-sum")->member == 2);
}

TEST_CASE("A member's item is published under the name that leads back to it, or not at all") {
  const auto catalog = workbench();
  CHECK(catalog.published_name(ItemKind::tool, 0, "echo") == "ev_echo");
  CHECK(catalog.published_name(ItemKind::tool, 0, "get-sum") == "add");
  CHECK_FALSE(catalog.published_name(ItemKind::tool, 0, "get-env"));
  CHECK(catalog.published_name(ItemKind::tool, 2, "echo") == "echo");
  // The bare member's "ev_echo" would be reached as everything's echo: not published.
  CHECK_FALSE(catalog.published_name(ItemKind::tool, 2, "ev_echo"));
  // Nor its "add": that name is the rename of everything's get-sum.
  CHECK_FALSE(catalog.published_name(ItemKind::tool, 2, "add"));
  CHECK(catalog.published_name(ItemKind::prompt, 0, "simple-prompt") == "ev_simple-prompt");
  CHECK_FALSE(catalog.published_name(ItemKind::prompt, 0, "args-prompt"));
  CHECK(catalog.published_name(ItemKind::prompt, 1, "any") == "files_any");
}

TEST_CASE("Publishing a listed tool renames it and applies the operator's overrides") {
  const auto catalog = workbench();
  Json echo = {{"name", "echo"},
               {"description", "Echoes"},
               {"annotations", {{"readOnlyHint", false}, {"openWorldHint", false}}}};
  REQUIRE(catalog.publish(ItemKind::tool, 0, echo));
  CHECK(echo["name"] == "ev_echo");
  CHECK(echo["description"] == "Says it back.");
  CHECK(echo["annotations"]["readOnlyHint"] == true);
  CHECK(echo["annotations"]["title"] == "Echo");
  CHECK(echo["annotations"]["openWorldHint"] == false);
  Json hidden = {{"name", "get-env"}};
  CHECK_FALSE(catalog.publish(ItemKind::tool, 0, hidden));
  Json nameless = {{"description", "no name"}};
  CHECK_FALSE(catalog.publish(ItemKind::tool, 0, nameless));
  Json not_an_object = "echo";
  CHECK_FALSE(catalog.publish(ItemKind::tool, 0, not_an_object));
}

TEST_CASE("Resources are published by URI glob") {
  const auto catalog = workbench();
  CHECK(catalog.publishes_resource(1, "file:///srv/notes.txt"));
  CHECK_FALSE(catalog.publishes_resource(1, "file:///etc/passwd"));
  CHECK(catalog.publishes_resource(2, "anything://at/all"));
  CHECK_FALSE(catalog.publishes_resource(7, "file:///srv/notes.txt"));
}

TEST_CASE("A listing cursor carries each member's cursor and is refused when forged") {
  const auto catalog = workbench();
  const std::string cursor = VirtualCatalog::encode_cursor({{"everything", "p2"}, {"modern", ""}});
  const auto decoded = catalog.decode_cursor(cursor);
  REQUIRE(decoded);
  CHECK(decoded->at("everything") == "p2");
  CHECK(decoded->at("modern").empty());
  CHECK_FALSE(catalog.decode_cursor(""));
  CHECK_FALSE(catalog.decode_cursor("not base64 !"));
  CHECK_FALSE(catalog.decode_cursor(membrane::mcp::base64url_encode("[1,2]")));
  CHECK_FALSE(catalog.decode_cursor(membrane::mcp::base64url_encode("{}")));
  CHECK_FALSE(catalog.decode_cursor(membrane::mcp::base64url_encode(R"({"stranger":"x"})")));
  CHECK_FALSE(catalog.decode_cursor(membrane::mcp::base64url_encode(R"({"everything":1})")));
  CHECK_FALSE(
      catalog.decode_cursor(membrane::mcp::base64url_encode(R"({"everything":{"a":{"b":1}}})")));
  CHECK_FALSE(catalog.decode_cursor(std::string(70 * 1024, 'A')));
}

TEST_CASE("A member's request id is tagged with the member and comes back as it was") {
  for (const Json& id : {Json(0), Json(42), Json("abc"), Json("via:x:1"), Json(-7)}) {
    const Json tagged = VirtualCatalog::tag_request_id("everything", id);
    REQUIRE(tagged.is_string());
    const auto back = VirtualCatalog::untag_request_id(tagged);
    REQUIRE(back);
    CHECK(back->upstream == "everything");
    CHECK(back->id == id);
  }
  // 1 and "1" stay apart.
  CHECK(VirtualCatalog::tag_request_id("a", Json(1)) !=
        VirtualCatalog::tag_request_id("a", Json("1")));
  CHECK_FALSE(VirtualCatalog::untag_request_id(Json(3)));
  CHECK_FALSE(VirtualCatalog::untag_request_id(Json("membrane-abc")));
  CHECK_FALSE(VirtualCatalog::untag_request_id(Json("via:")));
  CHECK_FALSE(VirtualCatalog::untag_request_id(Json("via::1")));
  CHECK_FALSE(VirtualCatalog::untag_request_id(Json("via:a:{\"x\":1}")));
  CHECK_FALSE(VirtualCatalog::untag_request_id(Json("via:a:not json")));
}

TEST_CASE("Selections: no include list takes everything, an empty one nothing, exclude wins") {
  Selection all;
  CHECK(all.selects("x"));
  const Selection none = only({});
  CHECK_FALSE(none.selects("x"));
  const Selection some = only({"read_*", "list_[a-m]*"}, {"read_secret*"});
  CHECK(some.selects("read_file"));
  CHECK(some.selects("list_directory"));
  CHECK_FALSE(some.selects("list_tables"));
  CHECK_FALSE(some.selects("read_secrets"));
  CHECK_FALSE(some.selects("write_file"));
}

// ---- progressive discovery: ranking ------------------------------------------------------------

#include "gateway/virtual/tool_search.hpp"

TEST_CASE("Tool search ranks by name, title, description and parameters, best first") {
  const std::vector<Json> tools = {
      Json{{"name", "files_read_text_file"},
           {"description", "Read the complete contents of a file as text."},
           {"inputSchema", {{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}}}},
      Json{{"name", "files_write_file"}, {"description", "Create a new file or overwrite one."}},
      Json{{"name", "demo_echo"}, {"title", "Echo"}, {"description", "Echoes back the input."}},
      Json{{"name", "getWeatherForecast"},
           {"description", "Forecast for a city."},
           {"inputSchema",
            {{"properties", {{"city", {{"description", "City name, e.g. Paris"}}}}}}}},
      Json("not a tool"),
  };
  std::vector<const Json*> candidates;
  for (const auto& tool : tools)
    candidates.push_back(&tool);
  using membrane::gateway::rank_tools;
  const auto read = rank_tools(candidates, "read a file", 8);
  REQUIRE(read.size() == 2);
  CHECK(read[0] == 0);  // read and file in its name
  CHECK(read[1] == 1);  // file only
  const auto weather = rank_tools(candidates, "What's the weather forecast in Paris?", 8);
  REQUIRE_FALSE(weather.empty());
  CHECK(weather[0] == 3);  // camelCase name words, parameter description
  CHECK(rank_tools(candidates, "echoes", 8) == std::vector<std::size_t>{2});  // "echo" prefix
  CHECK(rank_tools(candidates, "the of and", 8).empty());                     // stop words only
  CHECK(rank_tools(candidates, "database", 8).empty());
  CHECK(rank_tools(candidates, "file", 1).size() == 1);
  CHECK(rank_tools(candidates, "file", 0).empty());
  CHECK(rank_tools({}, "file", 5).empty());
}

// ---- selection by tags ------------------------------------------------------------------------

TEST_CASE("Tags are read where servers put them") {
  using membrane::gateway::tags_of;
  CHECK(tags_of(Json{{"_meta", {{"tags", {"a", 1, "b"}}}}}) == std::vector<std::string>{"a", "b"});
  CHECK(tags_of(Json{{"_meta", {{"_fastmcp", {{"tags", {"read"}}}}}}}) ==
        std::vector<std::string>{"read"});
  CHECK(tags_of(Json{{"annotations", {{"tags", {"x"}}}}}) == std::vector<std::string>{"x"});
  CHECK(tags_of(Json{{"_meta", {{"tags", "not a list"}}}}).empty());
  CHECK(tags_of(Json("no tool")).empty());
  Json many = {{"_meta", {{"tags", Json::array()}}}};
  for (int i = 0; i < 100; ++i)
    many["_meta"]["tags"].push_back("t" + std::to_string(i));
  CHECK(tags_of(many).size() == 64);
}

TEST_CASE("A tool selected by tag is published, and reachable, once a listing showed its tag") {
  VirtualMember tagged;
  tagged.upstream = "fast";
  tagged.prefix = "fast";
  tagged.tools.tags = {"read-only"};
  tagged.tools.exclude = {"secret_*"};
  tagged.tools.everything = false;
  const VirtualCatalog catalog("v", "_", "", {tagged});
  // Not listed yet on this replica: refused.
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "fast_lookup"));
  Json lookup = {{"name", "lookup"}, {"_meta", {{"_fastmcp", {{"tags", {"read-only"}}}}}}};
  REQUIRE(catalog.publish(ItemKind::tool, 0, lookup));
  CHECK(lookup["name"] == "fast_lookup");
  REQUIRE(catalog.owner_of(ItemKind::tool, "fast_lookup"));
  CHECK(catalog.owner_of(ItemKind::tool, "fast_lookup")->name == "lookup");
  Json untagged = {{"name", "delete_all"}};
  CHECK_FALSE(catalog.publish(ItemKind::tool, 0, untagged));
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "fast_delete_all"));
  Json excluded = {{"name", "secret_dump"}, {"_meta", {{"tags", {"read-only"}}}}};
  CHECK_FALSE(catalog.publish(ItemKind::tool, 0, excluded));
  CHECK_FALSE(catalog.owner_of(ItemKind::tool, "fast_secret_dump"));
}
