#include <catch2/catch.hpp>

#include "membrane/core/json.hpp"
#include "membrane/core/yaml_nesting.hpp"

using namespace membrane;

TEST_CASE("JSON nesting is measured without parsing, strings and escapes aside") {
  CHECK(json::nesting_depth("1", 64) == 0);
  CHECK(json::nesting_depth(R"({"a":[1,{"b":[]}]})", 64) == 4);
  CHECK(json::nesting_depth(R"({"a":"[[[[{{{{"})", 64) == 1);
  CHECK(json::nesting_depth(R"({"a":"\"[[[[\\"})", 64) == 1);
  CHECK(json::nesting_depth(R"(["\\",[[]]])", 64) == 3);
  // Counting stops past the limit: a huge document costs no more than its first levels.
  CHECK(json::nesting_depth(std::string(1'000'000, '['), 10) == 11);
}

TEST_CASE("untrusted JSON past the depth limit is refused with a reason") {
  const auto deep = json::parse(std::string(65, '[') + std::string(65, ']'), 64);
  CHECK(deep.error == json::ParseError::too_deep);
  CHECK(deep.value.is_discarded());
  CHECK(deep.reason() == "JSON nesting deeper than 64 levels");
  const auto fine = json::parse(std::string(64, '[') + std::string(64, ']'), 64);
  CHECK(fine.ok());
  const auto broken = json::parse("{", 64);
  CHECK(broken.error == json::ParseError::not_json);
  CHECK(broken.reason() == "not valid JSON");
}

TEST_CASE("the process-wide limit is bounded") {
  const auto before = json::max_depth();
  json::set_max_depth(1'000'000);
  CHECK(json::max_depth() == json::max_configurable_depth);
  json::set_max_depth(before);
}

TEST_CASE("YAML nesting: real files pass, deep ones are refused at their line") {
  const std::string config = R"(listen: 127.0.0.1:8080
limits:
  max_request_body: 4MiB
policy:
  paths: [policies/default, "odd [path"]
upstreams:
  files:
    command: npx
    args: ["-y", '@modelcontextprotocol/server-filesystem', "/srv/it's"]
    env: {A: "b", C: 'd'}
- rule: x
  condition: >
    tool.name in ["a", "b"] and ((args.path startswith "/etc"))
      [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
  message: see [the docs] for it's meaning  # comment [[[[[[[[[[[[[[[[[
)";
  CHECK_FALSE(yaml_nesting::first_crossing(config));

  const auto flow = yaml_nesting::first_crossing("a: 1\nb: " + std::string(100'000, '['));
  REQUIRE(flow);
  CHECK(flow->line == 2);
  const auto compact = yaml_nesting::first_crossing("x:\n" + [] {
    std::string entries;
    for (int i = 0; i < 100; ++i)
      entries += "- ";
    return entries + "x\n";
  }());
  REQUIRE(compact);
  CHECK(compact->line == 2);
  std::string indented;
  for (int i = 0; i < 100; ++i)
    indented += std::string(i, ' ') + "k:\n";
  const auto block = yaml_nesting::first_crossing(indented);
  REQUIRE(block);
  CHECK(block->line < 100);
  CHECK(yaml_nesting::describe(*flow).starts_with("nesting deeper than 64 levels"));
}

TEST_CASE("append_string writes what dump() writes, invalid UTF-8 included") {
  const std::vector<std::string> texts = {
      "",
      "plain",
      "quote \" backslash \\ slash /",
      std::string("controls \b\f\n\r\t \x01 \x1f \x7f and a NUL: ") + '\0' + "!",
      "UTF-8: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      "invalid: \xff \xc3 \xe0\x80\x80 \xed\xa0\x80 \xf4\x90\x80\x80 end",
      "truncated at the end \xe2\x82",
  };
  for (const auto& text : texts) {
    INFO(text);
    std::string out = "x";
    membrane::json::append_string(out, text);
    CHECK(out == "x" + nlohmann::json(text).dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace));
  }
}
