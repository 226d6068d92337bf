#include <catch2/catch.hpp>

#include "membrane/mcp/jsonrpc.hpp"

using namespace membrane::mcp;

TEST_CASE("requests, notifications and responses are told apart") {
  auto request = parse_message(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"progressToken":"p"}}})");
  REQUIRE(request.message);
  CHECK(request.message->is_request());
  CHECK(request.message->method() == "tools/call");
  CHECK(request.message->target_name() == "echo");
  REQUIRE(request.message->progress_token());
  CHECK(*request.message->progress_token() == "p");

  auto notification = parse_message(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  REQUIRE(notification.message);
  CHECK(notification.message->is_notification());
  CHECK(notification.message->id().is_null());

  auto response = parse_message(R"({"jsonrpc":"2.0","id":"abc","result":{}})");
  REQUIRE(response.message);
  CHECK(response.message->is_response());

  auto error = parse_message(R"({"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"x"}})");
  REQUIRE(error.message);
  CHECK(error.message->is_response());
}

TEST_CASE("text that is not JSON is a parse error (-32700)") {
  for (const char* text : {"", "{", "{\"jsonrpc\":", "not json", "{\"a\":1}}"}) {
    auto parsed = parse_message(text);
    CHECK_FALSE(parsed.message);
    CHECK(parsed.error.code == error_code::parse_error);
  }
}

TEST_CASE("JSON that is not JSON-RPC 2.0 is an invalid request (-32600)") {
  for (const char* text :
       {"42", "\"x\"", "{}", R"({"hello":1})", R"({"jsonrpc":"1.0","method":"x"})",
        R"({"jsonrpc":"2.0","method":7})", R"({"jsonrpc":"2.0","method":""})",
        R"({"jsonrpc":"2.0","id":1.5,"method":"x"})", R"({"jsonrpc":"2.0","id":null,"method":"x"})",
        R"({"jsonrpc":"2.0","id":1})", R"({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1}})",
        R"({"jsonrpc":"2.0","method":"x","params":"s"})"}) {
    auto parsed = parse_message(text);
    INFO(text);
    CHECK_FALSE(parsed.message);
    CHECK(parsed.error.code == error_code::invalid_request);
  }
}

TEST_CASE("a batch is refused with a message that says so") {
  auto parsed = parse_message(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  CHECK(parsed.is_batch);
  CHECK(parsed.error.code == error_code::invalid_request);
  CHECK(parsed.error.message.find("batch") != std::string::npos);
}

TEST_CASE("error responses are valid JSON-RPC and keep the id") {
  const auto text =
      make_error_response(Json(7), error_code::upstream_unavailable, "upstream 'x' is unavailable");
  auto parsed = parse_message(text);
  REQUIRE(parsed.message);
  CHECK(parsed.message->is_response());
  CHECK(parsed.message->id() == 7);
  CHECK(parsed.message->body()["error"]["message"] == "upstream 'x' is unavailable");
}

TEST_CASE("id keys keep 1 and \"1\" apart") {
  CHECK(id_key(Json(1)) != id_key(Json("1")));
  CHECK(id_key(Json(1)) == id_key(Json(1)));
}

TEST_CASE("a body nested deeper than the limit is refused before it is parsed") {
  std::string deep = R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":)";
  for (int i = 0; i < 100'000; ++i)
    deep += R"({"a":)";
  deep += "1";
  deep += std::string(100'000, '}');
  deep += "}";
  const auto parsed = parse_message(deep);
  REQUIRE_FALSE(parsed.message);
  CHECK(parsed.error.code == error_code::invalid_request);
  CHECK(parsed.error.message == "Invalid Request: JSON nesting deeper than 64 levels");

  // The limit itself is accepted: 64 levels in all, the envelope included.
  std::string at_limit = R"({"jsonrpc":"2.0","id":1,"method":"ping","params":)";
  for (int i = 0; i < 62; ++i)
    at_limit += R"({"a":)";
  at_limit += "1" + std::string(62, '}') + "}";
  CHECK(parse_message(at_limit).message);
}

TEST_CASE("a request method sent without an id is refused, not taken as a notification") {
  for (const char* method :
       {"tools/call", "resources/read", "prompts/get", "initialize", "custom"}) {
    const auto parsed = parse_message(std::string(R"({"jsonrpc":"2.0","method":")") + method +
                                      R"(","params":{"name":"x","uri":"y"}})");
    REQUIRE_FALSE(parsed.message);
    CHECK(parsed.error.code == error_code::invalid_request);
    CHECK(parsed.error.message.find("is a request and needs an \"id\"") != std::string::npos);
  }
  CHECK(
      parse_message(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{}})").message);
}

TEST_CASE("the target is the field the upstream acts on, per method") {
  const auto read = parse_message(
      R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://a","name":"harmless"}})");
  REQUIRE(read.message);
  CHECK(read.message->target_name() == "secret://a");
  const auto call = parse_message(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","uri":"file:///etc"}})");
  REQUIRE(call.message);
  CHECK(call.message->target_name() == "echo");
  const auto list =
      parse_message(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"x"}})");
  REQUIRE(list.message);
  CHECK(list.message->target_name().empty());

  for (const char* body :
       {R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"secret://a"}})",
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}})",
        R"({"jsonrpc":"2.0","id":1,"method":"prompts/get"})",
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]})"}) {
    const auto refused = parse_message(body);
    CHECK_FALSE(refused.message);
    CHECK(refused.error.code == error_code::invalid_params);
  }
}
