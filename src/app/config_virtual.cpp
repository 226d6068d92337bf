// The virtual_servers section: several upstreams published as one MCP server, each with the tools,
// prompts and resources it contributes and the names and descriptions they have there. Checks
// that need the upstreams section (members exist, names do not collide) are in config.cpp.
#include "app/config_reader.hpp"

namespace membrane::app::config_reading {

using namespace config_values;

namespace {

// Tool and prompt names as MCP 2025-11-25 recommends them (letters, digits, '_', '-', '.'),
// which every client accepts.
bool is_published_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

void check_name_part(std::string_view text, std::string_view what, std::size_t max_size,
                     bool may_be_empty) {
  if (text.empty() && !may_be_empty) throw InvalidValue(std::string(what) + " must not be empty");
  if (text.size() > max_size)
    throw InvalidValue(std::string(what) + " is longer than " + std::to_string(max_size) +
                       " characters");
  for (const char c : text) {
    if (!is_published_name_char(c))
      throw InvalidValue(std::string(what) + " '" + std::string(text) +
                         "' may only contain letters, digits, '_', '-' and '.'");
  }
}

constexpr std::size_t kMaxPublishedName = 128;
constexpr std::size_t kMaxPrefix = 64;
constexpr std::size_t kMaxSeparator = 8;
constexpr std::size_t kMaxDescription = 16 * 1024;

}  // namespace

std::vector<VirtualServerConfig> ConfigReader::read_virtual_servers(Field& field) {
  expect_map(field, "a map of virtual server name to its definition");
  std::vector<VirtualServerConfig> servers;
  for (auto& [name, definition] : entries_of(field, {}, "virtual server name")) {
    servers.push_back(read_virtual_server(name, remember(definition)));
  }
  return servers;
}

VirtualServerConfig ConfigReader::read_virtual_server(const std::string& name, Field& definition) {
  const Field name_field{definition.node, definition.path, definition.key_where};
  try {
    check_upstream_name(name);
  } catch (const InvalidValue& problem) {
    fail(name_field, problem.what());
  }
  expect_map(definition, "a map with 'upstreams' (the upstreams this virtual server combines)");
  VirtualServerConfig server;
  server.name = name;
  server.where = definition.key_where;
  auto entries = entries_of(
      definition, {"upstreams", "separator", "instructions", "member_timeout", "tool_discovery"});
  const Field* members = find(entries, "upstreams");
  if (!members) fail(name_field, "needs 'upstreams': the upstreams it combines");
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "separator") {
      server.separator = parse_scalar(value, "a separator such as _", [](const std::string& text) {
        check_name_part(text, "the separator", kMaxSeparator, false);
        return text;
      });
    } else if (key == "tool_discovery") {
      server.search_discovery = parse_scalar(value, "list or search", [](const std::string& text) {
        if (text == "list") return false;
        if (text == "search") return true;
        throw InvalidValue("'" + text + "' is not list (every tool) or search (a search tool)");
      });
    } else if (key == "member_timeout") {
      server.member_timeout =
          parse_scalar(value, "a duration such as 10s", [](const std::string& text) {
            const auto duration = parse_duration(text);
            if (duration.count() < 100 || duration.count() > 600'000)
              throw InvalidValue("must be between 100ms and 10m");
            return duration;
          });
    } else if (key == "instructions") {
      server.instructions = read_string(value);
      if (server.instructions.size() > kMaxDescription)
        fail(value, "longer than " + std::to_string(kMaxDescription) + " bytes");
    } else if (key == "upstreams") {
      if (value.node.IsSequence()) {
        // The short form: every item of each upstream, under its default prefix.
        std::size_t index = 0;
        for (const auto& item : value.node) {
          Field item_field{item, value.path + "[" + std::to_string(index++) + "]",
                           locate(item, value.where)};
          VirtualMemberConfig member;
          member.upstream = read_nonempty_string(remember(item_field));
          member.where = item_field.where;
          server.members.push_back(std::move(member));
        }
      } else {
        expect_map(value,
                   "a list of upstream names, or a map of upstream name to what it contributes");
        for (auto& [upstream, contribution] : entries_of(value, {}, "upstream name")) {
          server.members.push_back(read_virtual_member(upstream, remember(contribution)));
        }
      }
      if (server.members.empty()) fail(value, "a virtual server needs at least one upstream");
    }
  }
  return server;
}

