#include "policy/expression_types.hpp"

#include <algorithm>
#include <iterator>

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
    case Type::strings:
      return "view";
  }
  return "?";
}

namespace {

// In the order error messages list them.
constexpr KnownField known_fields[] = {
    {"mcp.method", FieldRoot::mcp_method, Type::string},
    {"server.name", FieldRoot::server_name, Type::string},
    {"virtual.name", FieldRoot::virtual_name, Type::string},
    {"virtual.published_name", FieldRoot::virtual_published_name, Type::string},
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
    {"tool.changed", FieldRoot::tool_changed, Type::boolean},
    {"tool.changes", FieldRoot::tool_changes, Type::string},
    {"tool.digest", FieldRoot::tool_digest, Type::string},
    {"tool.pinned_digest", FieldRoot::tool_pinned_digest, Type::string},
    {"call.incomplete", FieldRoot::call_incomplete, Type::boolean},
    {"call.paths", FieldRoot::call_paths, Type::strings},
    {"call.paths.arguments", FieldRoot::call_argument_paths, Type::strings},
    {"call.paths.written", FieldRoot::call_written_paths, Type::strings},
    {"call.paths.escaping", FieldRoot::call_escaping_paths, Type::strings},
    {"call.commands", FieldRoot::call_commands, Type::strings},
    {"call.commands.program", FieldRoot::call_programs, Type::strings},
    {"call.commands.pipeline", FieldRoot::call_pipelines, Type::strings},
    {"call.code", FieldRoot::call_code, Type::strings},
    {"call.code.interpreter", FieldRoot::call_code_interpreters, Type::strings},
    {"call.code.source", FieldRoot::call_code_sources, Type::strings},
    {"call.urls", FieldRoot::call_urls, Type::strings},
    {"call.urls.scheme", FieldRoot::call_url_schemes, Type::strings},
    {"call.urls.host", FieldRoot::call_url_hosts, Type::strings},
    {"call.urls.port", FieldRoot::call_url_ports, Type::strings},
    {"call.urls.path", FieldRoot::call_url_paths, Type::strings},
    {"call.urls.host_class", FieldRoot::call_url_host_classes, Type::strings},
    {"call.strings", FieldRoot::call_strings, Type::strings},
    {"call.fields", FieldRoot::call_fields, Type::strings},
};

}  // namespace

const KnownField* find_known_field(std::string_view name) {
  const auto field = std::find_if(std::begin(known_fields), std::end(known_fields),
                                  [&](const KnownField& known) { return known.name == name; });
  return field == std::end(known_fields) ? nullptr : field;
}

std::string known_field_list() {
  std::string listed;
  for (const auto& known : known_fields) {
    listed += listed.empty() ? "" : ", ";
    listed += std::string(known.name) + (known.type == Type::dynamic ? ".*" : "");
  }
  return listed;
}

bool can_be_boolean(Type type) {
  return type == Type::boolean || type == Type::dynamic;
}

bool compatible(Type a, Type b) {
  return a == b || a == Type::dynamic || b == Type::dynamic;
}

bool is_sizable(Type type) {
  return type != Type::boolean && type != Type::number;
}

namespace {
// A view is tested value by value: each of its values takes the place of a string.
Type element_type(Type type) {
  return type == Type::strings ? Type::string : type;
}
}  // namespace

std::string comparison_type_error(Op op, std::string_view spelling, Type left, Type right) {
  const auto mismatch = [&](std::string_view wanted_left, std::string_view wanted_right) {
    return "'" + std::string(spelling) + "' compares " + std::string(wanted_left) + " with " +
           std::string(wanted_right) + ", but here the left side is a " +
           std::string(to_string(left)) + " and the right side a " + std::string(to_string(right));
  };
  if (right == Type::strings)
    return "'" + std::string(spelling) + "': a view (call.*) goes on the left side of a test";
  if (left == Type::strings && op == Op::not_equal)
    return "'!=' on a view would hold whenever one value differs; write not (x == \"…\")";
  if (left == Type::strings &&
      (op == Op::less || op == Op::less_equal || op == Op::greater || op == Op::greater_equal))
    return mismatch("a number", "a number");
  left = element_type(left);
  switch (op) {
    case Op::equal:
    case Op::not_equal:
      if (!compatible(left, right) || left == Type::list || right == Type::list)
        return mismatch("a value", "a value of the same type");
      return {};
    case Op::less:
    case Op::less_equal:
    case Op::greater:
    case Op::greater_equal:
      if (!compatible(left, Type::number) || !compatible(right, Type::number))
        return mismatch("a number", "a number");
      return {};
    case Op::in:
      if (right != Type::list) return mismatch("a value", "a list ([\"a\", \"b\"] or a list name)");
      if (left != Type::string && left != Type::number && left != Type::dynamic)
        return mismatch("a string or number", "a list");
      return {};
    case Op::contains:
      if (!(compatible(left, Type::string) || left == Type::list) ||
          !(compatible(right, Type::string) || right == Type::number)) {
        return mismatch("a string or list", "a string");
      }
      return {};
    case Op::starts_with:
    case Op::ends_with:
      if (!compatible(left, Type::string) || !compatible(right, Type::string))
        return mismatch("a string", "a string");
      return {};
    case Op::glob:
    case Op::matches:
      if (!compatible(left, Type::string)) return mismatch("a string", "a pattern");
      return {};
    default:
      return {};
  }
}

}  // namespace membrane::policy
