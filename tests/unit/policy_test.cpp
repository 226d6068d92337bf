#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "membrane/policy/policy.hpp"
#include "policy/expression.hpp"

using namespace membrane::policy;

namespace {

// A tools/call context over `arguments`.
struct Call {
  Json arguments;
  Json headers = Json::object();
  CallContext context(std::string_view tool, std::string_view server = "fs") const {
    CallContext call;
    call.method = "tools/call";
    call.server = server;
    call.tool = tool;
    call.arguments = &arguments;
    call.request_headers = &headers;
    call.client_address = "127.0.0.1:5000";
    return call;
  }
};

std::string error_of(const std::string& yaml) {
  try {
    Policy::parse(yaml, "p.yaml");
  } catch (const PolicyError& error) {
    return error.what();
  }
  return "(no error)";
}

const char* const ruleset = R"yaml(
- list: sensitive_paths
  items: [~/.ssh, /etc/shadow]
- list: file_tools
  items: [read_file, write_file, edit_file]
- macro: file_tool
  condition: tool.name in file_tools
- rule: outside-workspace
  description: File tools stay inside /workspace
  priority: 10
  condition: file_tool and not path_within(args.path, "/workspace")
  verdict: deny
  message: Only files under /workspace may be touched
- rule: ssh-keys
  priority: 50
  condition: file_tool and (args.path startswith "~/.ssh" or args.path matches "id_(rsa|ed25519)")
  verdict: deny
- rule: destructive-needs-approval
  condition: tool.name == "delete_file" or args.force == true
  verdict: ask
- rule: files-ok
  condition: file_tool
  verdict: allow
)yaml";

}  // namespace

TEST_CASE("a denied path outside the workspace is denied by its rule") {
  const auto policy = Policy::parse(ruleset, "p.yaml", Verdict::deny);
  const Call call{{{"path", "/workspace/../etc/passwd"}}};
  const auto decision = policy.decide(call.context("read_file"));
  CHECK(decision.verdict == Verdict::deny);
  REQUIRE(decision.rule);
  CHECK(decision.rule->id == "outside-workspace");
  CHECK(decision.rule->message == "Only files under /workspace may be touched");
}

TEST_CASE("an allowed call inside the workspace is allowed by the allow rule") {
  const auto policy = Policy::parse(ruleset, "p.yaml", Verdict::deny);
  const Call call{{{"path", "/workspace/src/main.cpp"}}};
  const auto decision = policy.decide(call.context("read_file"));
  CHECK(decision.verdict == Verdict::allow);
  REQUIRE(decision.rule);
  CHECK(decision.rule->id == "files-ok");
}

TEST_CASE("deny beats ask beats allow, and higher priority decides among denials") {
  const auto policy = Policy::parse(ruleset, "p.yaml");
  const Call call{{{"path", "~/.ssh/id_rsa"}, {"force", true}}};
  const auto decision = policy.decide(call.context("write_file"), true);
  CHECK(decision.verdict == Verdict::deny);
  CHECK(decision.rule->id == "ssh-keys");
  std::vector<std::string> matched;
  for (const auto* rule : decision.matched)
    matched.push_back(rule->id);
  CHECK(matched == std::vector<std::string>{"ssh-keys", "outside-workspace",
                                            "destructive-needs-approval", "files-ok"});
}

TEST_CASE("ask applies when no denial holds") {
  const auto policy = Policy::parse(ruleset, "p.yaml");
  const Call call{{{"path", "/workspace/x"}, {"force", true}}};
  CHECK(policy.decide(call.context("write_file")).verdict == Verdict::ask);
}

TEST_CASE("no matching rule gives the default verdict") {
  const Call call{{{"q", "x"}}};
  CHECK(Policy::parse(ruleset, "p.yaml", Verdict::deny).decide(call.context("search")).verdict ==
        Verdict::deny);
  CHECK(Policy::parse(ruleset, "p.yaml", Verdict::allow).decide(call.context("search")).verdict ==
        Verdict::allow);
}

