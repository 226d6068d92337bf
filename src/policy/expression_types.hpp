// The condition language's types: which fields exist and what they hold, and which operands each
// operator accepts. The parser asks; the messages name what was expected and what was found.
#pragma once

#include <string>
#include <string_view>

#include "policy/expression_tree.hpp"

namespace membrane::policy {

// A field a condition can name. Dynamic fields hold JSON and take a path below them.
struct KnownField {
  std::string_view name;
  FieldRoot root;
  Type type;
};
// The field called `name` ("tool.name", "args"), or nullptr.
const KnownField* find_known_field(std::string_view name);
// Every field, as error messages list them: "mcp.method, ..., args.*, ...".
std::string known_field_list();

// Where true/false is needed, a boolean or a value only known at run time will do.
bool can_be_boolean(Type type);
// Two operands can be compared: the same type, or one only known at run time.
bool compatible(Type a, Type b);
// size() counts strings, lists and JSON arrays/objects.
bool is_sizable(Type type);
// Why `left SPELLING right` does not type-check, or "" when it does. For glob and matches only the
// left side is checked here: the pattern must be a literal, which the parser sees.
std::string comparison_type_error(Op op, std::string_view spelling, Type left, Type right);

}  // namespace membrane::policy
