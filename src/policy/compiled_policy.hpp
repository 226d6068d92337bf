// A policy as the engine runs it: the rules ordered by strength, indexed by tool name, with their
// conditions compiled and optimized (policy.cpp decides with it; policy_loader.cpp builds it from
// the files).
#pragma once

#include <re2/re2.h>
#include <re2/set.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "membrane/policy/policy.hpp"
#include "policy/expression.hpp"

namespace membrane::policy {

// Methods a rule can be about, as bits: a call skips the rules of other methods without
// evaluating them.
namespace method_bit {
constexpr std::uint8_t tools_call = 1, resources_read = 2, prompts_get = 4, tools_list = 8,
                       other = 16, any = 31;
}  // namespace method_bit

inline std::uint8_t bit_of_method(std::string_view method) {
  if (method == "tools/call") return method_bit::tools_call;
  if (method == "resources/read") return method_bit::resources_read;
  if (method == "prompts/get") return method_bit::prompts_get;
  if (method == "tools/list") return method_bit::tools_list;
  return method_bit::other;
}

struct CompiledLimit {
  NodePtr program;          // null: every judged call
  std::vector<NodePtr> by;  // fields whose values select the bucket
};

struct CompiledRule {
  RuleInfo info;
  NodePtr condition;  // as written (analysis)
  NodePtr program;    // as run (optimized)
  // As run when the call reached the rule through its tool-name index entry.
  NodePtr indexed_program;
  std::uint8_t methods = method_bit::any;
  bool names_methods = false;  // the condition requires mcp.method to be one of a few
  bool uses_arguments = true;
  std::vector<std::shared_ptr<const re2::RE2>> redactions;
};

class CompiledPolicy {
 public:
  Verdict default_verdict = Verdict::allow;
  std::vector<RuleInfo> infos;
  // Strongest verdict first, then higher priority, then file order: the first rule that holds
  // decides, so evaluation stops at the first match.
  std::vector<CompiledRule> ordered;
  // Positions in `ordered` of the rules that can only hold for one of a few tools, by tool name,
  // and of the rules that may hold for any tool. A call evaluates the merge of its tool's bucket
  // and the unindexed rules, in `ordered` order.
  std::unordered_map<std::string, std::vector<std::uint32_t>, TransparentStringHash,
                     std::equal_to<>>
      by_tool;
  std::vector<std::uint32_t> any_tool;
  std::shared_ptr<const DecisionIndex> decision_index;
  bool any_redactions = false;
  // Every redact pattern of every rule in one automaton: a result in which no string matches it
  // needs no masking, whatever the rules' conditions (null: always look).
  std::shared_ptr<const re2::RE2::Set> redaction_prefilter;
  bool any_request_headers = false;
  // Parallel: what each limit is, and how it is evaluated.
  std::vector<LimitInfo> limit_infos;
  std::vector<CompiledLimit> limits;

  // Calls `visit(rule, program)` on the candidate rules in order until it returns false.
  template <class Visit>
  void for_candidates(std::string_view method_name, std::string_view tool, Visit&& visit) const {
    const std::uint8_t method = bit_of_method(method_name);
    static const std::vector<std::uint32_t> none;
    const auto bucket = by_tool.find(tool);
    const auto& indexed = bucket == by_tool.end() ? none : bucket->second;
    std::size_t i = 0, j = 0;
    while (i < indexed.size() || j < any_tool.size()) {
      const bool take_indexed =
          j >= any_tool.size() || (i < indexed.size() && indexed[i] < any_tool[j]);
      const std::uint32_t position = take_indexed ? indexed[i++] : any_tool[j++];
      const CompiledRule& rule = ordered[position];
      if ((rule.methods & method) == 0) continue;
      if (!visit(rule, take_indexed ? *rule.indexed_program : *rule.program)) return;
    }
  }
};

// Reads and compiles policy files, or one document's text (`source` names it in errors);
// PolicyError with file:line:column on the first problem.
std::shared_ptr<const CompiledPolicy> compile_files(const std::vector<std::string>& files,
                                                    Verdict default_verdict);
std::shared_ptr<const CompiledPolicy> compile_text(const std::string& yaml_text,
                                                   const std::string& source,
                                                   Verdict default_verdict);

}  // namespace membrane::policy