TEST_CASE("dynamic values that do not fit make a comparison false, not an error") {
  const auto policy = Policy::parse(R"yaml(
- rule: big
  condition: args.count > 10 or args.items[1].name == "b" or size(args.items) >= 5
  verdict: deny
)yaml",
                                    "p.yaml");
  CHECK(policy.decide(Call{{{"count", 11}}}.context("t")).verdict == Verdict::deny);
  CHECK(policy.decide(Call{{{"count", "11"}}}.context("t")).verdict == Verdict::allow);
  CHECK(policy.decide(Call{{{"items", {{{"name", "a"}}, {{"name", "b"}}}}}}.context("t")).verdict ==
        Verdict::deny);
  CHECK(policy.decide(Call{{{"items", {1, 2, 3, 4, 5}}}}.context("t")).verdict == Verdict::deny);
  CHECK(policy.decide(Call{Json::object()}.context("t")).verdict == Verdict::allow);
}

TEST_CASE("exists, contains, endswith, glob and headers work over the call") {
  const auto policy = Policy::parse(R"yaml(
- rule: r1
  condition: exists(args.url) and args.url contains "?token=" and request.headers.X-Agent endswith "bot" and tool.name glob "fetch*"
  verdict: deny
)yaml",
                                    "p.yaml");
  Call call{{{"url", "https://x/?token=1"}}};
  call.headers = {{"x-agent", "evilbot"}};
  CHECK(policy.decide(call.context("fetch_url")).verdict == Verdict::deny);
  call.headers = {{"x-agent", "human"}};
  CHECK(policy.decide(call.context("fetch_url")).verdict == Verdict::allow);
}

TEST_CASE("an unknown field is a load-time error with file:line:col") {
  const auto error = error_of("- rule: r\n  condition: tool.nme == \"x\"\n  verdict: deny\n");
  CHECK(error.rfind("p.yaml:2:14: unknown field or name 'tool.nme'", 0) == 0);
}

TEST_CASE("a type error is reported at load time where the operator is") {
  const auto error = error_of("- rule: r\n  condition: tool.name > 3\n  verdict: deny\n");
  INFO(error);
  CHECK(error.rfind("p.yaml:2:24: '>' compares a number with a number", 0) == 0);
}

TEST_CASE("errors inside a block scalar point at the right line and column") {
  const auto error = error_of(
      "- rule: r\n  condition: |\n    tool.name == \"a\"\n      and bogus\n  verdict: deny\n");
  INFO(error);
  CHECK(error.rfind("p.yaml:4:11: unknown name 'bogus'", 0) == 0);
}

TEST_CASE("an invalid regular expression is a load-time error") {
  const auto error =
      error_of("- rule: r\n  condition: args.x matches \"(unclosed\"\n  verdict: deny\n");
  CHECK(error.find("p.yaml:2:") == 0);
  CHECK(error.find("invalid regular expression") != std::string::npos);
}

TEST_CASE("structural mistakes name the place and what is allowed") {
  CHECK(error_of("- rule: r\n  condition: true\n").find("needs a 'verdict'") != std::string::npos);
  CHECK(error_of("- rule: r\n  condition: true\n  verdict: block\n")
            .rfind("p.yaml:3:12: unknown verdict 'block'", 0) == 0);
  CHECK(error_of("- rule: r\n  condtion: true\n  verdict: deny\n")
            .rfind("p.yaml:2:3: unknown key 'condtion'", 0) == 0);
  CHECK(error_of("- rule: r\n  condition: true\n  verdict: deny\n- rule: r\n  condition: true\n  "
                 "verdict: deny\n")
            .find("already defined at p.yaml:1:9") != std::string::npos);
  CHECK(error_of("rules: []").find("a policy file is a list of entries") != std::string::npos);
  CHECK(error_of("- rule: r\n  condition: 'tool.name'\n  verdict: deny\n")
            .find("must be true or false") != std::string::npos);
  CHECK(error_of("- rule: [\n").rfind("p.yaml:", 0) == 0);
}

