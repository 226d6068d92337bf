#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../support/json_same_tree.hpp"
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

namespace {

// What the gateway's reader of JSON (json::parse) says of `text`.
json::ParseError parser_verdict(std::string_view text, std::size_t limit) {
  return json::parse(text, limit).error;
}

// Every truncation of each seed, every deletion of one byte, and every change of one byte to a
// byte of `alphabet`.
std::vector<std::string> one_byte_variants(const std::vector<std::string>& seeds,
                                           std::string_view alphabet) {
  std::vector<std::string> variants;
  for (const auto& seed : seeds) {
    for (std::size_t at = 0; at < seed.size(); ++at) {
      variants.push_back(seed.substr(0, at));
      variants.push_back(seed.substr(0, at) + seed.substr(at + 1));
      for (const char c : alphabet) {
        auto changed = seed;
        changed[at] = c;
        variants.push_back(std::move(changed));
      }
    }
  }
  return variants;
}

}  // namespace

TEST_CASE("a JSON text is checked without parsing it: what the parser accepts, and no more") {
  const std::vector<std::string> accepted = {
      "0",
      "-0",
      "1.5e10",
      "-12.25E-3",
      "1E+2",
      "true",
      "false",
      "null",
      R"("")",
      "[]",
      "{}",
      " \t\r\n{ \"a\" : [ 1 , 2 , { } , [ ] ] , \"b\" : null } \n",
      R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}})",
      R"(["\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00"])",
      "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
      "\xEF\xBB\xBF{\"bom\":1}",
      "1e-999",
      "0.0000e-400",
      "1.7e308",
      "123456789012345678901234567890"};
  for (const auto& text : accepted) {
    INFO(text);
    CHECK(json::check(text, 64) == json::ParseError::none);
    CHECK(parser_verdict(text, 64) == json::ParseError::none);
  }
  const std::vector<std::string> refused = {
      "", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}",
      "{1:2}", "{'a':1}", "01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "tru", "nul", "True",
      "[1 2]", "{\"a\":1 \"b\":2}", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\ud83d\"",
      "\"\\ude00\"", "\"\\ud83d\\u0041\"", "\"tab\there\"", std::string("\"\0\"", 3), "\"\xC3\"",
      "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xFF\"", "1 2", "[]]", "{}}",
      "[}", "{]", "\xEF\xBB{}", "NaN", "[1,2", "{\"a\":[}",
      // Too large for a double: the parser refuses them.
      "1e999", "-1e309", "[1.8e308]", "0.1e310", std::string(320, '9')};
  for (const auto& text : refused) {
    INFO(text);
    CHECK(json::check(text, 64) == json::ParseError::not_json);
    CHECK(parser_verdict(text, 64) == json::ParseError::not_json);
  }
}

