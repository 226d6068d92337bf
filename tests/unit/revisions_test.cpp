// MCP revision handling: header encoding, the translations between session and stateless
// revisions, the checks on stateless requests, sealed request state, and the result cache.
#include <catch2/catch.hpp>

#include "gateway/result_cache.hpp"
#include "gateway/revision.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"
#include "membrane/mcp/sealed_session.hpp"

using membrane::mcp::Json;
namespace mcp = membrane::mcp;
namespace gw = membrane::gateway;

namespace {

mcp::Message request(Json body) {
  auto parsed = mcp::classify_message(std::move(body));
  REQUIRE(parsed.message);
  return *parsed.message;
}

Json call_body(std::string name = "echo") {
  return {{"jsonrpc", "2.0"},
          {"id", 7},
          {"method", "tools/call"},
          {"params",
           {{"name", name},
            {"arguments", {{"message", "hi"}}},
            {"_meta",
             {{"io.modelcontextprotocol/protocolVersion", "2026-07-28"},
              {"io.modelcontextprotocol/clientCapabilities", Json::object()}}}}}};
}

membrane::http::Request http_request(std::string_view version, std::string_view method,
                                     std::string_view name) {
  membrane::http::Request request{membrane::http::bhttp::verb::post, "/mcp/x", 11};
  if (!version.empty()) request.set("MCP-Protocol-Version", version);
  if (!method.empty()) request.set("Mcp-Method", method);
  if (!name.empty()) request.set("Mcp-Name", name);
  return request;
}

int error_code_of(const membrane::http::Response& response) {
  return Json::parse(response.body())["error"]["code"].get<int>();
}

}  // namespace

TEST_CASE("header values: printable ASCII stays plain, anything else is =?base64?…?=") {
  CHECK(mcp::encode_header_value("echo") == "echo");
  CHECK(mcp::encode_header_value("héllo") == "=?base64?aMOpbGxv?=");
  CHECK(mcp::encode_header_value(" padded") == "=?base64?IHBhZGRlZA==?=");
  for (const std::string text : {"", "a", "ab", "abc", "日本語 🚀", "line\nbreak", "=?base64?x?="}) {
    const auto round_trip = mcp::decode_header_value(mcp::encode_header_value(text));
    REQUIRE(round_trip);
    CHECK(*round_trip == text);
  }
  CHECK_FALSE(mcp::decode_header_value("=?base64?not base64!?="));
  CHECK_FALSE(mcp::decode_header_value("=?base64?abc?="));
  CHECK_FALSE(mcp::decode_header_value("=?base64?YQ==YQ==?="));
}

TEST_CASE("revisions: which are stateless") {
  CHECK(mcp::is_stateless_protocol_version("2026-07-28"));
  CHECK(mcp::is_stateless_protocol_version("2027-01-01"));
  CHECK_FALSE(mcp::is_stateless_protocol_version("2025-11-25"));
  CHECK_FALSE(mcp::is_stateless_protocol_version("garbage"));
  CHECK(mcp::is_supported_protocol_version("2026-07-28"));
  CHECK(mcp::negotiate_session_version("2025-06-18") == "2025-06-18");
  // A 2024-11-05 client (legacy HTTP+SSE) is bridged in its own revision too.
  CHECK(mcp::negotiate_session_version("2024-11-05") == "2024-11-05");
  CHECK(mcp::negotiate_session_version("2026-07-28") == "2025-11-25");
  CHECK(mcp::negotiate_session_version("1999-01-01") == "2025-11-25");
}

TEST_CASE("revisions: the HTTP status 2026-07-28 gives an answer of a server without HTTP") {
  const auto error = [](int code) {
    return mcp::Json{{"jsonrpc", "2.0"}, {"id", 1}, {"error", {{"code", code}, {"message", "m"}}}};
  };
  CHECK(mcp::stateless_http_status(error(-32601)) == 404);
  for (const int code : {-32700, -32600, -32020, -32021, -32022})
    CHECK(mcp::stateless_http_status(error(code)) == 400);
  // A handler's own errors, invalid params included, stay in the body of a 200.
  for (const int code : {-32602, -32603, -32000, 42})
    CHECK(mcp::stateless_http_status(error(code)) == 200);
  CHECK(mcp::stateless_http_status({{"jsonrpc", "2.0"}, {"id", 1}, {"result", {}}}) == 200);
  CHECK(mcp::stateless_http_status({{"error", "not an object"}}) == 200);
  CHECK(mcp::stateless_http_status({{"error", {{"code", "-32601"}}}}) == 200);
}

