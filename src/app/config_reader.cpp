#include "app/config_reader.hpp"

#include <algorithm>

namespace membrane::app::config_reading {

using namespace config_values;

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return single_quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

[[noreturn]] void fail(const Field& field, const std::string& message) {
  throw ConfigError(field.where, field.path.empty() ? message : field.path + ": " + message);
}

std::vector<ConfigReader::Entry> ConfigReader::entries_of(
    const Field& map_field, const std::vector<std::string>& allowed_keys,
    std::string_view key_kind) {
  std::vector<Entry> entries;
  for (const auto& pair : map_field.node) {
    const SourceLocation key_where = locate(pair.first, map_field.where);
    const Field key_field{pair.first, map_field.path, key_where};
    if (!pair.first.IsScalar())
      fail(key_field, "map keys must be plain names, got " + describe(pair.first));
    const std::string key = pair.first.Scalar();
    const std::string path = child_path(map_field.path, key);

    if (!allowed_keys.empty() &&
        std::find(allowed_keys.begin(), allowed_keys.end(), key) == allowed_keys.end()) {
      std::string message = "unknown key " + single_quoted(key);
      if (!map_field.path.empty()) message += " in '" + map_field.path + "'";
      if (const auto suggestion = closest_match(key, allowed_keys)) {
        message += " (did you mean " + single_quoted(*suggestion) + "?)";
      }
      message += "; allowed keys: " + join(allowed_keys, ", ");
      throw ConfigError(key_where, message);
    }
    if (const Field* earlier = find(entries, key)) {
      throw ConfigError(key_where,
                        "duplicate " + std::string(key_kind) + " " + single_quoted(key) +
                            (map_field.path.empty() ? "" : " in '" + map_field.path + "'") +
                            " (first defined at line " + std::to_string(earlier->key_where.line) +
                            ")");
    }
    entries.push_back(
        Entry{key, Field{pair.second, path, locate(pair.second, key_where), key_where}});
  }
  return entries;
}

const Field* ConfigReader::find(const std::vector<Entry>& entries, std::string_view key) {
  const auto entry =
      std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.key == key; });
  return entry == entries.end() ? nullptr : &entry->value;
}

std::string ConfigReader::read_scalar(const Field& field, std::string_view what) const {
  if (!field.node.IsScalar())
    fail(field, "expected " + std::string(what) + ", got " + describe(field.node));
  return field.node.Scalar();
}

std::string ConfigReader::read_nonempty_string(const Field& field) const {
  std::string text = read_string(field);
  if (text.empty()) fail(field, "must not be empty");
  return text;
}

std::uint64_t ConfigReader::read_unsigned(const Field& field, std::string_view what) const {
  const std::string text = read_scalar(field, what);
  // A quoted "2" is a string to every other YAML reader (and to the JSON schema); refusing it
  // here keeps the two in agreement.
  if (field.node.Tag() == "!")
    fail(field, "expected " + std::string(what) + ", got the quoted string " + single_quoted(text) +
                    " (remove the quotes)");
  try {
    return parse_unsigned(text);
  } catch (const InvalidValue&) {
    fail(field, "expected " + std::string(what) + ", got " + single_quoted(text));
  }
}