TEST_CASE("macros and lists must be defined before use") {
  CHECK(
      error_of("- rule: r\n  condition: is_x\n  verdict: deny\n- macro: is_x\n  condition: true\n")
          .find("unknown name 'is_x'") != std::string::npos);
}

TEST_CASE("paths are normalised lexically before prefix checks") {
  CHECK(path_within("/workspace/a/../b", "/workspace", "/home/u"));
  CHECK_FALSE(path_within("/workspace/../etc/passwd", "/workspace", "/home/u"));
  CHECK_FALSE(path_within("/workspace-evil/x", "/workspace", "/home/u"));
  CHECK(path_within("/workspace", "/workspace/", "/home/u"));
  CHECK(path_within("~/.ssh/id_rsa", "/home/u/.ssh", "/home/u"));
  CHECK_FALSE(path_within("relative/path", "/workspace", "/home/u"));
  CHECK(path_within("/../../etc", "/etc", "/home/u"));
}

TEST_CASE("glob supports *, ? and character classes") {
  CHECK(glob_match("*.env", "/app/.env"));
  CHECK(glob_match("id_?sa*", "id_rsa.pub"));
  CHECK(glob_match("[a-c]x", "bx"));
  CHECK_FALSE(glob_match("[!a-c]x", "bx"));
  CHECK_FALSE(glob_match("*.env", "/app/.envrc"));
  CHECK(glob_match("*", ""));
}

TEST_CASE("redact rules mask their patterns in every string of a result") {
  const auto policy = Policy::parse(R"yaml(
- rule: keys
  condition: mcp.method == "tools/call"
  verdict: redact
  redact: ['AKIA[0-9A-Z]{16}', 'ghp_[A-Za-z0-9]{36}']
)yaml",
                                    "p.yaml");
  CHECK(policy.has_redactions());
  Json result = {{"content",
                  {{{"type", "text"},
                    {"text", "key AKIAABCDEFGHIJKLMNOP and ghp_" + std::string(36, 'x') + "!"}}}},
                 {"structuredContent", {{"nested", {"AKIAQQQQQQQQQQQQQQQQ"}}}}};
  const Call call{Json::object()};
  CHECK(policy.decide(call.context("env")).verdict == Verdict::redact);
  CHECK(policy.redact(call.context("env"), result));
  CHECK(result["content"][0]["text"] == "key [REDACTED:keys] and [REDACTED:keys]!");
  CHECK(result["structuredContent"]["nested"][0] == "[REDACTED:keys]");
  Json clean = {{"content", {{{"type", "text"}, {"text", "nothing here"}}}}};
  CHECK_FALSE(policy.redact(call.context("env"), clean));
}