TEST_CASE("bridging: discover from initialize and initialize from discover") {
  const Json initialize = {
      {"protocolVersion", "2025-11-25"},
      {"capabilities", {{"tools", Json::object()}, {"logging", Json::object()}}},
      {"serverInfo", {{"name", "srv"}, {"version", "1"}}},
      {"instructions", "be nice"}};
  const auto discover = mcp::discover_from_initialize(initialize);
  CHECK(discover["supportedVersions"] == Json::array({"2026-07-28"}));
  CHECK(discover["capabilities"] == Json{{"tools", Json::object()}});
  CHECK(discover["instructions"] == "be nice");
  CHECK(discover["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "srv");
  CHECK(discover["resultType"] == "complete");

  const auto back = mcp::initialize_from_discover(discover, "2025-06-18");
  CHECK(back["protocolVersion"] == "2025-06-18");
  CHECK(back["serverInfo"]["name"] == "srv");
  CHECK(back["instructions"] == "be nice");
}

TEST_CASE("bridging: a 2026-07-28 server's capabilities reach session clients as they are") {
  const Json discover = {
      {"supportedVersions", Json::array({"2026-07-28"})},
      {"capabilities",
       {{"resources", {{"subscribe", true}, {"listChanged", true}}}, {"tools", Json::object()}}}};
  const auto initialize = mcp::initialize_from_discover(discover, "2025-11-25");
  // resources/subscribe is bridged to the listen's resourceSubscriptions.
  CHECK(initialize["capabilities"]["resources"] ==
        Json{{"subscribe", true}, {"listChanged", true}});
  CHECK(initialize["capabilities"]["tools"] == Json::object());
}

TEST_CASE("bridging: the _meta envelope is added without overriding, and stripped for sessions") {
  Json body = call_body();
  body["params"]["_meta"].erase("io.modelcontextprotocol/clientCapabilities");
  body["params"]["_meta"]["progressToken"] = 3;
  mcp::add_envelope(body, mcp::stateless_envelope("2026-07-28", Json{{"sampling", Json::object()}},
                                                  Json{{"name", "c"}}));
  const auto& meta = body["params"]["_meta"];
  CHECK(meta["io.modelcontextprotocol/clientCapabilities"] == Json{{"sampling", Json::object()}});
  CHECK(meta["io.modelcontextprotocol/clientInfo"]["name"] == "c");
  CHECK(meta["progressToken"] == 3);
  mcp::strip_reserved_meta(body);
  CHECK(body["params"]["_meta"] == Json{{"progressToken", 3}});
  body["params"]["_meta"].erase("progressToken");
  mcp::strip_reserved_meta(body);
  CHECK_FALSE(body["params"].contains("_meta"));
}

TEST_CASE("bridging: session results are marked complete for stateless clients") {
  Json response = {{"jsonrpc", "2.0"}, {"id", 1}, {"result", {{"tools", Json::array()}}}};
  mcp::mark_complete_result(response, "tools/list");
  CHECK(response["result"]["resultType"] == "complete");
  CHECK(response["result"]["ttlMs"] == 0);
  CHECK(response["result"]["cacheScope"] == "private");
  Json call = {{"jsonrpc", "2.0"}, {"id", 1}, {"result", {{"content", Json::array()}}}};
  mcp::mark_complete_result(call, "tools/call");
  CHECK_FALSE(call["result"].contains("ttlMs"));
  CHECK(mcp::methods_invalidated_by("notifications/tools/list_changed") ==
        std::vector<std::string_view>{"tools/list"});
}

TEST_CASE("stateless requests: headers must repeat the body") {
  const auto message = request(call_body());
  CHECK(gw::is_stateless_request(http_request("", "", ""), message));
  CHECK_FALSE(gw::check_stateless_request(http_request("2026-07-28", "tools/call", "echo"), message)
                  .rejection);

  const auto expect = [&](const membrane::http::Request& http, unsigned status, int code) {
    const auto checked = gw::check_stateless_request(http, message);
    REQUIRE(checked.rejection);
    CHECK(checked.rejection->result_int() == status);
    CHECK(error_code_of(*checked.rejection) == code);
  };
  expect(http_request("", "tools/call", "echo"), 400, -32020);
  expect(http_request("2026-07-28", "", "echo"), 400, -32020);
  expect(http_request("2026-07-28", "tools/list", "echo"), 400, -32020);
  expect(http_request("2026-07-28", "tools/call", ""), 400, -32020);
  expect(http_request("2026-07-28", "tools/call", "other"), 400, -32020);
  expect(http_request("2099-01-01", "tools/call", "echo"), 400, -32020);

  // A header that repeats the body but names a revision the route does not serve: -32022, with
  // the revisions this route serves.
  auto future = call_body();
  future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01";
  const auto unsupported = gw::check_stateless_request(
      http_request("2099-01-01", "tools/call", "echo"), request(future));
  REQUIRE(unsupported.rejection);
  CHECK(unsupported.rejection->result_int() == 400);
  CHECK(error_code_of(*unsupported.rejection) == -32022);
  constexpr std::array<std::string_view, 2> served = {"2026-07-28", "2025-11-25"};
  const auto narrowed = gw::unsupported_version_response(7, "2024-11-05", served);
  const auto body = Json::parse(narrowed.body());
  CHECK(body["error"]["data"]["supported"] == Json{"2026-07-28", "2025-11-25"});
  CHECK(body["error"]["data"]["requested"] == "2024-11-05");
  CHECK(body["error"]["message"].get<std::string>().find("2024-11-05' (supported here: "
                                                         "2026-07-28, 2025-11-25)") !=
        std::string::npos);

  auto unicode = call_body("outil-été");
  const auto unicode_message = request(unicode);
  CHECK_FALSE(gw::check_stateless_request(
                  http_request("2026-07-28", "tools/call", mcp::encode_header_value("outil-été")),
                  unicode_message)
                  .rejection);

  auto no_capabilities = call_body();
  no_capabilities["params"]["_meta"].erase("io.modelcontextprotocol/clientCapabilities");
  const auto checked = gw::check_stateless_request(http_request("2026-07-28", "tools/call", "echo"),
                                                   request(no_capabilities));
  REQUIRE(checked.rejection);
  CHECK(error_code_of(*checked.rejection) == -32602);
}

TEST_CASE("sealed request state: opens only unaltered and for its purpose") {
  const auto sealer = mcp::SessionSealer::from_secret("0123456789abcdef0123456789abcdef");
  const Json state = {{"up", "x"}, {"d", "abc"}};
  const auto sealed = sealer.seal_state(state, "request-state");
  REQUIRE(sealed.substr(0, 4) == "ms1.");
  CHECK(sealer.open_state(sealed, "request-state") == state);
  CHECK_FALSE(sealer.open_state(sealed, "other-purpose"));
  std::string altered = sealed;
  altered[altered.size() / 2] = altered[altered.size() / 2] == 'A' ? 'B' : 'A';
  CHECK_FALSE(sealer.open_state(altered, "request-state"));
  CHECK_FALSE(mcp::SessionSealer::random().open_state(sealed, "request-state"));
  CHECK_FALSE(sealer.open_state("ms1.garbage", "request-state"));
}

TEST_CASE("result cache: public shared, private per subject, never input_required") {
  gw::ResultCache cache;
  const auto list = request({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}});
  const auto key = gw::ResultCache::request_key("up", list);
  REQUIRE_FALSE(key.empty());
  CHECK(cache.store(key, "",
                    Json{{"tools", Json::array()}, {"ttlMs", 60000}, {"cacheScope", "public"}}));
  CHECK(cache.find(key, "anyone"));
  CHECK(cache.find(key, ""));

  const auto read = request({{"jsonrpc", "2.0"},
                             {"id", 2},
                             {"method", "resources/read"},
                             {"params", {{"uri", "test://counter"}}}});
  const auto read_key = gw::ResultCache::request_key("up", read);
  const Json private_result = {
      {"contents", Json::array()}, {"ttlMs", 60000}, {"cacheScope", "private"}};
  CHECK_FALSE(cache.store(read_key, "", private_result));  // anonymous: no private caching
  CHECK(cache.store(read_key, "alice", private_result));
  CHECK(cache.find(read_key, "alice"));
  CHECK_FALSE(cache.find(read_key, "bob"));
  CHECK_FALSE(cache.find(read_key, ""));

  CHECK_FALSE(cache.store(
      key, "", Json{{"resultType", "input_required"}, {"ttlMs", 1000}, {"cacheScope", "public"}}));
  CHECK_FALSE(
      cache.store(key, "", Json{{"tools", Json::array()}, {"ttlMs", 0}, {"cacheScope", "public"}}));

  const auto retried =
      request({{"jsonrpc", "2.0"},
               {"id", 3},
               {"method", "resources/read"},
               {"params", {{"uri", "test://counter"}, {"inputResponses", Json::object()}}}});
  CHECK(gw::ResultCache::request_key("up", retried).empty());
  const auto call = request(call_body());
  CHECK(gw::ResultCache::request_key("up", call).empty());

  cache.invalidate("up", "tools/list");
  CHECK_FALSE(cache.find(key, ""));
  CHECK(cache.find(read_key, "alice"));
}

TEST_CASE("result cache: the envelope does not split entries, and ttlMs counts down") {
  gw::ResultCache cache;
  Json first = {
      {"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}, {"params", {{"_meta", {{"a", 1}}}}}};
  Json second = {
      {"jsonrpc", "2.0"}, {"id", 9}, {"method", "tools/list"}, {"params", {{"_meta", {{"b", 2}}}}}};
  const auto key = gw::ResultCache::request_key("up", request(first));
  CHECK(key == gw::ResultCache::request_key("up", request(second)));
  CHECK(key != gw::ResultCache::request_key("other", request(second)));
  cache.store(key, "", Json{{"tools", Json::array()}, {"ttlMs", 60000}, {"cacheScope", "public"}});
  const auto hit = cache.find(key, "");
  REQUIRE(hit);
  CHECK((*hit)["ttlMs"].get<std::int64_t>() <= 60000);
  CHECK((*hit)["ttlMs"].get<std::int64_t>() > 59000);
}