bool ConfigReader::read_bool(const Field& field) const {
  const std::string text = read_scalar(field, "true or false");
  // YAML 1.2 booleans only: yes/no/on/off are strings there, and a typo should not flip TLS off.
  if (field.node.Tag() != "!") {
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  fail(field, "expected true or false, got " + single_quoted(text));
}

std::vector<std::string> ConfigReader::read_string_list(const Field& field, std::string_view what) {
  if (!field.node.IsSequence())
    fail(field, "expected a list of " + std::string(what) + ", got " + describe(field.node));
  std::vector<std::string> items;
  std::size_t index = 0;
  for (const auto& item : field.node) {
    Field item_field{item, field.path + "[" + std::to_string(index++) + "]",
                     locate(item, field.where)};
    items.push_back(read_scalar(remember(item_field), what));
  }
  return items;
}

std::map<std::string, std::string> ConfigReader::read_string_map(
    const Field& field, std::string_view key_kind,
    const std::function<void(std::string_view)>& check_key,
    const std::function<void(std::string_view)>& check_value) {
  expect_map(field, "a map of " + std::string(key_kind) + " to value");
  std::map<std::string, std::string> values;
  for (auto& [key, value] : entries_of(field, {}, key_kind)) {
    try {
      check_key(key);
    } catch (const InvalidValue& problem) {
      throw ConfigError(value.key_where, value.path + ": " + problem.what());
    }
    const std::string text = read_scalar(remember(value), "a string");
    try {
      check_value(text);
    } catch (const InvalidValue& problem) {
      fail(value, problem.what());
    }
    values.emplace(key, text);
  }
  return values;
}

namespace {

// A section reader stores what it reads in the config.
using SectionReader = void (*)(ConfigReader&, Field&, Config&);
struct Section {
  std::string_view key;
  SectionReader read;
};
constexpr Section kSections[] = {
    {"listen", [](ConfigReader& r, Field& f, Config& c) { c.listen = r.read_listen(f); }},
    {"workers", [](ConfigReader& r, Field& f, Config& c) { c.worker_threads = r.read_workers(f); }},
    {"log_level", [](ConfigReader& r, Field& f, Config& c) { c.log_level = r.read_log_level(f); }},
    {"limits", [](ConfigReader& r, Field& f, Config& c) { r.read_limits(f, c.limits); }},
    {"timeouts", [](ConfigReader& r, Field& f, Config& c) { r.read_timeouts(f, c.timeouts); }},
    {"security", [](ConfigReader& r, Field& f, Config& c) { r.read_security(f, c.security); }},
    {"session", [](ConfigReader& r, Field& f, Config& c) { r.read_session(f, c.session); }},
    {"policy", [](ConfigReader& r, Field& f, Config& c) { r.read_policy(f, c.policy); }},
    {"auth", [](ConfigReader& r, Field& f, Config& c) { r.read_auth(f, c.auth); }},
    {"txn", [](ConfigReader& r, Field& f, Config& c) { r.read_txn(f, c.txn); }},
    {"audit", [](ConfigReader& r, Field& f, Config& c) { r.read_audit(f, c.audit); }},
    {"cluster", [](ConfigReader& r, Field& f, Config& c) { r.read_cluster(f, c.cluster); }},
    {"admin", [](ConfigReader& r, Field& f, Config& c) { c.admin = r.read_admin(f); }},
    {"console", [](ConfigReader& r, Field& f, Config& c) { r.read_console(f, c.console); }},
    {"otel", [](ConfigReader& r, Field& f, Config& c) { r.read_otel(f, c.otel); }},
    {"upstreams", [](ConfigReader& r, Field& f, Config& c) { c.upstreams = r.read_upstreams(f); }},
    {"virtual_servers",
     [](ConfigReader& r, Field& f, Config& c) { c.virtual_servers = r.read_virtual_servers(f); }},
    {"default_upstream",
     [](ConfigReader& r, Field& f, Config& c) { c.default_upstream = r.read_upstream_name(f); }},
};

}  // namespace

const std::vector<std::string>& top_level_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> names;
    for (const auto& section : kSections)
      names.emplace_back(section.key);
    return names;
  }();
  return keys;
}

Config ConfigReader::read(const YAML::Node& root) {
  Config config;
  config.source = file_;
  Field root_field{root, "", SourceLocation{file_, 1, 1}};
  if (!root.IsDefined() || root.IsNull()) {
    fail(root_field,
         "the configuration is empty; it needs at least an 'upstreams' map (see "
         "examples/membrane.yaml)");
  }
  root_field.where = locate(root, root_field.where);
  expect_map(root_field, "a map of settings (listen, upstreams, ...) at the top level");

  const auto entries = entries_of(root_field, top_level_keys());
  for (auto entry : entries) {
    Field& field = remember(entry.value);
    for (const auto& section : kSections) {
      if (section.key == entry.key) section.read(*this, field, config);
    }
  }
  if (!find(entries, "upstreams")) {
    fail(root_field,
         "missing required key 'upstreams' (a map of upstream name to its 'url' or "
         "'command')");
  }
  return config;
}

}  // namespace membrane::app::config_reading