TEST_CASE("the check bounds nesting as the parser's reader does") {
  const auto nested = [](std::size_t levels) {
    std::string text;
    for (std::size_t i = 0; i < levels; ++i)
      text += i % 2 ? "[" : "{\"k\":";
    text += "1";
    for (std::size_t i = levels; i-- > 0;)
      text += i % 2 ? "]" : "}";
    return text;
  };
  CHECK(json::check(nested(64), 64) == json::ParseError::none);
  CHECK(json::check(nested(65), 64) == json::ParseError::too_deep);
  CHECK(json::check(nested(1024), 1024) == json::ParseError::none);
  // Past the largest configurable limit, whatever limit is asked for.
  CHECK(json::check(nested(1025), 1'000'000) == json::ParseError::too_deep);
  // A megabyte of brackets: refused at the limit, without memory growing with the input.
  CHECK(json::check(std::string(1'000'000, '['), 64) == json::ParseError::too_deep);
  // Brackets inside strings are text.
  CHECK(json::check(R"(["[[[[{{{{"])", 1) == json::ParseError::none);
}

TEST_CASE("the check and the parser agree on mutated messages") {
  // Every single-byte change, deletion and truncation of a few real messages: each must get the
  // same verdict from both (the fuzz target json_check_fuzz does this on random input).
  const std::vector<std::string> seeds = {
      R"({"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"h\u00e9\n"}],"isError":false}})",
      R"([{"a":-1.5e-3,"b":[true,false,null],"c":"\ud83d\ude00\"\\"}])"};
  const std::string alphabet =
      "{}[]\":,\\/ \t\r\n-+.0123456789eEuUabfnrtlsx\x7F\x80\xBF\xC3\xE2\xF0\xFF";
  const auto variants = one_byte_variants(seeds, alphabet);
  for (const auto& text : variants) {
    INFO(text);
    // Text both malformed and too deep may get either answer (whichever comes first).
    const auto checked = json::check(text, 3);
    const auto parsed = parser_verdict(text, 3);
    REQUIRE((checked == json::ParseError::none) == (parsed == json::ParseError::none));
    if (checked == json::ParseError::too_deep) REQUIRE(parsed == json::ParseError::too_deep);
  }
  CHECK(variants.size() > 5000);
}

namespace {

// json::parse against nlohmann's parser on `text` (without NUL bytes, which nlohmann's parser
// takes for the end): the same verdict, and the same tree when accepted.
bool reads_as_nlohmann_does(const std::string& text) {
  const auto ours = json::parse(text, 64);
  const auto theirs = json::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (theirs.is_discarded()) return !ours.ok();
  return ours.ok() && test::same_tree(ours.value, theirs);
}

}  // namespace

TEST_CASE("the reader builds what nlohmann's parser builds") {
  const std::vector<std::string> texts = {
      "0",
      "-0",
      "7",
      "-7",
      "18446744073709551615",
      "18446744073709551616",
      "-9223372036854775808",
      "-9223372036854775809",
      "1.0",
      "-1.5e-3",
      "1E+2",
      "1e-999",
      "-1e-999",
      "4e-320",
      "1.7976931348623157e308",
      "123456789012345678901234567890",
      "0.1e1",
      "[0,-0,0.0,-0.0]",
      "true",
      "false",
      "null",
      R"("")",
      R"("\"\\\/\b\f\n\r\t\u0000\u00e9\u20AC\ud83d\ude00\uFFFF")",
      "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
      "\xEF\xBB\xBF{\"bom\":1}",
      R"({"a":1,"a":2})",
      R"({"a":{"x":1},"a":[2]})",
      R"({"b":1,"a":2,"":3})",
      R"({"\u0061":1,"a":2})",
      " \t\r\n[ 1 , { } , [ ] , \"x\" ] \n",
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello from wrk"}}})",
      "[1,]",
      "{\"a\"}",
      "01",
      "-",
      "1.",
      "1e999",
      "\"\\ud83d\"",
      "\"\xC0\xAF\"",
      "[1 2]",
      "1 2"};
  for (const auto& text : texts) {
    INFO(text);
    CHECK(reads_as_nlohmann_does(text));
  }
  const auto parsed = json::parse("[0,-0,18446744073709551616,-1e-999]", 64);
  REQUIRE(parsed.ok());
  CHECK(parsed.value[0].is_number_unsigned());
  CHECK(parsed.value[1].is_number_integer());
  CHECK(parsed.value[2].is_number_float());
  CHECK(std::signbit(parsed.value[3].get<double>()));
  CHECK(json::parse(R"({"a":1,"a":2})", 64).value["a"] == 2);
}

