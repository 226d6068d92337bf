#include "policy/expression.hpp"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <variant>

namespace membrane::policy {

std::string_view to_string(Type type) {
  switch (type) {
    case Type::boolean:
      return "boolean";
    case Type::number:
      return "number";
    case Type::string:
      return "string";
    case Type::list:
      return "list";
    case Type::dynamic:
      return "dynamic";
  }
  return "?";
}

// ---- the tree -------------------------------------------------------------------------------

enum class FieldRoot {
  mcp_method,
  server_name,
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
};

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
  enum class Kind { missing, boolean, number, string, json, list } kind = Kind::missing;
  bool boolean = false;
  double number = 0;
  std::string_view string;
  const Json* json = nullptr;
  const std::vector<std::string>* list = nullptr;
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

// ---- values at evaluation time (views: nothing is copied) -----------------------------------

namespace {

Value from_json(const Json* json) {
  Value value;
  if (!json) return value;
  switch (json->type()) {
    case Json::value_t::boolean:
      value.kind = Value::Kind::boolean;
      value.boolean = json->get<bool>();
      break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      value.kind = Value::Kind::number;
      value.number = json->get<double>();
      break;
    case Json::value_t::string:
      value.kind = Value::Kind::string;
      value.string = json->get_ref<const std::string&>();
      break;
    case Json::value_t::null:
    case Json::value_t::discarded:
      break;  // missing
    default:
      value.kind = Value::Kind::json;
      value.json = json;
  }
  return value;
}

Value from_string(std::string_view text, bool present = true) {
  Value value;
  if (!present) return value;
  value.kind = Value::Kind::string;
  value.string = text;
  return value;
}

// Per-thread, per-decision state: regex set results and cached field values (capacity is
// reused: no allocation once warm). A field slot holds a value for the decision whose number it
// carries. Reached through a plain pointer, so the hot path pays no thread_local guard.
struct DecisionState {
  const DecisionIndex* index = nullptr;
  std::uint32_t number = 0;
  std::vector<signed char> regex_group_state;  // -1 not computed, 0 no string, 1 computed
  std::vector<std::vector<int>> regex_group_hits;
  std::vector<Value> field_values;
  std::vector<std::uint32_t> field_decision;
  std::vector<bool> memo_values;
  std::vector<std::uint32_t> memo_decision;
};
thread_local DecisionState* active_state = nullptr;

}  // namespace

DecisionScope::DecisionScope(const DecisionIndex* index)
    : previous_(active_state ? active_state->index : nullptr) {
  thread_local DecisionState state;
  active_state = &state;
  state.index = index;
  if (!index) return;
  ++state.number;
  state.regex_group_state.assign(index->groups.size(), -1);
  if (state.regex_group_hits.size() < index->groups.size())
    state.regex_group_hits.resize(index->groups.size());
  if (state.field_values.size() < index->field_slots) {
    state.field_values.resize(index->field_slots);
    state.field_decision.resize(index->field_slots, state.number - 1);
  }
  if (state.memo_values.size() < index->memo_slots) {
    state.memo_values.resize(index->memo_slots);
    state.memo_decision.resize(index->memo_slots, state.number - 1);
  }
}

DecisionScope::~DecisionScope() {
  active_state->index = previous_;
}

namespace {

const Json* walk(const Json* json, const std::vector<PathStep>& path) {
  for (const auto& step : path) {
    if (!json) return nullptr;
    if (step.key.empty()) {
      if (!json->is_array() || step.index < 0 ||
          static_cast<std::size_t>(step.index) >= json->size())
        return nullptr;
      json = &(*json)[static_cast<std::size_t>(step.index)];
    } else {
      if (!json->is_object()) return nullptr;
      const auto it = json->find(step.key);
      if (it == json->end()) return nullptr;
      json = &*it;
    }
  }
  return json;
}

Value field_value(const Node& node, const CallContext& call) {
  switch (node.root) {
    case FieldRoot::mcp_method:
      return from_string(call.method);
    case FieldRoot::server_name:
      return from_string(call.server);
    case FieldRoot::tool_name:
      return from_string(call.tool, !call.tool.empty());
    case FieldRoot::tool_annotations:
      return from_json(walk(call.tool_annotations, node.path));
    case FieldRoot::tool_description:
      return from_string(call.tool_description, !call.tool_description.empty());
    case FieldRoot::tool_text:
      return from_string(call.tool_text, !call.tool_text.empty());
    case FieldRoot::args:
      return from_json(walk(call.arguments, node.path));
    case FieldRoot::identity_sub:
      return from_string(call.identity_subject, !call.identity_subject.empty());
    case FieldRoot::identity_claims:
      return from_json(walk(call.identity_claims, node.path));
    case FieldRoot::txn:
      return from_json(walk(call.txn, node.path));
    case FieldRoot::request_client_address:
      return from_string(call.client_address);
    case FieldRoot::request_headers:
      return from_json(walk(call.request_headers, node.path));
    case FieldRoot::session_id:
      return from_string(call.session_id, !call.session_id.empty());
    case FieldRoot::session_protocol_version:
      return from_string(call.protocol_version, !call.protocol_version.empty());
  }
  return {};
}

Value value_of(const Node& node, const CallContext& call);

Value right_of(const Node& node, const CallContext& call) {
  return node.right_is_literal ? node.right_value : value_of(*node.right, call);
}

bool truthy(const Value& value) {
  return value.kind == Value::Kind::boolean && value.boolean;
}

bool equal_values(const Value& a, const Value& b) {
  if (a.kind == Value::Kind::missing || b.kind == Value::Kind::missing) return false;
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::boolean:
      return a.boolean == b.boolean;
    case Value::Kind::number:
      return a.number == b.number;
    case Value::Kind::string:
      return a.string == b.string;
    case Value::Kind::json:
      return *a.json == *b.json;
    default:
      return false;
  }
}

std::optional<double> as_number(const Value& value) {
  if (value.kind == Value::Kind::number) return value.number;
  return std::nullopt;
}

bool contains_value(const Value& haystack, const Value& needle) {
  if (haystack.kind == Value::Kind::string && needle.kind == Value::Kind::string) {
    return haystack.string.find(needle.string) != std::string_view::npos;
  }
  if (haystack.kind == Value::Kind::json && haystack.json->is_array()) {
    for (const auto& element : *haystack.json) {
      if (equal_values(from_json(&element), needle)) return true;
    }
  }
  if (haystack.kind == Value::Kind::list && needle.kind == Value::Kind::string) {
    for (const auto& item : *haystack.list) {
      if (item == needle.string) return true;
    }
  }
  return false;
}

bool in_list(const Value& needle, const Node& list) {
  if (needle.kind == Value::Kind::string && !list.item_set.empty())
    return list.item_set.contains(needle.string);
  if (needle.kind == Value::Kind::string) {
    for (const auto& item : list.items) {
      if (item == needle.string) return true;
    }
    return false;
  }
  if (needle.kind == Value::Kind::number) {
    for (const auto& item : list.items) {
      double number = 0;
      const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), number);
      if (ec == std::errc{} && end == item.data() + item.size() && number == needle.number)
        return true;
    }
  }
  return false;
}

