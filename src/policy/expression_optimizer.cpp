// Compile-time work on a checked condition: the questions the policy asks of it (which tools,
// which methods, which fields it reads), and the rewrite into the program a rule runs.
#include <algorithm>
#include <optional>

#include "policy/expression_tree.hpp"

namespace membrane::policy {

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
  if (node.op == Op::field && (node.root == FieldRoot::args ||
                               node.root == FieldRoot::call_incomplete || is_view(node.root)))
    return true;
  return (node.left && references_arguments(*node.left)) ||
         (node.right && references_arguments(*node.right)) ||
         std::any_of(node.children.begin(), node.children.end(),
                     [](const NodePtr& child) { return references_arguments(*child); });
}

bool references_request_headers(const Node& node) {
  return references(node, FieldRoot::request_headers);
}

namespace {
// The string values `root` is tested against in `field == "x"` (either way round) or
// `field in [...]`, or nullopt when `node` is not such a test of that field.
std::optional<std::vector<std::string>> compared_values(const Node& node, FieldRoot root) {
  const auto is_field = [root](const NodePtr& side) {
    return side && side->op == Op::field && side->root == root && side->path.empty();
  };
  if (node.op == Op::equal) {
    for (const auto& [field, other] :
         {std::pair{node.left, node.right}, std::pair{node.right, node.left}}) {
      if (is_field(field) && other->op == Op::literal) {
        if (const auto* name = std::get_if<std::string>(&other->constant))
          return std::vector<std::string>{*name};
      }
    }
    return std::nullopt;
  }
  if (node.op == Op::in && is_field(node.left) && node.right->op == Op::list)
    return node.right->items;
  return std::nullopt;
}

// The string values `root` must have for the condition to hold, read from `field == "x"` and
// `field in [...]` in its conjunctions (and every branch of a disjunction); nullopt when any
// value may do.
std::optional<std::vector<std::string>> required_values(const Node& node, FieldRoot root) {
  switch (node.op) {
    case Op::equal:
    case Op::in:
      return compared_values(node, root);
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
  // tool.name is a fixed field: it never has a path below it.
  if (node.op == Op::equal || node.op == Op::in) return compared_values(node, FieldRoot::tool_name);
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

}  // namespace membrane::policy
