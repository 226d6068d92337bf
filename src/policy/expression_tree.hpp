// The condition language's tree, shared by its parts inside the policy module: the parser builds
// it, the optimizer rewrites it, the decision index annotates it and the evaluator walks it.
// Not part of the module's interface (expression.hpp is).
#pragma once

#include <re2/re2.h>
#include <re2/set.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <variant>
#include <vector>

#include "policy/expression.hpp"

namespace membrane::policy {

enum class FieldRoot {
  mcp_method,
  server_name,
  virtual_name,
  virtual_published_name,
  tool_name,
  tool_annotations,
  tool_description,
  tool_text,
  args,
  identity_sub,
  identity_claims,
  txn,
  request_client_address,
  request_headers,
  session_id,
  session_protocol_version,
  tool_changed,
  tool_changes,
  tool_digest,
  tool_pinned_digest,
  call_incomplete,
  // The views (call_views.hpp), in View's order: view_of() maps one to the other.
  call_paths,
  call_argument_paths,
  call_written_paths,
  call_escaping_paths,
  call_commands,
  call_programs,
  call_pipelines,
  call_code,
  call_code_interpreters,
  call_code_sources,
  call_urls,
  call_url_schemes,
  call_url_hosts,
  call_url_ports,
  call_url_paths,
  call_url_host_classes,
  call_strings,
  call_fields,
};

inline bool is_view(FieldRoot root) {
  return root >= FieldRoot::call_paths;
}

struct PathStep {
  std::string key;  // object member, or empty for an index
  long index = -1;  // array index when key is empty
};

enum class Op {
  literal,
  field,
  list,
  not_,
  and_,
  or_,
  equal,
  not_equal,
  less,
  less_equal,
  greater,
  greater_equal,
  in,
  contains,
  starts_with,
  ends_with,
  glob,
  matches,
  exists,
  size,
  path_within,
  macro,
  all_of,  // optimized and-chain: `children`, cheapest first
  any_of,  // optimized or-chain
};

// A value at evaluation time: a view, nothing is copied.
struct Value {
  // strings: a view's values; a test holds when it holds for one of them.
  enum class Kind { missing, boolean, number, string, json, list, strings } kind = Kind::missing;
  bool boolean = false;
  double number = 0;
  std::string_view string;
  const Json* json = nullptr;
  const std::vector<std::string>* list = nullptr;
  const std::vector<std::string_view>* strings = nullptr;
};

struct Node {
  Op op = Op::literal;
  Type type = Type::boolean;
  // literal
  std::variant<std::monostate, bool, double, std::string> constant;
  // field
  FieldRoot root = FieldRoot::mcp_method;
  std::vector<PathStep> path;
  // list (literal or named); long lists also get a hash set for `in`
  std::vector<std::string> items;
  std::unordered_set<std::string, TransparentStringHash, std::equal_to<>> item_set;
  // operands
  NodePtr left;
  NodePtr right;
  std::vector<NodePtr> children;  // all_of, any_of
  // Levels of operators below and including this node, counting the macros it uses: evaluation,
  // optimization and destruction recurse this deep, so the parser bounds it.
  std::size_t height = 1;
  // Set by build_decision_index: this field's value is cached per decision in slot `field_slot`.
  const DecisionIndex* field_owner = nullptr;
  int field_slot = -1;
  // Set by build_decision_index when the same test appears in several rules: its result is
  // computed once per decision and kept in slot `memo_slot`.
  int memo_slot = -1;
  // Set by build_decision_index when `right` is a literal: its value, ready to compare.
  bool right_is_literal = false;
  Value right_value;
  // Set with right_is_literal when the left side is a field: evaluated by compare_with_constant.
  bool compares_constant = false;
  // matches
  std::shared_ptr<const re2::RE2> regex;
  // Set by build_decision_index: this pattern is member `regex_member` of group `regex_group`.
  const DecisionIndex* regex_owner = nullptr;
  int regex_group = -1;
  int regex_member = -1;
  std::string pattern;  // glob, path_within prefix
};

struct DecisionIndex {
  struct Group {
    FieldRoot root;
    std::vector<PathStep> path;
    std::unique_ptr<re2::RE2::Set> set;
  };
  std::vector<Group> groups;
  std::size_t field_slots = 0;  // distinct fields the rules read
  std::size_t memo_slots = 0;   // tests shared by several rules
};

// A test of one value against another: ==, !=, <, <=, >, >=, in, contains, startswith, endswith.
bool is_comparison(Op op);

// A node's value for this call (a literal's value for any call). Evaluation time: no copies.
Value value_of(const Node& node, const CallContext& call);

}  // namespace membrane::policy