Value value_of(const Node& node, const CallContext& call) {
  Value out;
  switch (node.op) {
    case Op::literal:
      if (const auto* b = std::get_if<bool>(&node.constant)) {
        out.kind = Value::Kind::boolean;
        out.boolean = *b;
      } else if (const auto* n = std::get_if<double>(&node.constant)) {
        out.kind = Value::Kind::number;
        out.number = *n;
      } else if (const auto* s = std::get_if<std::string>(&node.constant)) {
        out.kind = Value::Kind::string;
        out.string = *s;
      }
      return out;
    case Op::field: {
      DecisionState* state = active_state;
      if (!node.field_owner || !state || node.field_owner != state->index)
        return field_value(node, call);
      const auto slot = static_cast<std::size_t>(node.field_slot);
      if (state->field_decision[slot] != state->number) {
        state->field_values[slot] = field_value(node, call);
        state->field_decision[slot] = state->number;
      }
      return state->field_values[slot];
    }
    case Op::list:
      out.kind = Value::Kind::list;
      out.list = &node.items;
      return out;
    case Op::size: {
      const Value inner = value_of(*node.left, call);
      out.kind = Value::Kind::number;
      if (inner.kind == Value::Kind::string)
        out.number = static_cast<double>(inner.string.size());
      else if (inner.kind == Value::Kind::json)
        out.number = static_cast<double>(inner.json->size());
      else if (inner.kind == Value::Kind::list)
        out.number = static_cast<double>(inner.list->size());
      else
        out.kind = Value::Kind::missing;
      return out;
    }
    default:
      out.kind = Value::Kind::boolean;
      out.boolean = evaluate(node, call);
      return out;
  }
}

}  // namespace

namespace {
bool evaluate_node(const Node& node, const CallContext& call);
}  // namespace

namespace {
// The cached value of a field for this decision.
const Value& cached_field(const Node& field, DecisionState& state, const CallContext& call) {
  const auto slot = static_cast<std::size_t>(field.field_slot);
  if (state.field_decision[slot] != state.number) {
    state.field_values[slot] = field_value(field, call);
    state.field_decision[slot] = state.number;
  }
  return state.field_values[slot];
}

// `field OP constant` (Node::compares_constant): the most common test in a ruleset, evaluated
// straight from the field cache without the generic dispatch.
bool compare_with_constant(const Node& node, const Value& a) {
  const Value& b = node.right_value;
  switch (node.op) {
    case Op::equal:
      return equal_values(a, b);
    case Op::not_equal:
      return a.kind != Value::Kind::missing && !equal_values(a, b);
    case Op::less:
    case Op::less_equal:
    case Op::greater:
    case Op::greater_equal:
      if (a.kind != Value::Kind::number || b.kind != Value::Kind::number) return false;
      if (node.op == Op::less) return a.number < b.number;
      if (node.op == Op::less_equal) return a.number <= b.number;
      if (node.op == Op::greater) return a.number > b.number;
      return a.number >= b.number;
    case Op::starts_with:
      return a.kind == Value::Kind::string && b.kind == Value::Kind::string &&
             a.string.starts_with(b.string);
    case Op::ends_with:
      return a.kind == Value::Kind::string && b.kind == Value::Kind::string &&
             a.string.ends_with(b.string);
    default:
      return contains_value(a, b);
  }
}

bool evaluate_test(const Node& node, DecisionState& state, const CallContext& call) {
  if (node.compares_constant)
    return compare_with_constant(node, cached_field(*node.left, state, call));
  return evaluate_node(node, call);
}
}  // namespace

bool evaluate(const Node& node, const CallContext& call) {
  // Chains are most of every program: walked here, without evaluate_node's heavier frame.
  if (node.op == Op::all_of) {
    for (const auto& child : node.children) {
      if (!evaluate(*child, call)) return false;
    }
    return true;
  }
  if (node.op == Op::any_of) {
    for (const auto& child : node.children) {
      if (evaluate(*child, call)) return true;
    }
    return false;
  }
  DecisionState* state = active_state;
  if (!node.field_owner || !state || node.field_owner != state->index)
    return evaluate_node(node, call);
  if (node.memo_slot < 0) return evaluate_test(node, *state, call);
  const auto slot = static_cast<std::size_t>(node.memo_slot);
  if (state->memo_decision[slot] != state->number) {
    state->memo_values[slot] = evaluate_test(node, *state, call);
    state->memo_decision[slot] = state->number;
  }
  return state->memo_values[slot];
}