TEST_CASE("the reader and nlohmann's parser agree on mutated and generated documents") {
  // Every single-byte change, deletion and truncation of real messages, as for the check.
  const std::vector<std::string> seeds = {
      R"({"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"h\u00e9\n"}],"isError":false}})",
      R"([{"a":-1.5e-3,"b":[true,false,null],"c":"\ud83d\ude00\"\\","d":18446744073709551615}])"};
  const std::string alphabet =
      "{}[]\":,\\/ \t\r\n-+.0123456789eEuUabfnrtlsx\x7F\x80\xBF\xC3\xE2\xF0\xFF";
  std::size_t compared = 0;
  for (const auto& text : one_byte_variants(seeds, alphabet)) {
    INFO(text);
    REQUIRE(reads_as_nlohmann_does(text));
    ++compared;
  }
  // Documents written from a fixed seed: nested containers, numbers at the edges of each type,
  // strings with escapes and multi-byte characters.
  std::mt19937 random(20261207);
  const std::vector<std::string> scalars = {"0",
                                            "-0",
                                            "1",
                                            "-1",
                                            "4294967296",
                                            "9223372036854775807",
                                            "9223372036854775808",
                                            "-9223372036854775808",
                                            "-9223372036854775809",
                                            "18446744073709551615",
                                            "18446744073709551616",
                                            "0.5",
                                            "-2.5e-7",
                                            "6.02e23",
                                            "1e-400",
                                            "true",
                                            "false",
                                            "null",
                                            R"("")",
                                            R"("plain")",
                                            R"("\u00e9\ud83d\ude00\n")",
                                            "\"\xE2\x82\xAC\"",
                                            R"("\\\"")"};
  const std::function<std::string(int)> document = [&](int depth) -> std::string {
    const auto pick = random() % 4;
    if (depth >= 5 || pick == 0) return scalars[random() % scalars.size()];
    const bool object = pick == 1;
    std::string text = object ? "{" : "[";
    const auto count = random() % 4;
    for (unsigned i = 0; i < count; ++i) {
      if (i) text += random() % 2 ? "," : " , ";
      if (object) text += "\"k" + std::to_string(random() % 3) + "\":";
      text += document(depth + 1);
    }
    return text + (object ? "}" : "]");
  };
  for (int i = 0; i < 2000; ++i) {
    const std::string text = document(0);
    INFO(text);
    REQUIRE(reads_as_nlohmann_does(text));
    ++compared;
  }
  CHECK(compared > 7000);
}

TEST_CASE("a NUL byte ends no JSON text: what follows it is not ignored") {
  // nlohmann's parser alone stops at a NUL and takes what came before it.
  const std::string smuggled("{\"a\":1}\0{\"b\":2}", 15);
  REQUIRE(json::Json::accept(smuggled));
  CHECK(json::parse(smuggled, 64).error == json::ParseError::not_json);
  CHECK(json::check(smuggled, 64) == json::ParseError::not_json);
  CHECK(json::parse(std::string("1\0", 2), 64).error == json::ParseError::not_json);
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

TEST_CASE("append_string finds what needs escaping at every offset of its eight-byte words") {
  // Each piece at each offset of texts of every length up to 20, so that it falls at the start,
  // middle and end of a word, across two words, and in the tail shorter than a word.
  // Characters to escape, characters that stay as they are, UTF-8 of two, three and four bytes,
  // and byte sequences that are not UTF-8.
  std::vector<std::string> pieces = {"\"", "\\", "\n", "\x01", "\x1f", "\x7f", " ", "~"};
  pieces.push_back(std::string(1, '\0'));
  for (const char* utf8 : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"})
    pieces.push_back(utf8);
  for (const char* not_utf8 :
       {"\xff", "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80"})
    pieces.push_back(not_utf8);
  const std::string filler = "abcdefghijklmnopqrstuvwxyz";
  for (const auto& piece : pieces) {
    for (std::size_t length = 0; length <= 20; ++length) {
      for (std::size_t at = 0; at <= length; ++at) {
        std::string text = filler.substr(0, at);
        text += piece;
        text.append(filler, at, length - at);
        INFO("piece " << nlohmann::json(piece).dump(-1, ' ', true,
                                                    nlohmann::json::error_handler_t::replace)
                      << " at " << at << " of " << length);
        std::string out = "prefix";
        membrane::json::append_string(out, text);
        CHECK(out == "prefix" + nlohmann::json(text).dump(
                                    -1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    }
  }
}

TEST_CASE("a JSON string literal is decoded where it stands, or refused") {
  std::string out = "kept:";
  const std::string text = R"(x "a\"b\\\/\n\u00e9\ud83d\ude00" y)";
  CHECK(json::decode_string(text, 2, out) == text.size() - 2);
  CHECK(out == "kept:a\"b\\/\n\xC3\xA9\xF0\x9F\x98\x80");
  // Not at a quote, unterminated, a raw control character, invalid UTF-8, a lone surrogate.
  for (const std::string bad : {"x", "\"abc", "\"a\nb\"", "\"\xC3\"", "\"\\ud83d\"", "\"\\ude00\"",
                                "\"\\x\"", "\"\\u12\""}) {
    INFO(bad);
    std::string ignored;
    CHECK(json::decode_string(bad, 0, ignored) == std::string_view::npos);
  }
  std::string empty;
  CHECK(json::decode_string("\"\"", 0, empty) == 2);
  CHECK(empty.empty());
}