TEST_CASE("a result no redact pattern can match is known without parsing it, escapes or not") {
  const auto policy = Policy::parse(R"yaml(
- rule: keys
  condition: tool.name == "env"
  verdict: redact
  redact: ['AKIA[0-9A-Z]{16}', '^token=\w+$', '-----BEGIN [A-Z ]*PRIVATE KEY-----']
)yaml",
                                    "p.yaml");
  const std::string key = "AKIAABCDEFGHIJKLMNOP";
  const std::vector<std::pair<std::string, bool>> messages = {
      {R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"nothing here\nat all"}]}})",
       false},
      {R"({"id":1,"result":{"content":[{"type":"text","text":"key )" + key + R"("}]}})", true},
      // The same key written with escapes: the parser decodes them, and so does the check.
      {R"({"id":1,"result":{"text":"AKIA\u0041BCDEFGHIJKLMNOP"}})", true},
      {R"({"id":1,"result":{"text":"AK\u0049\u0041ABCDEFGHIJKLMNOP"}})", true},
      {R"({"id":1,"result":{"text":"-----BEGIN RSA\u0020PRIVATE KEY-----"}})", true},
      // Anchors mean what they mean in one string: the start of the string.
      {R"({"id":1,"result":{"text":"token=abc"}})", true},
      {R"({"id":1,"result":{"text":"line\ntoken=abc"}})", false},
      {R"({"id":1,"result":{"a":"x","text":"the token=abc"}})", false},
      // A key split across two strings is no match, and a broken string is looked at in full.
      {R"({"id":1,"result":{"a":"AKIAABCDEFGH","b":"IJKLMNOP"}})", false},
      {R"({"id":1,"result":{"text":"bad escape \q"}})", true},
      {R"({"id":1,"result":{"text":"lone surrogate \udc00"}})", true},
      {R"({"id":1,"result":{"text":"unterminated)", true},
  };
  for (const auto& [message, expected] : messages) {
    INFO(message);
    CHECK(policy.may_redact(message) == expected);
    // Never a false "no": whatever every redact rule would mask, the check saw.
    Json parsed = Json::parse(message, nullptr, false);
    if (!parsed.is_discarded() && !expected) CHECK_FALSE(policy.redact_all(parsed));
  }
  const auto without = Policy::parse("- rule: r\n  condition: true\n  verdict: deny\n", "p.yaml");
  CHECK_FALSE(without.may_redact(R"({"text":")" + key + R"("})"));
}

TEST_CASE("redact patterns are checked at load time") {
  CHECK(error_of("- rule: r\n  condition: true\n  verdict: redact\n")
            .find("needs 'redact: [patterns]'") != std::string::npos);
  CHECK(error_of("- rule: r\n  condition: true\n  verdict: deny\n  redact: ['x']\n")
            .find("belong to rules with") != std::string::npos);
  CHECK(error_of("- rule: r\n  condition: true\n  verdict: redact\n  redact: ['(x']\n")
            .rfind("p.yaml:4:12: invalid regular expression", 0) == 0);
}

TEST_CASE("a redact pattern that can only match nothing is a load-time error") {
  // An entry with no pattern, and patterns that match the empty string, would mask the gaps
  // between characters (the fuzzer found that a few of them in a row grow a result without end).
  CHECK(error_of("- rule: r\n  condition: true\n  verdict: redact\n  redact:\n    -   # none\n")
            .rfind("p.yaml:5:5: redact entry 1: a redact pattern must be a non-empty", 0) == 0);
  CHECK(error_of("- rule: r\n  condition: true\n  verdict: redact\n  redact: ['']\n")
            .find("a redact pattern must be a non-empty regular expression") != std::string::npos);
  for (const std::string pattern : {"x*", "(ab)?", "^", "a{0,3}|b"}) {
    INFO(pattern);
    CHECK(
        error_of("- rule: r\n  condition: true\n  verdict: redact\n  redact: ['" + pattern + "']\n")
            .find("matches the empty string") != std::string::npos);
  }
  CHECK_NOTHROW(Policy::parse(
      "- rule: r\n  condition: true\n  verdict: redact\n  redact: ['x+', '\\bk\\b']\n", "p.yaml"));
}

TEST_CASE("redaction looks at the original text: masks are never masked again") {
  const auto policy = Policy::parse(R"yaml(
- rule: first
  condition: true
  verdict: redact
  redact: ['abc', 'RED']
- rule: second
  condition: true
  verdict: redact
  redact: ['bcd', 'first']
)yaml",
                                    "p.yaml");
  const Call call{Json::object()};
  Json result = {{"text", "x abcd y RED z"}};
  CHECK(policy.redact(call.context("t"), result));
  // abc and bcd overlap: one mask, the first rule's; RED is masked once, and neither rule's
  // patterns match inside the masks ("RED" and "first" are in them).
  CHECK(result["text"] == "x [REDACTED:first] y [REDACTED:first] z");
}