namespace {
bool evaluate_node(const Node& node, const CallContext& call) {
  switch (node.op) {
    case Op::not_:
      return !evaluate(*node.left, call);
    case Op::and_:
      return evaluate(*node.left, call) && evaluate(*node.right, call);
    case Op::or_:
      return evaluate(*node.left, call) || evaluate(*node.right, call);
    case Op::macro:
      return evaluate(*node.left, call);
    case Op::all_of:
      for (const auto& child : node.children) {
        if (!evaluate(*child, call)) return false;
      }
      return true;
    case Op::any_of:
      for (const auto& child : node.children) {
        if (evaluate(*child, call)) return true;
      }
      return false;
    case Op::equal:
      return equal_values(value_of(*node.left, call), right_of(node, call));
    case Op::not_equal: {
      const Value a = value_of(*node.left, call);
      const Value b = right_of(node, call);
      // A comparison with an absent value is false either way; `not exists(x)` tests absence.
      if (a.kind == Value::Kind::missing || b.kind == Value::Kind::missing) return false;
      return !equal_values(a, b);
    }
    case Op::less:
    case Op::less_equal:
    case Op::greater:
    case Op::greater_equal: {
      const auto a = as_number(value_of(*node.left, call));
      const auto b = as_number(right_of(node, call));
      if (!a || !b) return false;
      if (node.op == Op::less) return *a < *b;
      if (node.op == Op::less_equal) return *a <= *b;
      if (node.op == Op::greater) return *a > *b;
      return *a >= *b;
    }
    case Op::in:
      return in_list(value_of(*node.left, call), *node.right);
    case Op::contains:
      return contains_value(value_of(*node.left, call), right_of(node, call));
    case Op::starts_with:
    case Op::ends_with: {
      const Value a = value_of(*node.left, call);
      const Value b = right_of(node, call);
      if (a.kind != Value::Kind::string || b.kind != Value::Kind::string) return false;
      return node.op == Op::starts_with ? a.string.starts_with(b.string)
                                        : a.string.ends_with(b.string);
    }
    case Op::glob: {
      const Value a = value_of(*node.left, call);
      return a.kind == Value::Kind::string && glob_match(node.pattern, a.string);
    }
    case Op::matches: {
      DecisionState* state = active_state;
      if (node.regex_owner && state && node.regex_owner == state->index) {
        const auto group = static_cast<std::size_t>(node.regex_group);
        auto& hits = state->regex_group_hits[group];
        auto& regex_group_state = state->regex_group_state;
        if (regex_group_state[group] < 0) {
          const Value a = value_of(*node.left, call);
          hits.clear();
          if (a.kind == Value::Kind::string) {
            // Most values match no pattern. Asking "any match?" first costs no allocation;
            // only a hit pays for RE2 collecting which patterns matched.
            const auto& set = *node.regex_owner->groups[group].set;
            const re2::StringPiece text(a.string.data(), a.string.size());
            if (set.Match(text, nullptr)) {
              set.Match(text, &hits);
              std::sort(hits.begin(), hits.end());
            }
            regex_group_state[group] = 1;
          } else {
            regex_group_state[group] = 0;
          }
        }
        return regex_group_state[group] == 1 &&
               std::binary_search(hits.begin(), hits.end(), node.regex_member);
      }
      const Value a = value_of(*node.left, call);
      return a.kind == Value::Kind::string &&
             re2::RE2::PartialMatch(re2::StringPiece(a.string.data(), a.string.size()),
                                    *node.regex);
    }
    case Op::exists:
      return value_of(*node.left, call).kind != Value::Kind::missing;
    case Op::path_within: {
      const Value a = value_of(*node.left, call);
      if (a.kind != Value::Kind::string) return false;
      static const std::string home = [] {
        const char* value = std::getenv("HOME");
        return std::string(value ? value : "/");
      }();
      return path_within(a.string, node.pattern, home);
    }
    default:
      return truthy(value_of(node, call));
  }
}

}  // namespace

namespace {
bool references(const Node& node, FieldRoot root) {
  if (node.op == Op::field && node.root == root) return true;
  return (node.left && references(*node.left, root)) ||
         (node.right && references(*node.right, root)) ||
         std::any_of(node.children.begin(), node.children.end(),
                     [root](const NodePtr& child) { return references(*child, root); });
}
}  // namespace

bool references_arguments(const Node& node) {
  return references(node, FieldRoot::args);
}

bool references_request_headers(const Node& node) {
  return references(node, FieldRoot::request_headers);
}

namespace {
// The string values `root` must have for the condition to hold, read from `field == "x"` and
// `field in [...]` in its conjunctions (and every branch of a disjunction); nullopt when any
// value may do.
std::optional<std::vector<std::string>> required_values(const Node& node, FieldRoot root) {
  const auto is_field = [root](const NodePtr& side) {
    return side && side->op == Op::field && side->root == root && side->path.empty();
  };
  switch (node.op) {
    case Op::equal:
      for (const auto& [field, other] :
           {std::pair{node.left, node.right}, std::pair{node.right, node.left}}) {
        if (is_field(field) && other->op == Op::literal) {
          if (const auto* name = std::get_if<std::string>(&other->constant))
            return std::vector<std::string>{*name};
        }
      }
      return std::nullopt;
    case Op::in:
      if (is_field(node.left) && node.right->op == Op::list) return node.right->items;
      return std::nullopt;
    case Op::macro:
      return required_values(*node.left, root);
    case Op::and_: {
      auto left = required_values(*node.left, root);
      return left ? left : required_values(*node.right, root);
    }
    case Op::or_: {
      auto left = required_values(*node.left, root);
      auto right = left ? required_values(*node.right, root) : std::nullopt;
      if (!left || !right) return std::nullopt;
      left->insert(left->end(), right->begin(), right->end());
      return left;
    }
    default:
      return std::nullopt;
  }
}
}  // namespace

std::optional<std::vector<std::string>> required_tool_names(const Node& node) {
  return required_values(node, FieldRoot::tool_name);
}

std::optional<std::vector<std::string>> required_methods(const Node& node) {
  return required_values(node, FieldRoot::mcp_method);
}

// ---- optimization ------------------------------------------------------------------------

namespace {

// A test of one value against another: ==, !=, <, <=, >, >=, in, contains, startswith, endswith.
bool is_comparison(Op op) {
  switch (op) {
    case Op::equal:
    case Op::not_equal:
    case Op::less:
    case Op::less_equal:
    case Op::greater:
    case Op::greater_equal:
    case Op::in:
    case Op::contains:
    case Op::starts_with:
    case Op::ends_with:
      return true;
    default:
      return false;
  }
}

NodePtr make_boolean(bool value) {
  Node node;
  node.op = Op::literal;
  node.type = Type::boolean;
  node.constant = value;
  return std::make_shared<const Node>(std::move(node));
}

std::optional<bool> constant_truth(const Node& node) {
  if (node.op != Op::literal) return std::nullopt;
  if (const auto* value = std::get_if<bool>(&node.constant)) return *value;
  return std::nullopt;
}

bool is_constant_operand(const NodePtr& operand) {
  return !operand || operand->op == Op::literal || operand->op == Op::list;
}

// A rough price of evaluating a node, to put cheap tests first in a chain: comparisons and
// presence tests, then prefix and membership tests, then substring, glob, path and regex work.
int cost(const Node& node) {
  int children = 0;
  for (const auto& child : node.children)
    children += cost(*child);
  switch (node.op) {
    case Op::literal:
    case Op::list:
      return 0;
    case Op::field:
      return 1;
    case Op::not_:
    case Op::macro:
      return cost(*node.left);
    case Op::and_:
    case Op::or_:
      return cost(*node.left) + cost(*node.right);
    case Op::all_of:
    case Op::any_of:
      return children;
    case Op::equal:
    case Op::not_equal:
    case Op::less:
    case Op::less_equal:
    case Op::greater:
    case Op::greater_equal:
    case Op::exists:
    case Op::size:
      return 2;
    case Op::in:
    case Op::starts_with:
    case Op::ends_with:
      return 3;
    case Op::contains:
      return 4;
    case Op::glob:
      return 6;
    case Op::matches:
      return 8;
    case Op::path_within:
      return 10;
  }
  return 10;
}

// The tool names a test is exactly (tool.name == "x", tool.name in [...], or a disjunction of
// those), or nullopt when it is anything else.
std::optional<std::vector<std::string>> pure_tool_selector(const Node& node) {
  const auto is_tool_field = [](const NodePtr& side) {
    return side && side->op == Op::field && side->root == FieldRoot::tool_name;
  };
  if (node.op == Op::equal) {
    for (const auto& [field, other] :
         {std::pair{node.left, node.right}, std::pair{node.right, node.left}}) {
      if (is_tool_field(field) && other->op == Op::literal) {
        if (const auto* name = std::get_if<std::string>(&other->constant))
          return std::vector<std::string>{*name};
      }
    }
    return std::nullopt;
  }
  if (node.op == Op::in && is_tool_field(node.left) && node.right->op == Op::list)
    return node.right->items;
  if (node.op == Op::any_of) {
    std::vector<std::string> names;
    for (const auto& child : node.children) {
      auto more = pure_tool_selector(*child);
      if (!more) return std::nullopt;
      names.insert(names.end(), more->begin(), more->end());
    }
    return names;
  }
  return std::nullopt;
}

bool covers(const std::vector<std::string>& selector, const std::vector<std::string>& names) {
  return std::all_of(names.begin(), names.end(), [&](const std::string& name) {
    return std::find(selector.begin(), selector.end(), name) != selector.end();
  });
}

}  // namespace

