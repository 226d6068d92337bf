// subscriptions/listen (MCP 2026-07-28): reading a client's filter (untrusted input), what a
// server can honour of it, and the frames of a listen stream.
#include <catch2/catch.hpp>

#include "membrane/mcp/listen.hpp"

namespace mcp = membrane::mcp;
using mcp::Json;

namespace {

std::optional<mcp::ListenFilter> parsed(const Json& params) {
  std::string error;
  auto filter = mcp::ListenFilter::from_params(&params, error);
  if (!filter) CHECK_FALSE(error.empty());
  return filter;
}

const Json everything_capabilities = {{"tools", {{"listChanged", true}}},
                                      {"prompts", {{"listChanged", true}}},
                                      {"resources", {{"listChanged", true}, {"subscribe", true}}}};

}  // namespace

TEST_CASE("listen filter: read from the request's params.notifications") {
  const auto filter = parsed({{"notifications",
                               {{"toolsListChanged", true},
                                {"promptsListChanged", false},
                                {"resourceSubscriptions", {"file:///a", "file:///b"}}}}});
  REQUIRE(filter);
  CHECK(filter->tools_list_changed);
  CHECK_FALSE(filter->prompts_list_changed);
  CHECK_FALSE(filter->resources_list_changed);
  CHECK(filter->resource_uris == std::vector<std::string>{"file:///a", "file:///b"});
  // Only what the client opted in to is echoed back: false and absent fields are left out.
  CHECK(filter->to_json() ==
        Json{{"toolsListChanged", true}, {"resourceSubscriptions", {"file:///a", "file:///b"}}});
}

TEST_CASE("listen filter: malformed or oversized filters are refused with a reason") {
  std::string error;
  CHECK_FALSE(mcp::ListenFilter::from_params(nullptr, error));
  CHECK(error.find("params.notifications is required") != std::string::npos);
  CHECK_FALSE(parsed(Json::object()));
  CHECK_FALSE(parsed({{"notifications", "all"}}));
  CHECK_FALSE(parsed({{"notifications", {{"toolsListChanged", "yes"}}}}));
  CHECK_FALSE(parsed({{"notifications", {{"resourceSubscriptions", "file:///a"}}}}));
  CHECK_FALSE(parsed({{"notifications", {{"resourceSubscriptions", {1, 2}}}}}));
  Json many = Json::array();
  for (std::size_t i = 0; i <= mcp::ListenFilter::max_resource_uris; ++i)
    many.push_back("file:///" + std::to_string(i));
  CHECK_FALSE(parsed({{"notifications", {{"resourceSubscriptions", many}}}}));
  CHECK_FALSE(parsed(
      {{"notifications",
        {{"resourceSubscriptions", {std::string(mcp::ListenFilter::max_uri_size + 1, 'u')}}}}}));
  // An empty filter is a filter: it asks for nothing.
  const auto empty = parsed({{"notifications", Json::object()}});
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("listen filter: a server honours only what its capabilities announce") {
  const auto filter = parsed({{"notifications",
                               {{"toolsListChanged", true},
                                {"promptsListChanged", true},
                                {"resourcesListChanged", true},
                                {"resourceSubscriptions", {"file:///a"}}}}});
  REQUIRE(filter);
  CHECK(filter->honoured_by(everything_capabilities).to_json() == filter->to_json());
  const Json tools_only = {{"tools", {{"listChanged", true}}}, {"resources", Json::object()}};
  CHECK(filter->honoured_by(tools_only).to_json() == Json{{"toolsListChanged", true}});
  CHECK(filter->honoured_by(Json()).empty());
  CHECK(filter->honoured_by({{"tools", {{"listChanged", "true"}}}}).empty());
}

TEST_CASE("listen filter: which notifications belong to the listen") {
  const auto filter = parsed(
      {{"notifications", {{"toolsListChanged", true}, {"resourceSubscriptions", {"file:///a"}}}}});
  REQUIRE(filter);
  CHECK(filter->accepts("notifications/tools/list_changed"));
  CHECK_FALSE(filter->accepts("notifications/prompts/list_changed"));
  CHECK_FALSE(filter->accepts("notifications/resources/list_changed"));
  CHECK(filter->accepts("notifications/resources/updated", "file:///a"));
  CHECK_FALSE(filter->accepts("notifications/resources/updated", "file:///b"));
  CHECK_FALSE(filter->accepts("notifications/resources/updated"));
  CHECK_FALSE(filter->accepts("notifications/message"));
  CHECK(mcp::is_change_notification("notifications/resources/updated"));
  CHECK_FALSE(mcp::is_change_notification("notifications/progress"));
}

TEST_CASE("listen frames: acknowledgement, tags and the graceful close carry the listen's id") {
  const auto filter = parsed({{"notifications", {{"toolsListChanged", true}}}});
  REQUIRE(filter);
  const Json listen_id = "listen:1";
  const auto ack = mcp::listen_acknowledgement(listen_id, *filter);
  CHECK(ack == Json{{"jsonrpc", "2.0"},
                    {"method", "notifications/subscriptions/acknowledged"},
                    {"params",
                     {{"notifications", {{"toolsListChanged", true}}},
                      {"_meta", {{"io.modelcontextprotocol/subscriptionId", "listen:1"}}}}}});

  Json bare = {{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}};
  mcp::tag_with_subscription(bare, 7);
  CHECK(bare["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 7);
  Json with_meta = {{"jsonrpc", "2.0"},
                    {"method", "notifications/resources/updated"},
                    {"params", {{"uri", "file:///a"}, {"_meta", {{"trace", "x"}}}}}};
  mcp::tag_with_subscription(with_meta, listen_id);
  CHECK(with_meta["params"]["uri"] == "file:///a");
  CHECK(with_meta["params"]["_meta"]["trace"] == "x");
  CHECK(with_meta["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen:1");

  CHECK(mcp::untag_subscription(bare));
  CHECK_FALSE(bare["params"].contains("_meta"));
  CHECK_FALSE(mcp::untag_subscription(bare));
  CHECK(mcp::untag_subscription(with_meta));
  CHECK(with_meta["params"]["_meta"] == Json{{"trace", "x"}});

  const auto closed = mcp::listen_closed_response(listen_id, {{"name", "srv"}});
  CHECK(closed["id"] == "listen:1");
  CHECK(closed["result"]["resultType"] == "complete");
  CHECK(closed["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen:1");
  CHECK(closed["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "srv");
}