VirtualMemberConfig ConfigReader::read_virtual_member(const std::string& upstream,
                                                      Field& definition) {
  VirtualMemberConfig member;
  member.upstream = upstream;
  member.where = definition.key_where;
  if (definition.node.IsNull()) return member;  // `name:` alone: everything it offers
  expect_map(definition, "a map with tools, prompts, resources or prefix (or nothing: all of it)");
  for (auto& [key, value] : entries_of(definition, {"prefix", "tools", "prompts", "resources"})) {
    remember(value);
    if (key == "prefix") {
      member.prefix = parse_scalar(value, "a name prefix", [](const std::string& text) {
        check_name_part(text, "the prefix", kMaxPrefix, true);
        return text;
      });
    } else if (key == "prompts") {
      member.prompts = read_selection(value, "prompt names", true);
    } else if (key == "resources") {
      member.resources = read_selection(value, "resource URIs", false);
    } else if (key == "tools") {
      expect_map(value,
                 "a map with include, exclude, rename, descriptions or annotations (tool names)");
      VirtualSelection selection;
      for (auto& [tool_key, tool_value] : entries_of(
               value, {"include", "exclude", "tags", "rename", "descriptions", "annotations"})) {
        remember(tool_value);
        if (tool_key == "include") {
          selection.include = read_string_list(tool_value, "tool names or globs");
          selection.included = true;
        } else if (tool_key == "exclude") {
          selection.exclude = read_string_list(tool_value, "tool names or globs");
        } else if (tool_key == "tags") {
          selection.tags = read_string_list(tool_value, "tags");
        } else if (tool_key == "rename") {
          member.rename = read_string_map(
              tool_value, "tool name",
              [](std::string_view name) {
                check_name_part(name, "the tool name", kMaxPublishedName, false);
              },
              [](std::string_view name) {
                check_name_part(name, "the published name", kMaxPublishedName, false);
              });
        } else if (tool_key == "descriptions") {
          member.descriptions = read_string_map(
              tool_value, "tool name",
              [](std::string_view name) {
                check_name_part(name, "the tool name", kMaxPublishedName, false);
              },
              [](std::string_view text) {
                if (text.size() > kMaxDescription)
                  throw InvalidValue("a description longer than " +
                                     std::to_string(kMaxDescription) + " bytes");
              });
        } else if (tool_key == "annotations") {
          expect_map(tool_value, "a map of tool name to its annotations");
          for (auto& [tool, annotations] : entries_of(tool_value, {}, "tool name")) {
            remember(annotations);
            expect_map(annotations,
                       "a map with title, readOnlyHint, destructiveHint, idempotentHint or "
                       "openWorldHint");
            auto& kept = member.annotations[tool];
            for (auto& [hint, setting] :
                 entries_of(annotations, {"title", "readOnlyHint", "destructiveHint",
                                          "idempotentHint", "openWorldHint"})) {
              remember(setting);
              if (hint == "title") {
                kept[hint] = read_nonempty_string(setting);
              } else {
                kept[hint] = read_bool(setting);
              }
            }
          }
        }
      }
      member.tools = std::move(selection);
    }
  }
  return member;
}

VirtualSelection ConfigReader::read_selection(Field& field, std::string_view what, bool with_tags) {
  expect_map(field,
             "a map with include and/or exclude (lists of " + std::string(what) + " or globs)");
  VirtualSelection selection;
  const std::vector<std::string> keys = with_tags
                                            ? std::vector<std::string>{"include", "exclude", "tags"}
                                            : std::vector<std::string>{"include", "exclude"};
  for (auto& [key, value] : entries_of(field, keys)) {
    if (key == "tags") {
      selection.tags = read_string_list(remember(value), "tags");
      continue;
    }
    auto globs = read_string_list(remember(value), std::string(what) + " or globs");
    if (key == "include") selection.included = true;
    (key == "include" ? selection.include : selection.exclude) = std::move(globs);
  }
  return selection;
}

}  // namespace membrane::app::config_reading
