// The evaluator: a condition against one call, without allocating (values are views), with the
// per-decision caches the decision index laid out.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "policy/call_views.hpp"
#include "policy/expression_tree.hpp"

namespace membrane::policy {

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
  // The views of the call being decided, computed when a rule first asks.
  CallViews views;
  std::uint32_t views_decision = 0;
  const CallContext* views_call = nullptr;
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

View view_of(FieldRoot root) {
  return static_cast<View>(static_cast<std::size_t>(root) -
                           static_cast<std::size_t>(FieldRoot::call_paths));
}

// This decision's views of `call`: reused by every rule that asks. Outside a decision (a lone
// evaluation), computed afresh.
CallViews& views_of(const CallContext& call) {
  DecisionState* state = active_state;
  if (state && state->index) {
    if (state->views_decision != state->number || state->views_call != &call) {
      state->views.clear();
      state->views_decision = state->number;
      state->views_call = &call;
    }
    return state->views;
  }
  thread_local CallViews scratch;
  scratch.clear();
  return scratch;
}

Value view_value(View view, const CallContext& call) {
  CallViews& views = views_of(call);
  compute_view(view, call, views);
  Value value;
  value.kind = Value::Kind::strings;
  value.strings = &views[view];
  return value;
}

Value from_bool(bool flag) {
  Value value;
  value.kind = Value::Kind::boolean;
  value.boolean = flag;
  return value;
}

Value field_value(const Node& node, const CallContext& call) {
  if (is_view(node.root)) return view_value(view_of(node.root), call);
  switch (node.root) {
    case FieldRoot::mcp_method:
      return from_string(call.method);
    case FieldRoot::server_name:
      return from_string(call.server);
    case FieldRoot::virtual_name:
      return from_string(call.virtual_server);
    case FieldRoot::virtual_published_name:
      return from_string(call.published_name);
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
    case FieldRoot::tool_changed:
      return from_bool(call.tool_changed);
    case FieldRoot::tool_changes:
      return from_string(call.tool_changes, !call.tool_changes.empty());
    case FieldRoot::tool_digest:
      return from_string(call.tool_digest, !call.tool_digest.empty());
    case FieldRoot::tool_pinned_digest:
      return from_string(call.tool_pinned_digest, !call.tool_pinned_digest.empty());
    case FieldRoot::call_incomplete: {
      // Incomplete once a view that was computed hit a bound; asking computes them all.
      CallViews& views = views_of(call);
      compute_view(View::paths, call, views);
      compute_view(View::strings, call, views);
      return from_bool(views.incomplete);
    }
    default:
      break;
  }
  return {};
}

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

}  // namespace

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
      else if (inner.kind == Value::Kind::strings)
        out.number = static_cast<double>(inner.strings->size());
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