NodePtr optimize(const NodePtr& node) {
  switch (node->op) {
    case Op::macro:
      return optimize(node->left);
    case Op::not_: {
      NodePtr inner = optimize(node->left);
      if (const auto truth = constant_truth(*inner)) return make_boolean(!*truth);
      if (inner == node->left) return node;
      Node copy;
      copy.op = Op::not_;
      copy.type = Type::boolean;
      copy.left = std::move(inner);
      return std::make_shared<const Node>(std::move(copy));
    }
    case Op::and_:
    case Op::or_: {
      const bool conjunction = node->op == Op::and_;
      const Op chain = conjunction ? Op::all_of : Op::any_of;
      std::vector<NodePtr> operands;
      for (const auto& side : {node->left, node->right}) {
        NodePtr operand = optimize(side);
        if (const auto truth = constant_truth(*operand)) {
          // true in an and-chain and false in an or-chain change nothing; the others decide.
          if (*truth != conjunction) return make_boolean(*truth);
          continue;
        }
        if (operand->op == chain) {
          operands.insert(operands.end(), operand->children.begin(), operand->children.end());
        } else {
          operands.push_back(std::move(operand));
        }
      }
      if (operands.empty()) return make_boolean(conjunction);
      if (operands.size() == 1) return operands.front();
      // Tests have no side effects and a failing one is simply false: any order gives the same
      // answer, and the cheapest first usually gives it sooner.
      std::stable_sort(operands.begin(), operands.end(),
                       [](const NodePtr& a, const NodePtr& b) { return cost(*a) < cost(*b); });
      Node merged;
      merged.op = chain;
      merged.type = Type::boolean;
      merged.children = std::move(operands);
      return std::make_shared<const Node>(std::move(merged));
    }
    default:
      // A comparison where nothing depends on the call is decided now.
      if (is_comparison(node->op) && is_constant_operand(node->left) &&
          is_constant_operand(node->right))
        return make_boolean(evaluate(*node, CallContext{}));
      return node;
  }
}

NodePtr without_tool_selector(const NodePtr& program, const std::vector<std::string>& names) {
  if (const auto selector = pure_tool_selector(*program); selector && covers(*selector, names))
    return make_boolean(true);
  if (program->op != Op::all_of) return program;
  std::vector<NodePtr> kept;
  for (const auto& child : program->children) {
    const auto selector = pure_tool_selector(*child);
    if (!selector || !covers(*selector, names)) kept.push_back(child);
  }
  if (kept.size() == program->children.size()) return program;
  if (kept.empty()) return make_boolean(true);
  if (kept.size() == 1) return kept.front();
  Node residual;
  residual.op = Op::all_of;
  residual.type = Type::boolean;
  residual.children = std::move(kept);
  return std::make_shared<const Node>(std::move(residual));
}

namespace {
std::string field_key(const Node& field) {
  std::string key = std::to_string(static_cast<int>(field.root));
  for (const auto& step : field.path)
    key += "\n" + (step.key.empty() ? "#" + std::to_string(step.index) : "." + step.key);
  return key;
}

// A test's identity across rules (operator, field, constant), or nullopt for anything but a test
// of one field against constants.
std::optional<std::string> predicate_key(const Node& node) {
  if (!is_comparison(node.op) && node.op != Op::glob && node.op != Op::path_within &&
      node.op != Op::exists)
    return std::nullopt;
  std::string key = std::to_string(static_cast<int>(node.op));
  bool has_field = false;
  for (const NodePtr& side : {node.left, node.right}) {
    key.push_back('\x1e');
    if (!side) continue;
    if (side->op == Op::field) {
      has_field = true;
      key += "f" + field_key(*side);
    } else if (side->op == Op::literal) {
      if (const auto* b = std::get_if<bool>(&side->constant)) {
        key += *b ? "b1" : "b0";
      } else if (const auto* n = std::get_if<double>(&side->constant)) {
        char number[40];
        std::snprintf(number, sizeof number, "n%.17g", *n);
        key += number;
      } else if (const auto* text = std::get_if<std::string>(&side->constant)) {
        key += "s" + *text;
      }
    } else if (side->op == Op::list) {
      key += "L";
      for (const auto& item : side->items)
        key += item + '\x1f';
    } else {
      return std::nullopt;
    }
  }
  if (!has_field) return std::nullopt;
  key.push_back('\x1e');
  key += node.pattern;
  return key;
}
}  // namespace

