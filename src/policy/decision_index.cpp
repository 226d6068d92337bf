// The decision index: what several rules share, computed once per decision (regex sets per field,
// field value slots, memoized tests). Building it finishes the compilation of a ruleset.
#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "policy/expression_tree.hpp"

namespace membrane::policy {

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

}  // namespace membrane::policy