TEST_CASE("many redact rules that match every character grow a result linearly") {
  std::string rules;
  for (int i = 0; i < 8; ++i) {
    rules += "- rule: r" + std::to_string(i) +
             "\n  condition: true\n  verdict: redact\n  redact: ['[A-Za-z]', 'RED', 'A']\n";
  }
  const auto policy = Policy::parse(rules, "p.yaml");
  const Call call{Json::object()};
  const std::string text(1000, 'q');
  Json result = {{"text", text}};
  CHECK(policy.redact(call.context("t"), result));
  // One mask per character, from the first rule; applied rule after rule it was 10^8 times larger.
  std::string expected;
  for (std::size_t i = 0; i < text.size(); ++i)
    expected += "[REDACTED:r0]";
  CHECK(result["text"] == expected);
}

TEST_CASE("an array index out of range is a load-time error, not undefined behaviour") {
  CHECK(error_of("- rule: r\n  condition: args.a[99999999999999999999999] == 1\n  verdict: deny\n")
            .find("array index must be a whole number") != std::string::npos);
  CHECK(
      error_of("- rule: r\n  condition: args.a[-1] == 1\n  verdict: deny\n").find("array index") !=
      std::string::npos);
  CHECK(
      error_of("- rule: r\n  condition: args.a[1.5] == 1\n  verdict: deny\n").find("array index") !=
      std::string::npos);
}

TEST_CASE("optimized programs decide like the conditions as written") {
  const Policy policy = Policy::parse(R"yaml(
- rule: folded-true
  condition: '"a" == "a" and tool.name == "t1" and args.n > 1'
  verdict: deny
- rule: folded-false
  condition: '("a" == "b" and args.n > 0) or (tool.name == "t2" and not ("x" in ["y"]))'
  verdict: deny
- rule: mixed-selector
  condition: (tool.name == "t3" and args.n > 5) or tool.name == "t4"
  verdict: deny
- rule: two-selectors
  condition: tool.name in ["t5", "t6"] and tool.name != "t6" and exists(args.n)
  verdict: deny
)yaml",
                                      "p.yaml");
  const auto verdict = [&](std::string_view tool, Json arguments) {
    Call call{std::move(arguments)};
    const auto decision = policy.decide(call.context(tool));
    return decision.rule ? decision.rule->id : std::string("-");
  };
  CHECK(verdict("t1", {{"n", 2}}) == "folded-true");
  CHECK(verdict("t1", {{"n", 1}}) == "-");
  CHECK(verdict("t2", Json::object()) == "folded-false");
  // Reached through the index under t3, the remaining test on args still counts.
  CHECK(verdict("t3", {{"n", 6}}) == "mixed-selector");
  CHECK(verdict("t3", {{"n", 1}}) == "-");
  CHECK(verdict("t4", Json::object()) == "mixed-selector");
  // The index guarantees only the selector that placed the rule; the other still runs.
  CHECK(verdict("t5", {{"n", 1}}) == "two-selectors");
  CHECK(verdict("t6", {{"n", 1}}) == "-");
  CHECK(verdict("t7", {{"n", 1}}) == "-");
}

TEST_CASE("field values are cached per decision, never across decisions") {
  const Policy policy = Policy::parse(R"yaml(
- rule: big
  condition: args.n > 10 and args.path startswith "/a"
  verdict: deny
- rule: small-a
  condition: args.n <= 10 and args.path startswith "/a"
  verdict: ask
)yaml",
                                      "p.yaml");
  for (int round = 0; round < 3; ++round) {
    Call big{{{"n", 11}, {"path", "/a/x"}}};
    Call small{{{"n", 3}, {"path", "/a/y"}}};
    Call other{{{"n", 3}, {"path", "/b"}}};
    CHECK(policy.decide(big.context("t")).verdict == Verdict::deny);
    CHECK(policy.decide(small.context("t")).verdict == Verdict::ask);
    CHECK(policy.decide(other.context("t")).verdict == Verdict::allow);
  }
}