std::shared_ptr<const DecisionIndex> build_decision_index(const std::vector<NodePtr>& conditions) {
  auto index = std::make_shared<DecisionIndex>();
  // Field -> the `matches` nodes on it (each node once, even when a macro shares it).
  std::vector<std::vector<Node*>> members;
  std::set<const Node*> seen;
  const auto same_field = [](const DecisionIndex::Group& group, const Node& field) {
    if (group.root != field.root || group.path.size() != field.path.size()) return false;
    for (std::size_t i = 0; i < field.path.size(); ++i) {
      if (group.path[i].key != field.path[i].key || group.path[i].index != field.path[i].index)
        return false;
    }
    return true;
  };
  std::map<std::string, int> field_slots;                  // field and path -> cache slot
  std::map<std::string, std::vector<Node*>> shared_tests;  // test -> its nodes in every rule
  std::vector<const Node*> stack;
  for (const auto& condition : conditions)
    stack.push_back(condition.get());
  while (!stack.empty()) {
    const Node* node = stack.back();
    stack.pop_back();
    if (!node || !seen.insert(node).second) continue;
    if (node->left) stack.push_back(node->left.get());
    if (node->right) stack.push_back(node->right.get());
    for (const auto& child : node->children)
      stack.push_back(child.get());
    if (auto key = predicate_key(*node)) shared_tests[*key].push_back(const_cast<Node*>(node));
    if (node->right && node->right->op == Op::literal) {
      auto* test = const_cast<Node*>(node);
      test->right_value = value_of(*node->right, CallContext{});
      test->right_is_literal = true;
      const bool simple_op = is_comparison(node->op) && node->op != Op::in;
      // The field's slot is assigned when the traversal reaches it; ownership says it will be.
      if (simple_op && node->left && node->left->op == Op::field) {
        test->compares_constant = true;
        test->field_owner = index.get();
      }
    }
    if (node->op == Op::field) {
      const auto [slot, fresh] =
          field_slots.emplace(field_key(*node), static_cast<int>(field_slots.size()));
      // Compilation is finishing: the tree is still private to this policy.
      auto* field = const_cast<Node*>(node);
      field->field_owner = index.get();
      field->field_slot = slot->second;
      continue;
    }
    if (node->op != Op::matches || node->left->op != Op::field) continue;
    std::size_t group = 0;
    while (group < index->groups.size() && !same_field(index->groups[group], *node->left))
      ++group;
    if (group == index->groups.size()) {
      index->groups.push_back({node->left->root, node->left->path, nullptr});
      members.emplace_back();
    }
    // Compilation is finishing: the tree is still private to this policy.
    members[group].push_back(const_cast<Node*>(node));
  }
  for (std::size_t group = 0; group < index->groups.size(); ++group) {
    if (members[group].size() < 2) continue;  // one pattern: a direct match is as fast
    // The set's DFA holds states for every pattern at once: give it room, or it thrashes.
    re2::RE2::Options options(re2::RE2::Quiet);
    options.set_max_mem(64 << 20);
    auto set = std::make_unique<re2::RE2::Set>(options, re2::RE2::UNANCHORED);
    bool ok = true;
    for (Node* node : members[group])
      ok = ok && set->Add(node->pattern, nullptr) >= 0;
    if (!ok || !set->Compile()) continue;  // too large for RE2's memory budget: match one by one
    index->groups[group].set = std::move(set);
    for (std::size_t member = 0; member < members[group].size(); ++member) {
      members[group][member]->regex_owner = index.get();
      members[group][member]->regex_group = static_cast<int>(group);
      members[group][member]->regex_member = static_cast<int>(member);
    }
  }
  for (auto& [key, nodes] : shared_tests) {
    if (nodes.size() < 2) continue;  // a test only one rule runs gains nothing from a memo
    for (Node* node : nodes) {
      node->field_owner = index.get();
      node->memo_slot = static_cast<int>(index->memo_slots);
    }
    ++index->memo_slots;
  }
  index->field_slots = field_slots.size();
  return index;
}

// ---- path helpers ---------------------------------------------------------------------------

bool normalize_path(std::string_view path, std::string_view home, std::string& out) {
  out.clear();
  if (path.empty()) return false;
  std::string_view head;
  if (path.front() == '~' && (path.size() == 1 || path[1] == '/')) {
    head = home;
    path.remove_prefix(1);
  } else if (path.front() != '/') {
    return false;  // relative to a working directory the gateway cannot know
  }
  out.push_back('/');
  const auto consume = [&out](std::string_view part) {
    while (!part.empty()) {
      while (!part.empty() && part.front() == '/')
        part.remove_prefix(1);
      const auto slash = part.find('/');
      const std::string_view segment = part.substr(0, slash);
      part = slash == std::string_view::npos ? std::string_view() : part.substr(slash);
      if (segment.empty() || segment == ".") continue;
      if (segment == "..") {
        if (out.size() > 1) {
          out.pop_back();
          out.erase(out.rfind('/') + 1);
        }
        continue;
      }
      out.append(segment);
      out.push_back('/');
    }
  };
  consume(head);
  consume(path);
  if (out.size() > 1) out.pop_back();
  return true;
}

bool path_within(std::string_view path, std::string_view prefix, std::string_view home) {
  thread_local std::string normalized_path;
  thread_local std::string normalized_prefix;
  if (!normalize_path(path, home, normalized_path) ||
      !normalize_path(prefix, home, normalized_prefix)) {
    return false;
  }
  if (normalized_prefix == "/") return true;
  return normalized_path == normalized_prefix || (normalized_path.starts_with(normalized_prefix) &&
                                                  normalized_path[normalized_prefix.size()] == '/');
}

bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
      continue;
    }
    if (p < pattern.size() && pattern[p] == '[') {
      const auto close = pattern.find(']', p + 1);
      if (close != std::string_view::npos) {
        std::string_view set = pattern.substr(p + 1, close - p - 1);
        const bool negate = !set.empty() && (set.front() == '!' || set.front() == '^');
        if (negate) set.remove_prefix(1);
        bool hit = false;
        for (std::size_t i = 0; i < set.size(); ++i) {
          if (i + 2 < set.size() && set[i + 1] == '-') {
            hit = hit || (text[t] >= set[i] && text[t] <= set[i + 2]);
            i += 2;
          } else {
            hit = hit || text[t] == set[i];
          }
        }
        if (hit != negate) {
          p = close + 1;
          ++t;
          continue;
        }
      }
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
      continue;
    }
    if (star == std::string_view::npos) return false;
    p = star + 1;
    t = ++resume;
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

// ---- lexer and parser -----------------------------------------------------------------------

namespace {

enum class Token {
  end,
  identifier,
  string,
  number,
  lparen,
  rparen,
  lbracket,
  rbracket,
  comma,
  dot,
  op
};

struct Lexeme {
  Token kind = Token::end;
  std::string text;  // identifier, operator spelling, or decoded string
  double number = 0;
  std::size_t offset = 0;
};

// Every field a condition can name, in the order error messages list them. Dynamic fields hold
// JSON and take a path below them.
struct KnownField {
  std::string_view name;
  FieldRoot root;
  Type type;
};
constexpr KnownField known_fields[] = {
    {"mcp.method", FieldRoot::mcp_method, Type::string},
    {"server.name", FieldRoot::server_name, Type::string},
    {"tool.name", FieldRoot::tool_name, Type::string},
    {"tool.annotations", FieldRoot::tool_annotations, Type::dynamic},
    {"tool.description", FieldRoot::tool_description, Type::string},
    {"tool.text", FieldRoot::tool_text, Type::string},
    {"args", FieldRoot::args, Type::dynamic},
    {"identity.sub", FieldRoot::identity_sub, Type::string},
    {"identity.claims", FieldRoot::identity_claims, Type::dynamic},
    {"txn", FieldRoot::txn, Type::dynamic},
    {"request.client_address", FieldRoot::request_client_address, Type::string},
    {"request.headers", FieldRoot::request_headers, Type::dynamic},
    {"session.id", FieldRoot::session_id, Type::string},
    {"session.protocol_version", FieldRoot::session_protocol_version, Type::string},
};

// Bounds that keep every recursion over a condition (parsing, optimizing, evaluating, freeing)
// far from the end of the stack, whatever a policy file holds.
constexpr std::size_t max_condition_nesting = 64;
constexpr std::size_t max_condition_height = 256;

class Parser {
 public:
  Parser(std::string_view text, const Environment& environment, const OffsetLocator& locate)
      : text_(text), environment_(environment), locate_(locate) {
    advance();
  }

