// Reading the gateway's YAML config into Config: the generic readers every section uses (maps
// checked for unknown and duplicate keys, scalars, lists, typed values, each error at
// file:line:col) and one reader per section. Checks that span sections come after, in config.cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "app/config_values.hpp"
#include "membrane/app/config.hpp"

namespace membrane::app::config_reading {

// Where each value from a config file was found, keyed by its dotted path
// ("listen.tls.certificate"), so checks made after parsing can still point at the line.
using LocationTable = std::map<std::string, SourceLocation>;

struct Field {
  YAML::Node node;
  std::string path;                  // dotted path, e.g. "timeouts.upstream_connect"
  SourceLocation where;              // the value's position, or its key's when the value is empty
  SourceLocation key_where = where;  // the key's position, for errors about the key itself
};

std::string child_path(const std::string& parent, std::string_view key);
// What a node is, for "expected X, got Y".
std::string describe(const YAML::Node& node);
[[noreturn]] void fail(const Field& field, const std::string& message);

// The keys a config file may have at its top level, one per section reader, in the order error
// messages list them.
const std::vector<std::string>& top_level_keys();

class ConfigReader {
 public:
  explicit ConfigReader(std::string source_name) : file_(std::move(source_name)) {}

  Config read(const YAML::Node& root);
  const LocationTable& locations() const { return locations_; }

  // One reader per top-level section.
  ListenerConfig read_listen(Field& field);
  ListenerConfig read_admin(Field& field);
  unsigned read_workers(Field& field);
  std::string read_log_level(Field& field);
  std::string read_upstream_name(Field& field);
  void read_limits(Field& field, LimitsConfig& limits);
  void read_timeouts(Field& field, TimeoutsConfig& timeouts);
  void read_security(Field& field, SecurityConfig& security);
  void read_session(Field& field, SessionConfig& session);
  void read_cluster(Field& field, ClusterConfig& cluster);
  void read_policy(Field& field, PolicyConfig& policy);
  void read_auth(Field& field, AuthConfig& auth);
  void read_txn(Field& field, TxnConfig& txn);
  void read_audit(Field& field, AuditConfig& audit);
  void read_console(Field& field, ConsoleConfig& console);
  void read_otel(Field& field, Config::Otel& otel);
  std::vector<UpstreamConfig> read_upstreams(Field& field);
  std::vector<VirtualServerConfig> read_virtual_servers(Field& field);

 private:
  // The entries of one YAML map, checked for unknown and duplicate keys up front.
  struct Entry {
    std::string key;
    Field value;
  };

  SourceLocation locate(const YAML::Node& node, const SourceLocation& fallback) const {
    const YAML::Mark mark = node.Mark();
    if (mark.line < 0 || node.IsNull()) return fallback;  // null values point past their key
    return SourceLocation{file_, mark.line + 1, mark.column + 1};
  }

  // `allowed_keys` empty = any key (maps of names: upstreams, headers, env).
  std::vector<Entry> entries_of(const Field& map_field,
                                const std::vector<std::string>& allowed_keys,
                                std::string_view key_kind = "key");
  static const Field* find(const std::vector<Entry>& entries, std::string_view key);

  Field& remember(Field& field) {
    locations_[field.path] = field.where;
    return field;
  }

  void expect_map(const Field& field, std::string_view what) const {
    if (!field.node.IsMap())
      fail(field, "expected " + std::string(what) + ", got " + describe(field.node));
  }
  std::string read_scalar(const Field& field, std::string_view what) const;
  std::string read_string(const Field& field) const { return read_scalar(field, "a string"); }
  std::string read_nonempty_string(const Field& field) const;
  std::uint64_t read_unsigned(const Field& field, std::string_view what) const;
  bool read_bool(const Field& field) const;
  std::vector<std::string> read_string_list(const Field& field, std::string_view what);
  // A map of names to text values (headers, env); each key and value is checked separately so a
  // problem points at the one that has it.
  std::map<std::string, std::string> read_string_map(
      const Field& field, std::string_view key_kind,
      const std::function<void(std::string_view)>& check_key,
      const std::function<void(std::string_view)>& check_value);

  template <typename Parser>
  auto parse_scalar(const Field& field, std::string_view what, Parser&& parser) const {
    const std::string text = read_scalar(field, what);
    try {
      return parser(text);
    } catch (const config_values::InvalidValue& problem) {
      fail(field, problem.what());
    }
  }

  UpstreamCredentialsConfig read_credentials(Field& field);
  UpstreamConfig read_upstream(const std::string& name, Field& definition);
  VirtualServerConfig read_virtual_server(const std::string& name, Field& definition);
  VirtualMemberConfig read_virtual_member(const std::string& upstream, Field& definition);
  VirtualSelection read_selection(Field& field, std::string_view what, bool with_tags);

  std::string file_;
  LocationTable locations_;
};

}  // namespace membrane::app::config_reading
