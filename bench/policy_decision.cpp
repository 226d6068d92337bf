// Policy decision latency: p50/p99 of Policy::decide for generated rulesets of 10, 100, 1,000
// and 10,000 rules, half of them regular expressions, judged against a mix of calls.
//   build/bench/membrane_bench_policy [--calls N] [--repeat N] [--rules N] [--shipped DIR]
//                                     [--no-views]
// A second table gives the cost of each view (call.paths, call.commands, …) on everyday calls,
// and of the shipped ruleset (DIR, default policies/default, run from the repository root).
// Prints a Markdown table. Each decision is timed on its own (steady_clock around one call); each
// ruleset is measured --repeat times (default 5) and the median run is reported.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "membrane/policy/policy.hpp"

using membrane::policy::CallContext;
using membrane::policy::Json;
using membrane::policy::Policy;

namespace {

// Rules spread over 50 tools (so each tool has rules/50 candidates) plus a few that apply to every
// tool, as real rulesets have (sensitive paths, commands). Half use `matches`.
std::string make_ruleset(int rules) {
  std::string yaml = "- list: file_tools\n  items: [";
  for (int t = 0; t < 50; ++t)
    yaml += (t ? ", " : "") + std::string("tool_") + std::to_string(t);
  yaml += "]\n";
  for (int i = 0; i < rules; ++i) {
    const std::string tool = "tool_" + std::to_string(i % 50);
    const bool any_tool = i % 100 == 99;  // 1% of the rules apply to every tool
    const std::string selector =
        any_tool ? "tool.name in file_tools" : "tool.name == \"" + tool + "\"";
    const std::string test = i % 2 == 0 ? "args.path matches \"^/data/p" + std::to_string(i) +
                                              "/(secret|private)[0-9]+\\\\.key$\""
                                        : "args.path startswith \"/data/p" + std::to_string(i) +
                                              "/\" and args.size > " + std::to_string(i);
    yaml += "- rule: r" + std::to_string(i) + "\n  condition: >-\n    " + selector + " and " +
            test + "\n  verdict: " +
            (i % 3 == 0   ? "deny"
             : i % 3 == 1 ? "ask"
                          : "allow") +
            "\n";
  }
  return yaml;
}

struct Timing {
  double p50 = 0, p99 = 0, p99_low = 0, p99_high = 0, p999 = 0, rate = 0;
};

// Each decision timed alone, `repeat` runs of `calls` decisions over `contexts`; the median run.
Timing measure(const Policy& policy, const std::vector<CallContext>& contexts, int calls,
               int repeat) {
  for (int warm = 0; warm < 10'000; ++warm)
    (void)policy.decide(contexts[static_cast<std::size_t>(warm) % contexts.size()]);
  std::vector<double> p50s, p99s, p999s, rates;
  std::vector<std::int64_t> samples(static_cast<std::size_t>(calls));
  for (int run = 0; run < repeat; ++run) {
    const auto all_start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) {
      const auto start = std::chrono::steady_clock::now();
      const auto decision = policy.decide(contexts[static_cast<std::size_t>(i) % contexts.size()]);
      const auto end = std::chrono::steady_clock::now();
      samples[static_cast<std::size_t>(i)] = (end - start).count() + (decision.rule ? 0 : 0);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - all_start).count();
    std::sort(samples.begin(), samples.end());
    const auto at = [&](double q) {
      return static_cast<double>(samples[static_cast<std::size_t>(q * (samples.size() - 1))]);
    };
    p50s.push_back(at(0.5));
    p99s.push_back(at(0.99));
    p999s.push_back(at(0.999));
    rates.push_back(calls / seconds);
  }
  const auto median = [](std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };
  return {median(p50s),
          median(p99s),
          *std::min_element(p99s.begin(), p99s.end()),
          *std::max_element(p99s.begin(), p99s.end()),
          median(p999s),
          median(rates)};
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 200'000;
  int repeat = 5;
  std::vector<int> sizes = {0, 10, 100, 1000, 10000};
  bool views = true;
  std::string shipped = "policies/default";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--calls") == 0) calls = std::max(1000, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--rules") == 0) sizes = {0, std::max(1, std::atoi(argv[i + 1]))};
    if (std::strcmp(argv[i], "--shipped") == 0) shipped = argv[i + 1];
  }
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-views") == 0) views = false;
  }
  // The 0-rule row is the baseline of the same run: a decision with nothing to evaluate (plus the
  // clock reads around it).
  double baseline_p99 = 1;
  std::printf(
      "| rules | load ms | p50 ns | p99 ns | p99 range ns | p99.9 ns | decisions/s (1 core) | p99 "
      "vs 0 rules |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const int rules : sizes) {
    const auto load_start = std::chrono::steady_clock::now();
    const Policy policy = Policy::parse(make_ruleset(rules), "generated.yaml");
    const double load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start)
            .count();

    // 64 distinct calls: tools in and out of the ruleset, paths that hit and miss the patterns.
    std::mt19937 random(42);
    std::vector<Json> arguments;
    std::vector<std::string> tools;
    for (int c = 0; c < 64; ++c) {
      const int rule = static_cast<int>(random() % static_cast<unsigned>(std::max(rules, 1)));
      const bool hit = c % 4 == 0;
      arguments.push_back(
          {{"path", "/data/p" + std::to_string(rule) + (hit ? "/secret7.key" : "/readme.txt")},
           {"size", static_cast<int>(random() % 20000)}});
      tools.push_back(c % 8 == 7 ? "unlisted_tool" : "tool_" + std::to_string(rule % 50));
    }
    std::vector<CallContext> contexts(64);
    for (int c = 0; c < 64; ++c) {
      contexts[c].method = "tools/call";
      contexts[c].server = "bench";
      contexts[c].tool = tools[c];
      contexts[c].arguments = &arguments[c];
    }
    const Timing timing = measure(policy, contexts, calls, repeat);
    const double p99 = timing.p99;
    if (rules == 0) baseline_p99 = p99;
    std::printf("| %d | %.1f | %.0f | %.0f | %.0f–%.0f | %.0f | %.0f | %.1f× |\n", rules, load_ms,
                timing.p50, p99, timing.p99_low, timing.p99_high, timing.p999, timing.rate,
                p99 / baseline_p99);
  }
  if (!views) return 0;

  // The views: what a decision costs when a rule asks for one view (computed once per decision,
  // on the first test that asks), on calls shaped like everyday work, against a 0-rule policy
  // measured in the same run; and the shipped ruleset, which asks for all of them.
  std::vector<Json> view_arguments = {
      {{"command", "cd /workspace/app && npm test -- --runInBand 2>&1 | tail -50"}},
      {{"path", "/workspace/app/src/index.ts"}},
      {{"url", "https://docs.python.org/3/library/json.html"}},
      {{"code", "import json\nprint(json.dumps({'a': 1}))"}, {"language", "python"}},
      {{"path", "docs/notes.md"}, {"content", std::string(2048, 'x')}},
      {{"manifest",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n"
        "  template:\n    spec:\n      containers:\n      - name: web\n        image: "
        "nginx:1.27\n"}},
      {{"command", "git status --short && git diff --stat"}, {"timeout_ms", 5000}},
      {{"entities",
        {{{"name", "Ada"},
          {"entityType", "person"},
          {"observations", {"likes tea", "writes C++"}}}}}}};
  const std::vector<std::string> view_tools = {"Bash",          "read_text_file", "fetch",
                                               "run_python",    "write_file",     "kubectl_apply",
                                               "start_process", "create_entities"};
  std::vector<CallContext> view_calls(view_arguments.size());
  for (std::size_t c = 0; c < view_arguments.size(); ++c) {
    view_calls[c].method = "tools/call";
    view_calls[c].server = "bench";
    view_calls[c].tool = view_tools[c];
    view_calls[c].arguments = &view_arguments[c];
  }
  struct Row {
    std::string name;
    std::string yaml;
  };
  const auto one_rule = [](const std::string& condition) {
    return "- rule: r\n  condition: >-\n    " + condition + "\n  verdict: deny\n";
  };
  std::vector<Row> rows = {
      {"0 rules (baseline)", ""},
      {"args.path (no view)", one_rule("args.path matches \"(^|/)\\.ssh/\"")},
      {"call.paths", one_rule("call.paths matches \"(^|/)\\.ssh/\"")},
      {"call.commands", one_rule("call.commands matches \"^nc .* -e\"")},
      {"call.commands.pipeline", one_rule("call.commands.pipeline matches \"curl \\| sh\"")},
      {"call.code", one_rule("call.code.source == \"decoded\"")},
      {"call.urls", one_rule("call.urls.host_class == \"metadata\"")},
      {"call.strings", one_rule("call.strings matches \"AKIA[0-9A-Z]{16}\"")},
      {"call.fields", one_rule("call.fields matches \"privileged=true$\"")},
  };
  std::string shipped_yaml;
  std::printf("\n| rules asking for | p50 ns | p99 ns | p99 range ns | p99 vs 0 rules |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  double view_baseline = 1;
  const auto report = [&](const std::string& name, const Policy& policy) {
    const Timing timing = measure(policy, view_calls, calls, repeat);
    if (name.starts_with("0 rules")) view_baseline = timing.p99;
    std::printf("| %s | %.0f | %.0f | %.0f–%.0f | %.1f× |\n", name.c_str(), timing.p50, timing.p99,
                timing.p99_low, timing.p99_high, timing.p99 / view_baseline);
  };
  for (const auto& row : rows)
    report(row.name, row.yaml.empty()
                         ? Policy::parse("[]", "none.yaml", membrane::policy::Verdict::allow)
                         : Policy::parse(row.yaml, "view.yaml"));
  if (!shipped.empty()) {
    const Policy policy = Policy::load({shipped});
    report("the shipped ruleset (" + std::to_string(policy.rule_count()) + " rules, every view)",
           policy);
  }
  return 0;
}