  // One field reference alone (a limit's `by:` entry): no operators, no literals.
  NodePtr parse_field_only() {
    const Lexeme first = current_;
    if (first.kind != Token::identifier)
      fail(first.offset, "expected a field name such as identity.sub");
    advance();
    auto node = parse_field(first.text, first.offset);
    if (current_.kind != Token::end)
      fail(current_.offset, "unexpected '" + current_.text + "': 'by' takes one field per entry");
    return node;
  }

  NodePtr parse() {
    auto node = parse_or();
    if (current_.kind != Token::end)
      fail(current_.offset, "unexpected '" + current_.text + "' after the condition");
    if (node->type != Type::boolean && node->type != Type::dynamic) {
      fail(0, "a condition must be true or false, but this is a " +
                  std::string(to_string(node->type)));
    }
    return node;
  }

 private:
  [[noreturn]] void fail(std::size_t offset, const std::string& message) const {
    throw PolicyError(locate_(offset) + ": " + message);
  }

  void advance() { current_ = lex(); }

  Lexeme lex() {
    while (position_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[position_])))
      ++position_;
    Lexeme lexeme;
    lexeme.offset = position_;
    if (position_ >= text_.size()) return lexeme;
    const char c = text_[position_];
    const auto single = [&](Token kind) {
      lexeme.kind = kind;
      lexeme.text = std::string(1, c);
      ++position_;
      return lexeme;
    };
    if (c == '(') return single(Token::lparen);
    if (c == ')') return single(Token::rparen);
    if (c == '[') return single(Token::lbracket);
    if (c == ']') return single(Token::rbracket);
    if (c == ',') return single(Token::comma);
    if (c == '.') return single(Token::dot);
    if (c == '"' || c == '\'') {
      ++position_;
      lexeme.kind = Token::string;
      while (position_ < text_.size() && text_[position_] != c) {
        char ch = text_[position_++];
        if (ch == '\\' && position_ < text_.size()) {
          // \" \' \\ \n \t \r are escapes; any other backslash stays, so regular expressions
          // such as "\.env$" read as written.
          const char escaped = text_[position_];
          if (escaped == '"' || escaped == '\'' || escaped == '\\') {
            ch = escaped;
            ++position_;
          } else if (escaped == 'n' || escaped == 't' || escaped == 'r') {
            ch = escaped == 'n' ? '\n' : escaped == 't' ? '\t' : '\r';
            ++position_;
          }
        }
        lexeme.text.push_back(ch);
      }
      if (position_ >= text_.size()) fail(lexeme.offset, "unterminated string");
      ++position_;
      return lexeme;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && position_ + 1 < text_.size() &&
         std::isdigit(static_cast<unsigned char>(text_[position_ + 1])))) {
      std::size_t end = position_ + 1;
      while (end < text_.size() &&
             (std::isdigit(static_cast<unsigned char>(text_[end])) || text_[end] == '.'))
        ++end;
      const auto [stop, ec] =
          std::from_chars(text_.data() + position_, text_.data() + end, lexeme.number);
      if (ec != std::errc{} || stop != text_.data() + end) fail(position_, "invalid number");
      lexeme.kind = Token::number;
      lexeme.text = std::string(text_.substr(position_, end - position_));
      position_ = end;
      return lexeme;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t end = position_ + 1;
      while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) ||
                                    text_[end] == '_' || text_[end] == '-' || text_[end] == '/')) {
        ++end;
      }
      lexeme.kind = Token::identifier;
      lexeme.text = std::string(text_.substr(position_, end - position_));
      position_ = end;
      return lexeme;
    }
    for (std::string_view op : {"==", "!=", "<=", ">=", "<", ">", "="}) {
      if (text_.substr(position_, op.size()) == op) {
        lexeme.kind = Token::op;
        lexeme.text = std::string(op == "=" ? "==" : op);
        position_ += op.size();
        return lexeme;
      }
    }
    fail(position_, std::string("unexpected character '") + c + "'");
  }

  bool at_keyword(std::string_view word) const {
    return current_.kind == Token::identifier && current_.text == word;
  }

  void expect(Token kind, std::string_view what) {
    if (current_.kind != kind) {
      fail(current_.offset,
           "expected " + std::string(what) +
               (current_.kind == Token::end ? " at the end" : ", got '" + current_.text + "'"));
    }
    advance();
  }

  NodePtr make(Node node) const {
    std::size_t below = 0;
    for (const NodePtr* operand : {&node.left, &node.right})
      if (*operand) below = std::max(below, (*operand)->height);
    for (const NodePtr& child : node.children)
      below = std::max(below, child->height);
    node.height = below + 1;
    if (node.height > max_condition_height) {
      fail(current_.offset,
           "the condition is too deep: more than " + std::to_string(max_condition_height) +
               " levels of operators, counting the macros it uses (write long alternatives as "
               "'x in [\"a\", \"b\"]' or in a list)");
    }
    return std::make_shared<const Node>(std::move(node));
  }

  // Parentheses, `not` and function calls nest the parser's own recursion.
  class Nesting {
   public:
    Nesting(Parser& parser, std::size_t offset) : parser_(parser) {
      if (++parser_.nesting_ > max_condition_nesting) {
        parser_.fail(offset, "nesting deeper than " + std::to_string(max_condition_nesting) +
                                 " levels (parentheses, 'not' and function calls)");
      }
    }
    ~Nesting() { --parser_.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Parser& parser_;
  };

  // A linear scan beats hashing for a handful of items; past that, `in` looks up a set.
  static void index_items(Node& node) {
    if (node.items.size() > 8) node.item_set.insert(node.items.begin(), node.items.end());
  }

  void require_boolean(const NodePtr& node, std::size_t offset, std::string_view context) const {
    if (node->type != Type::boolean && node->type != Type::dynamic) {
      fail(offset, std::string(context) + " needs a true/false operand, got a " +
                       std::string(to_string(node->type)));
    }
  }

  NodePtr parse_or() { return parse_logical("or", Op::or_, &Parser::parse_and); }
  NodePtr parse_and() { return parse_logical("and", Op::and_, &Parser::parse_not); }

  // A left-associative chain `operand KEYWORD operand ...` of true/false operands.
  NodePtr parse_logical(std::string_view keyword, Op op, NodePtr (Parser::*operand)()) {
    auto left = (this->*operand)();
    while (at_keyword(keyword)) {
      const auto offset = current_.offset;
      advance();
      auto right = (this->*operand)();
      const std::string context = "'" + std::string(keyword) + "'";
      require_boolean(left, offset, context);
      require_boolean(right, offset, context);
      Node node;
      node.op = op;
      node.left = std::move(left);
      node.right = std::move(right);
      left = make(std::move(node));
    }
    return left;
  }

  NodePtr parse_not() {
    if (at_keyword("not")) {
      const auto offset = current_.offset;
      const Nesting nested(*this, offset);
      advance();
      auto operand = parse_not();
      require_boolean(operand, offset, "'not'");
      Node node;
      node.op = Op::not_;
      node.left = std::move(operand);
      return make(std::move(node));
    }
    return parse_comparison();
  }

  static bool compatible(Type a, Type b) {
    return a == b || a == Type::dynamic || b == Type::dynamic;
  }

  NodePtr parse_comparison() {
    auto left = parse_primary();
    static const std::map<std::string, Op, std::less<>> operators = {
        {"==", Op::equal},
        {"!=", Op::not_equal},
        {"<", Op::less},
        {"<=", Op::less_equal},
        {">", Op::greater},
        {">=", Op::greater_equal},
        {"in", Op::in},
        {"contains", Op::contains},
        {"startswith", Op::starts_with},
        {"endswith", Op::ends_with},
        {"glob", Op::glob},
        {"matches", Op::matches}};
    if (current_.kind != Token::op && current_.kind != Token::identifier) return left;
    const auto found = operators.find(current_.text);
    if (found == operators.end()) return left;
    const std::string spelling = current_.text;
    const std::size_t offset = current_.offset;
    advance();
    const std::size_t right_offset = current_.offset;
    auto right = parse_primary();

    Node node;
    node.op = found->second;
    const auto mismatch = [&](std::string_view wanted_left, std::string_view wanted_right) {
      fail(offset, "'" + spelling + "' compares " + std::string(wanted_left) + " with " +
                       std::string(wanted_right) + ", but here the left side is a " +
                       std::string(to_string(left->type)) + " and the right side a " +
                       std::string(to_string(right->type)));
    };
    switch (node.op) {
      case Op::equal:
      case Op::not_equal:
        if (!compatible(left->type, right->type) || left->type == Type::list ||
            right->type == Type::list) {
          mismatch("a value", "a value of the same type");
        }
        break;
      case Op::less:
      case Op::less_equal:
      case Op::greater:
      case Op::greater_equal:
        if (!compatible(left->type, Type::number) || !compatible(right->type, Type::number)) {
          mismatch("a number", "a number");
        }
        break;
      case Op::in:
        if (right->type != Type::list)
          mismatch("a value", "a list ([\"a\", \"b\"] or a list name)");
        if (left->type != Type::string && left->type != Type::number &&
            left->type != Type::dynamic) {
          mismatch("a string or number", "a list");
        }
        break;
      case Op::contains:
        if (!(compatible(left->type, Type::string) || left->type == Type::list) ||
            !(compatible(right->type, Type::string) || right->type == Type::number)) {
          mismatch("a string or list", "a string");
        }
        break;
      case Op::starts_with:
      case Op::ends_with:
        if (!compatible(left->type, Type::string) || !compatible(right->type, Type::string)) {
          mismatch("a string", "a string");
        }
        break;
      case Op::glob:
      case Op::matches: {
        if (!compatible(left->type, Type::string)) mismatch("a string", "a pattern");
        const auto* pattern =
            right->op == Op::literal ? std::get_if<std::string>(&right->constant) : nullptr;
        if (!pattern)
          fail(right_offset,
               "'" + spelling + "' needs a literal pattern string (it is compiled at load time)");
        node.pattern = *pattern;
        if (node.op == Op::matches) {
          auto regex = std::make_shared<re2::RE2>(*pattern, re2::RE2::Quiet);
          if (!regex->ok()) fail(right_offset, "invalid regular expression: " + regex->error());
          node.regex = std::move(regex);
        }
        break;
      }
      default:
        break;
    }
    node.type = Type::boolean;
    node.left = std::move(left);
    node.right = std::move(right);
    return make(std::move(node));
  }

  NodePtr parse_list() {
    Node node;
    node.op = Op::list;
    node.type = Type::list;
    advance();  // '['
    while (current_.kind != Token::rbracket) {
      if (current_.kind == Token::string || current_.kind == Token::number) {
        node.items.push_back(current_.text);
        advance();
      } else {
        fail(current_.offset, "a list holds only literal strings and numbers");
      }
      if (current_.kind == Token::comma) {
        advance();
      } else if (current_.kind != Token::rbracket) {
        fail(current_.offset, "expected ',' or ']' in the list");
      }
    }
    advance();  // ']'
    index_items(node);
    return make(std::move(node));
  }

  NodePtr parse_function(const std::string& name, std::size_t offset) {
    const Nesting nested(*this, offset);
    advance();  // '('
    const std::size_t argument_offset = current_.offset;
    auto argument = parse_or();
    Node node;
    node.left = argument;
    if (name == "exists") {
      if (argument->op != Op::field)
        fail(argument_offset, "exists() takes a field, e.g. exists(args.path)");
      node.op = Op::exists;
      node.type = Type::boolean;
    } else if (name == "size") {
      if (argument->type == Type::boolean || argument->type == Type::number) {
        fail(argument_offset, "size() takes a string, a list or a JSON array/object field");
      }
      node.op = Op::size;
      node.type = Type::number;
    } else if (name == "path_within") {
      if (!compatible(argument->type, Type::string))
        fail(argument_offset, "path_within() takes a path string first");
      expect(Token::comma, "',' and the directory");
      if (current_.kind != Token::string)
        fail(current_.offset, "path_within() needs a literal directory, e.g. \"/workspace\"");
      node.pattern = current_.text;
      if (node.pattern.empty() || (node.pattern.front() != '/' && node.pattern.front() != '~')) {
        fail(current_.offset, "path_within() needs an absolute directory (starting with / or ~)");
      }
      advance();
      node.op = Op::path_within;
      node.type = Type::boolean;
    } else {
      fail(offset, "unknown function '" + name + "' (known: exists, size, path_within)");
    }
    expect(Token::rparen, "')'");
    return make(std::move(node));
  }

  NodePtr parse_field(const std::string& first, std::size_t offset) {
    // Dotted path: root names are fixed; below args/claims/annotations/txn/headers, anything.
    std::vector<std::string> names = {first};
    std::vector<PathStep> below;
    auto read_steps = [&](bool dynamic_tail) {
      while (current_.kind == Token::dot || current_.kind == Token::lbracket) {
        if (current_.kind == Token::dot) {
          advance();
          if (current_.kind != Token::identifier)
            fail(current_.offset, "expected a field name after '.'");
          if (dynamic_tail)
            below.push_back({current_.text, -1});
          else
            names.push_back(current_.text);
          advance();
        } else {
          if (!dynamic_tail)
            fail(current_.offset,
                 "'[' is only allowed inside args, claims, annotations, txn and headers");
          advance();
          if (current_.kind == Token::number) {
            // Checked before the conversion: an out-of-range double-to-integer cast is undefined.
            const double index = current_.number;
            if (!(index >= 0 && index <= 1'000'000) || index != std::floor(index)) {
              fail(current_.offset, "an array index must be a whole number from 0 to 1000000");
            }
            below.push_back({"", static_cast<long>(index)});
          } else if (current_.kind == Token::string)
            below.push_back({current_.text, -1});
          else
            fail(current_.offset, "expected an index or a quoted key in '[…]'");
          advance();
          expect(Token::rbracket, "']'");
        }
        if (!dynamic_tail) return;
      }
    };
    Node node;
    node.op = Op::field;
    const auto fixed = [&](FieldRoot root, Type type) {
      node.root = root;
      node.type = type;
    };
    // Single-name roots (args, txn) take any path below; two-name fields are looked up whole.
    const bool single = first == "args" || first == "txn";
    if (!single) read_steps(false);
    const std::string path = single || names.size() < 2 ? first : first + "." + names[1];
    const auto field = std::find_if(std::begin(known_fields), std::end(known_fields),
                                    [&](const KnownField& known) { return known.name == path; });
    if (field == std::end(known_fields)) {
      std::string listed;
      for (const auto& known : known_fields) {
        listed += listed.empty() ? "" : ", ";
        listed += std::string(known.name) + (known.type == Type::dynamic ? ".*" : "");
      }
      fail(offset, "unknown field or name '" + path + "' (fields: " + listed +
                       "; or a list or macro defined before this rule)");
    }
    fixed(field->root, field->type);
    // Dynamic fields (JSON) go on: args.path, identity.claims.org, request.headers.x-agent.
    if (field->type == Type::dynamic) read_steps(true);
    if (node.root == FieldRoot::request_headers) {
      for (auto& step : below) {
        for (auto& c : step.key)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    node.path = std::move(below);
    return make(std::move(node));
  }

  NodePtr parse_primary() {
    const Lexeme lexeme = current_;
    switch (lexeme.kind) {
      case Token::lparen: {
        const Nesting nested(*this, lexeme.offset);
        advance();
        auto inner = parse_or();
        if (current_.kind == Token::comma) {
          fail(current_.offset,
               "expected ')', got ','; a list is written in square brackets: "
               "[\"a\", \"b\"]");
        }
        expect(Token::rparen, "')'");
        return inner;
      }
      case Token::lbracket:
        return parse_list();
      case Token::string: {
        advance();
        Node node;
        node.op = Op::literal;
        node.type = Type::string;
        node.constant = lexeme.text;
        return make(std::move(node));
      }
      case Token::number: {
        advance();
        Node node;
        node.op = Op::literal;
        node.type = Type::number;
        node.constant = lexeme.number;
        return make(std::move(node));
      }
      case Token::identifier: {
        advance();
        if (lexeme.text == "true" || lexeme.text == "false") {
          Node node;
          node.op = Op::literal;
          node.type = Type::boolean;
          node.constant = lexeme.text == "true";
          return make(std::move(node));
        }
        if (current_.kind == Token::lparen) return parse_function(lexeme.text, lexeme.offset);
        if (current_.kind != Token::dot && current_.kind != Token::lbracket) {
          if (const auto list = environment_.lists.find(lexeme.text);
              list != environment_.lists.end()) {
            Node node;
            node.op = Op::list;
            node.type = Type::list;
            node.items = list->second;
            index_items(node);
            return make(std::move(node));
          }
          if (const auto macro = environment_.macros.find(lexeme.text);
              macro != environment_.macros.end()) {
            Node node;
            node.op = Op::macro;
            node.type = Type::boolean;
            node.left = macro->second;
            return make(std::move(node));
          }
          if (lexeme.text != "args" && lexeme.text != "txn") {
            fail(lexeme.offset,
                 "unknown name '" + lexeme.text +
                     "': not a field, list or macro (lists and macros must be defined before use)");
          }
        }
        return parse_field(lexeme.text, lexeme.offset);
      }
      case Token::end:
        fail(lexeme.offset, "the condition ends where a value was expected");
      default:
        fail(lexeme.offset, "unexpected '" + lexeme.text + "' where a value was expected");
    }
  }

  std::string_view text_;
  const Environment& environment_;
  const OffsetLocator& locate_;
  std::size_t position_ = 0;
  Lexeme current_;
  std::size_t nesting_ = 0;
};

}  // namespace

NodePtr compile_condition(std::string_view text, const Environment& environment,
                          const OffsetLocator& locate) {
  Parser parser(text, environment, locate);
  return parser.parse();
}

NodePtr compile_field(std::string_view text, const OffsetLocator& locate) {
  const Environment no_names;
  Parser parser(text, no_names, locate);
  return parser.parse_field_only();
}

void append_field_text(const Node& field, const CallContext& call, std::string& out) {
  const Value value = field_value(field, call);
  switch (value.kind) {
    case Value::Kind::string:
      out += value.string;
      break;
    case Value::Kind::number:
      // 3, not 3.0: the same argument, however the client wrote it, is the same bucket.
      if (std::abs(value.number) < 9e15 && value.number == std::floor(value.number))
        out += std::to_string(static_cast<long long>(value.number));
      else
        out += Json(value.number).dump();
      break;
    case Value::Kind::boolean:
      out += value.boolean ? "true" : "false";
      break;
    case Value::Kind::json:
      out += value.json->dump(-1, ' ', false, Json::error_handler_t::replace);
      break;
    case Value::Kind::missing:
    case Value::Kind::list:
      break;
  }
}

}  // namespace membrane::policy
