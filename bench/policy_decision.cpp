// Policy decision latency: p50/p99 of Policy::decide for generated rulesets of 10, 100, 1,000
// and 10,000 rules, half of them regular expressions, judged against a mix of calls.
//   build/bench/membrane_bench_policy [--calls N] [--repeat N] [--rules N]
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

}  // namespace

int main(int argc, char** argv) {
  int calls = 200'000;
  int repeat = 5;
  std::vector<int> sizes = {0, 10, 100, 1000, 10000};
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--calls") == 0) calls = std::max(1000, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--rules") == 0) sizes = {0, std::max(1, std::atoi(argv[i + 1]))};
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
    for (int warm = 0; warm < 10'000; ++warm)
      (void)policy.decide(contexts[warm % 64]);

    // Repeated runs, reported by their median: one run on a shared VM can catch a noisy moment.
    std::vector<double> p50s, p99s, p999s, rates;
    std::vector<std::int64_t> samples(static_cast<std::size_t>(calls));
    for (int run = 0; run < repeat; ++run) {
      const auto all_start = std::chrono::steady_clock::now();
      for (int i = 0; i < calls; ++i) {
        const auto start = std::chrono::steady_clock::now();
        const auto decision = policy.decide(contexts[i % 64]);
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
    const double p99 = median(p99s);
    if (rules == 0) baseline_p99 = p99;
    std::printf("| %d | %.1f | %.0f | %.0f | %.0f–%.0f | %.0f | %.0f | %.1f× |\n", rules, load_ms,
                median(p50s), p99, *std::min_element(p99s.begin(), p99s.end()),
                *std::max_element(p99s.begin(), p99s.end()), median(p999s), median(rates),
                p99 / baseline_p99);
  }
  return 0;
}