TEST_CASE("constant parts are folded at load time") {
  const auto program = [](const std::string& text) {
    return optimize(compile_condition(text, Environment{}, [](std::size_t) { return "x:1:1"; }));
  };
  const CallContext empty;
  CHECK(evaluate(*program("\"a\" == \"a\""), empty));
  CHECK_FALSE(evaluate(*program("not (\"a\" in [\"a\", \"b\"])"), empty));
  CHECK_FALSE(evaluate(*program("tool.name == \"x\" and 1 > 2"), empty));
  CallContext call;
  call.tool = "x";
  CHECK(evaluate(*program("tool.name == \"x\" and 2 > 1"), call));
  CHECK(evaluate(*program("1 > 2 or tool.name == \"x\""), call));
}

TEST_CASE("a policy directory mounted from a Kubernetes ConfigMap is read once, not per copy") {
  // A ConfigMap volume: the files live in ..<timestamp>/, ..data links to it, and each name at the
  // top links into ..data. Listing every copy would define each rule twice.
  namespace fs = std::filesystem;
  const auto root =
      fs::temp_directory_path() / ("membrane-configmap-" + std::to_string(std::random_device{}()));
  const auto versioned = root / "..2026_11_23_10_00_00.123";
  fs::create_directories(versioned);
  {
    std::ofstream file(versioned / "rules.yaml");
    file << ruleset;
  }
  fs::create_directory_symlink(versioned.filename(), root / "..data");
  fs::create_symlink(fs::path("..data") / "rules.yaml", root / "rules.yaml");

  const auto files = Policy::source_files({root.string()});
  REQUIRE(files == std::vector<std::string>{(root / "rules.yaml").string()});
  const auto policy = Policy::load({root.string()});
  CHECK(policy.rule_count() == 4);
  fs::remove_all(root);
}

TEST_CASE("conditions nested past the limits are refused with their position, not a crash") {
  const auto rule = [](const std::string& condition) {
    return "- rule: deep\n  condition: " + condition + "\n  verdict: deny\n";
  };
  CHECK(error_of(rule(std::string(3000, '(') + "true" + std::string(3000, ')')))
            .starts_with("p.yaml:2:"));
  CHECK(error_of(rule(std::string(3000, '(') + "true" + std::string(3000, ')')))
            .find("nesting deeper than 64 levels") != std::string::npos);
  std::string nots;
  for (int i = 0; i < 20'000; ++i)
    nots += "not ";
  CHECK(error_of(rule(nots + "true")).find("nesting deeper than 64 levels") != std::string::npos);
  std::string chain = "tool.name == \"x\"";
  for (int i = 0; i < 5000; ++i)
    chain += " and tool.name == \"x\"";
  CHECK(error_of(rule(chain)).find("the condition is too deep") != std::string::npos);
  // Within the limits, deep enough for any real rule.
  CHECK(error_of(rule(std::string(60, '(') + "true" + std::string(60, ')'))) == "(no error)");
  std::string long_chain = "tool.name == \"x\"";
  for (int i = 0; i < 200; ++i)
    long_chain += " or tool.name == \"y\"";
  CHECK(error_of(rule(long_chain)) == "(no error)");
}

TEST_CASE("macros count toward the depth of the conditions that use them") {
  std::string macros = "- macro: m0\n  condition: tool.name == \"x\"\n";
  for (int i = 1; i < 400; ++i) {
    macros += "- macro: m" + std::to_string(i) + "\n  condition: m" + std::to_string(i - 1) +
              " and m" + std::to_string(i - 1) + "\n";
  }
  CHECK(error_of(macros).find("the condition is too deep") != std::string::npos);
}

TEST_CASE("a policy file nested deeper than the YAML limit names its line") {
  const std::string yaml =
      "- rule: x\n  condition: true\n  verdict: deny\n  tags: " + std::string(100'000, '[') + "\n";
  CHECK(error_of(yaml).starts_with("p.yaml:4:1: nesting deeper than 64 levels"));
}