namespace {

bool evaluate_node(const Node& node, const CallContext& call);

// The cached value of a field for this decision.
const Value& cached_field(const Node& field, DecisionState& state, const CallContext& call) {
  const auto slot = static_cast<std::size_t>(field.field_slot);
  if (state.field_decision[slot] != state.number) {
    state.field_values[slot] = field_value(field, call);
    state.field_decision[slot] = state.number;
  }
  return state.field_values[slot];
}

// Runs `test` on each of a view's values until one holds; on any other value, once.
template <class Test>
bool any_value(const Value& value, Test&& test) {
  if (value.kind != Value::Kind::strings) return test(value);
  for (const auto text : *value.strings) {
    if (test(from_string(text))) return true;
  }
  return false;
}

bool compare_scalar_with_constant(const Node& node, const Value& a);

// `field OP constant` (Node::compares_constant): the most common test in a ruleset, evaluated
// straight from the field cache without the generic dispatch.
bool compare_with_constant(const Node& node, const Value& a) {
  if (a.kind == Value::Kind::strings)
    return any_value(
        a, [&node](const Value& value) { return compare_scalar_with_constant(node, value); });
  return compare_scalar_with_constant(node, a);
}

bool compare_scalar_with_constant(const Node& node, const Value& a) {
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
    case Op::equal: {
      const Value b = right_of(node, call);
      return any_value(value_of(*node.left, call),
                       [&b](const Value& a) { return equal_values(a, b); });
    }
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
      return any_value(value_of(*node.left, call),
                       [&node](const Value& a) { return in_list(a, *node.right); });
    case Op::contains: {
      const Value b = right_of(node, call);
      return any_value(value_of(*node.left, call),
                       [&b](const Value& a) { return contains_value(a, b); });
    }
    case Op::starts_with:
    case Op::ends_with: {
      const Value b = right_of(node, call);
      if (b.kind != Value::Kind::string) return false;
      return any_value(value_of(*node.left, call), [&](const Value& a) {
        if (a.kind != Value::Kind::string) return false;
        return node.op == Op::starts_with ? a.string.starts_with(b.string)
                                          : a.string.ends_with(b.string);
      });
    }
    case Op::glob:
      return any_value(value_of(*node.left, call), [&node](const Value& a) {
        return a.kind == Value::Kind::string && glob_match(node.pattern, a.string);
      });
    case Op::matches: {
      DecisionState* state = active_state;
      if (node.regex_owner && state && node.regex_owner == state->index) {
        const auto group = static_cast<std::size_t>(node.regex_group);
        auto& hits = state->regex_group_hits[group];
        auto& regex_group_state = state->regex_group_state;
        if (regex_group_state[group] < 0) {
          const Value a = value_of(*node.left, call);
          hits.clear();
          const auto& set = *node.regex_owner->groups[group].set;
          // Most values match no pattern. Asking "any match?" first costs no allocation;
          // only a hit pays for RE2 collecting which patterns matched.
          const auto collect = [&set, &hits](std::string_view value) {
            const re2::StringPiece text(value.data(), value.size());
            if (!set.Match(text, nullptr)) return;
            std::vector<int> found;
            set.Match(text, &found);
            hits.insert(hits.end(), found.begin(), found.end());
          };
          if (a.kind == Value::Kind::string || a.kind == Value::Kind::strings) {
            if (a.kind == Value::Kind::string) {
              collect(a.string);
            } else {
              for (const auto value : *a.strings)
                collect(value);
            }
            std::sort(hits.begin(), hits.end());
            hits.erase(std::unique(hits.begin(), hits.end()), hits.end());
            regex_group_state[group] = 1;
          } else {
            regex_group_state[group] = 0;
          }
        }
        return regex_group_state[group] == 1 &&
               std::binary_search(hits.begin(), hits.end(), node.regex_member);
      }
      return any_value(value_of(*node.left, call), [&node](const Value& a) {
        return a.kind == Value::Kind::string &&
               re2::RE2::PartialMatch(re2::StringPiece(a.string.data(), a.string.size()),
                                      *node.regex);
      });
    }
    case Op::exists: {
      const Value a = value_of(*node.left, call);
      if (a.kind == Value::Kind::strings) return !a.strings->empty();
      return a.kind != Value::Kind::missing;
    }
    case Op::path_within: {
      const Value a = value_of(*node.left, call);
      static const std::string home = [] {
        const char* value = std::getenv("HOME");
        return std::string(value ? value : "/");
      }();
      // A view is within the directory when every path in it is: a boundary rule reads
      // `not path_within(call.paths, "/workspace")` as "some path leaves it".
      if (a.kind == Value::Kind::strings) {
        return std::all_of(a.strings->begin(), a.strings->end(), [&node](std::string_view path) {
          return path_within(path, node.pattern, home);
        });
      }
      if (a.kind != Value::Kind::string) return false;
      return path_within(a.string, node.pattern, home);
    }
    default:
      return truthy(value_of(node, call));
  }
}

}  // namespace

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
    case Value::Kind::strings:
      for (std::size_t i = 0; i < value.strings->size(); ++i) {
        if (i > 0) out.push_back(',');
        out += (*value.strings)[i];
      }
      break;
    case Value::Kind::missing:
    case Value::Kind::list:
      break;
  }
}

}  // namespace membrane::policy
