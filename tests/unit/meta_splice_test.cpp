#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "membrane/mcp/meta_splice.hpp"

using membrane::mcp::MetaMembers;
using membrane::mcp::splice_meta;
using Json = nlohmann::json;

namespace {

const MetaMembers trace = {
    {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"tracestate", "vendor=\"quoted\"\n"}};

// What a parse, an insertion and a dump would give: the splice must mean the same.
Json through_a_tree(const std::string& message) {
  Json body = Json::parse(message);
  for (const auto& [name, value] : trace)
    body["params"]["_meta"][name] = value;
  return body;
}

}  // namespace

TEST_CASE("the trace context is spliced into params._meta wherever the message has it or not") {
  const std::vector<std::string> messages = {
      R"({"jsonrpc":"2.0","id":1,"method":"ping"})",
      R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}})",
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1}}})",
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{},"name":"x"}})",
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":7}}})",
      " {\n \"params\" : { \"arguments\" : {\"s\":\"}{\\\"][\",\"n\":[1,{\"_meta\":2}],\"t\":true} "
      ","
      " \"_meta\" : { \"k\" : null } } , \"id\" : \"x\" , \"method\":\"m\",\"jsonrpc\":\"2.0\" }\n",
      R"({"id":1,"params":{"arguments":{"params":{"_meta":{}}}},"method":"m","jsonrpc":"2.0"})",
      "{}",
  };
  for (const auto& original : messages) {
    INFO(original);
    std::string message = original;
    REQUIRE(splice_meta(message, trace));
    const Json spliced = Json::parse(message);  // still one valid JSON text
    CHECK(spliced == through_a_tree(original));
  }
}

TEST_CASE("a message the text cannot take without doubt is left for a tree rewrite") {
  const std::vector<std::string> doubtful = {
      // The client sent a member the gateway sets: its value must win, not a duplicate key.
      R"({"id":1,"method":"m","params":{"_meta":{"traceparent":"00-mine"}}})",
      // Keys written with escapes, or twice: a receiver might read another member than we did.
      R"({"id":1,"method":"m","par\u0061ms":{"name":"x"}})",
      R"({"id":1,"method":"m","params":{"a":1},"params":{"b":2}})",
      R"({"id":1,"method":"m","params":{"_meta":{},"_meta":{}}})",
      // Not objects where objects belong.
      R"({"id":1,"method":"m","params":[1,2]})",
      R"({"id":1,"method":"m","params":{"_meta":"x"}})",
      R"([{"id":1}])",
      "",
      R"({"id":1,"method":"m","params":{"name":"unterminated)",
  };
  for (const auto& original : doubtful) {
    INFO(original);
    std::string message = original;
    CHECK_FALSE(splice_meta(message, trace));
    CHECK(message == original);
  }
}

TEST_CASE("deeply nested arguments are skipped without recursion") {
  const std::string deep(200'000, '[');
  std::string message = R"({"id":1,"method":"m","params":{"arguments":{"x":)" + deep +
                        std::string(200'000, ']') + "}}}";
  REQUIRE(splice_meta(message, trace));
  CHECK(message.find(R"("_meta":{"traceparent")") != std::string::npos);
  // Unbalanced text is refused rather than read past its end.
  std::string broken = R"({"id":1,"params":{"arguments":)" + deep;
  CHECK_FALSE(splice_meta(broken, trace));
}

TEST_CASE("A string member on a path is replaced in the text, or the text is left as it was") {
  using membrane::mcp::replace_string_at;
  std::string call =
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"keep"},)"
      R"( "name" : "ev_echo","_meta":{"traceparent":"00-x"}}})";
  REQUIRE(replace_string_at(call, {"params", "name"}, "echo \"quoted\""));
  CHECK(call ==
        R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"keep"},)"
        R"( "name" : "echo \"quoted\"","_meta":{"traceparent":"00-x"}}})");
  std::string completion = R"({"params":{"ref":{"type":"ref/prompt","name":"p_x"}}})";
  REQUIRE(replace_string_at(completion, {"params", "ref", "name"}, "x"));
  CHECK(completion == R"({"params":{"ref":{"type":"ref/prompt","name":"x"}}})");

  for (const std::string& doubtful : {
           std::string(R"({"params":{"name":"a","name":"b"}})"),  // twice
           std::string(R"({"params":{"n\u0061me":"a"}})"),        // escaped key
           std::string(R"({"params":{"name":7}})"),               // not a string
           std::string(R"({"params":{}})"),                       // absent
           std::string(R"({"params":["name"]})"),                 // not an object on the way
           std::string(R"(["params"])"),                          // not an object
           std::string(R"({"params":{"name":"unterminated})"),    // broken
       }) {
    std::string text = doubtful;
    INFO(doubtful);
    CHECK_FALSE(replace_string_at(text, {"params", "name"}, "x"));
    CHECK(text == doubtful);
  }
}
