// The condition language: parsed and type-checked once into a small tree of nodes, evaluated per
// call without allocating. Dynamic values (args.*, claims, annotations) are typed at run time:
// a comparison whose operands do not fit is simply false, never an error.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "membrane/core/glob.hpp"
#include "membrane/policy/policy.hpp"

namespace re2 {
class RE2;
}

namespace membrane::policy {

// Where an offset inside an expression's text lies in its file, for error messages.
using OffsetLocator = std::function<std::string(std::size_t offset)>;  // -> "file:line:col"

// Lets a string-keyed hash container be searched with a string_view, without a copy.
struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

// strings: a view, several strings that a test holds for when it holds for one of them.
enum class Type { boolean, number, string, list, dynamic, strings };
std::string_view to_string(Type type);

struct Node;
using NodePtr = std::shared_ptr<const Node>;

struct Environment {
  std::map<std::string, std::vector<std::string>, std::less<>> lists;
  std::map<std::string, NodePtr, std::less<>> macros;  // compiled macro conditions
};

// Parses and checks `text` (a boolean condition). Throws PolicyError with the location of the
// offending token.
NodePtr compile_condition(std::string_view text, const Environment& environment,
                          const OffsetLocator& locate);

bool evaluate(const Node& node, const CallContext& call);

// One field reference (`identity.sub`, `args.path`, `request.headers.x-team`), for the fields a
// rate limit is counted by. Throws PolicyError at the offending token.
NodePtr compile_field(std::string_view text, const OffsetLocator& locate);
// Appends the field's value as text: strings as they are, numbers and booleans as JSON, objects
// and arrays as compact JSON, nothing when absent.
void append_field_text(const Node& field, const CallContext& call, std::string& out);

// The program a rule runs: macros inlined, and/or chains flattened with the cheapest tests first,
// parts that do not depend on the call folded to constants.
NodePtr optimize(const NodePtr& condition);
// An optimized `program` for calls that reached the rule through its tool-name index under one of
// `names`: the tool-name tests the index already guarantees are dropped.
NodePtr without_tool_selector(const NodePtr& program, const std::vector<std::string>& names);

// All `matches` patterns on the same field, merged into one RE2::Set per field, so a decision
// runs one regex pass per field instead of one per rule; and one cache slot per field read, so a
// decision looks each field up once. Building it completes the compilation of `conditions`
// (their nodes learn their set and slot); keep the index alive as long as the nodes.
struct DecisionIndex;
std::shared_ptr<const DecisionIndex> build_decision_index(const std::vector<NodePtr>& conditions);

// For the duration of one decision on this thread: set results and field values are computed at
// most once per field and reused by every rule that asks.
class DecisionScope {
 public:
  explicit DecisionScope(const DecisionIndex* index);
  ~DecisionScope();
  DecisionScope(const DecisionScope&) = delete;
  DecisionScope& operator=(const DecisionScope&) = delete;

 private:
  const DecisionIndex* previous_;
};
// True when the condition looks at the call's arguments (args.*): such a rule cannot say that a
// tool is never callable, only that some calls of it are not.
bool references_arguments(const Node& node);
// True when the condition looks at request.headers.*: only then does the gateway collect them.
bool references_request_headers(const Node& node);
// The tool names a condition can only hold for (from `tool.name == "x"` / `tool.name in [...]`
// in its conjunctions), or nullopt when it may hold for any tool. Used to index rules.
std::optional<std::vector<std::string>> required_tool_names(const Node& node);
// The same for mcp.method: the methods a rule is about, or nullopt when it may hold for any.
std::optional<std::vector<std::string>> required_methods(const Node& node);

// Lexical path helpers, exposed for tests: collapse "//", "." and ".." (never above the root),
// expand a leading "~" to `home`. Returns false when the result does not fit in `out`.
bool normalize_path(std::string_view path, std::string_view home, std::string& out);
bool path_within(std::string_view path, std::string_view prefix, std::string_view home);
using core::glob_match;

}  // namespace membrane::policy
