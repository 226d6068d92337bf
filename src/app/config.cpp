// Loading and validating the gateway configuration. Every problem is reported as a ConfigError
// that names where the value came from (`file:line:col`, or the command-line flag), because the
// operator reading it has only the message to go on.
#include "membrane/app/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>

#include "app/config_reader.hpp"
#include "app/config_values.hpp"
#include "cluster/redis_client.hpp"
#include "membrane/core/yaml_documents.hpp"
#include "membrane/core/yaml_nesting.hpp"

namespace membrane::app {

std::string SourceLocation::to_string() const {
  std::string text = file.empty() ? std::string("<config>") : file;
  if (line > 0) {
    text += ':' + std::to_string(line);
    if (column > 0) text += ':' + std::to_string(column);
  }
  return text;
}

ConfigError::ConfigError(const SourceLocation& where, const std::string& message)
    : std::runtime_error(where.to_string() + ": " + message), where_(where) {}

using namespace config_values;

namespace {

using config_reading::LocationTable;

// Names the field a problem is in: its file position when the config came from YAML, the flag
// when it came from the command line, or at least the file and the key path otherwise.
class Validator {
 public:
  Validator(const Config& config, const LocationTable* locations)
      : config_(config), locations_(locations) {}

  void run() const;

 private:
  [[noreturn]] void fail(const std::string& yaml_path, std::string_view flag,
                         std::string_view flag_value, const std::string& message) const {
    if (locations_) {
      if (const auto found = locations_->find(yaml_path); found != locations_->end()) {
        throw ConfigError(found->second, yaml_path + ": " + message);
      }
    }
    if (config_.source == kFlagsSource && !flag.empty()) {
      const std::string named_flag = flag_value.empty()
                                         ? std::string(flag)
                                         : std::string(flag) + " " + single_quoted(flag_value);
      throw ConfigError(flags_location(), named_flag + ": " + message);
    }
    throw ConfigError(SourceLocation{config_.source, 0, 0}, yaml_path + ": " + message);
  }

  [[noreturn]] void fail_upstream(const UpstreamConfig& upstream,
                                  const std::string& message) const {
    if (upstream.where.file == kFlagsSource) {
      throw ConfigError(upstream.where,
                        "--upstream " + single_quoted(upstream.name) + ": " + message);
    }
    throw ConfigError(
        upstream.where.file.empty() ? SourceLocation{config_.source, 0, 0} : upstream.where,
        "upstreams." + upstream.name + ": " + message);
  }

  void check_readable(const std::string& yaml_path, std::string_view flag, const std::string& file,
                      std::string_view what) const {
    if (const auto problem = why_unreadable(file)) {
      fail(yaml_path, flag, file,
           "cannot read " + std::string(what) + " " + single_quoted(file) + ": " + *problem);
    }
  }

  void check_upstreams() const;
  void check_virtual_servers() const;
  void check_listener() const;
  void check_security() const;
  void check_console() const;
  void check_session_and_timeouts() const;

  const Config& config_;
  const LocationTable* locations_;
};

void Validator::run() const {
  check_upstreams();
  check_virtual_servers();
  check_listener();
  check_console();
  check_security();
  check_session_and_timeouts();
  try {
    check_log_level(config_.log_level);
  } catch (const InvalidValue& problem) {
    fail("log_level", "--log-level", config_.log_level, problem.what());
  }
  if (config_.worker_threads > kMaxWorkerThreads) {
    fail("workers", "--workers", std::to_string(config_.worker_threads),
         "at most " + std::to_string(kMaxWorkerThreads) + " worker threads");
  }
}

void Validator::check_upstreams() const {
  if (config_.upstreams.empty()) {
    fail("upstreams", "--upstream", "",
         "at least one upstream is required (--upstream NAME=URL, or an 'upstreams' map in the "
         "config file)");
  }
  if (!config_.default_upstream.empty()) {
    std::string names;
    bool known = false;
    for (const auto& upstream : config_.upstreams) {
      known = known || upstream.name == config_.default_upstream;
      names += (names.empty() ? "" : ", ") + upstream.name;
    }
    if (!known) {
      fail("default_upstream", "--default-upstream", config_.default_upstream,
           "names no configured upstream (configured: " + names + ")");
    }
  }
  std::map<std::string, const UpstreamConfig*> seen;
  for (const auto& upstream : config_.upstreams) {
    if (!is_valid_upstream_name(upstream.name)) {
      fail_upstream(upstream, "upstream name may only contain letters, digits, '.', '_' and '-'");
    }
    if (const auto [earlier, inserted] = seen.emplace(upstream.name, &upstream); !inserted) {
      const std::string first =
          earlier->second->where.line > 0
              ? " (first defined at " + earlier->second->where.to_string() + ")"
              : "";
      fail_upstream(upstream, "duplicate upstream name " + single_quoted(upstream.name) + first);
    }
    const std::string path = "upstreams." + upstream.name;
    if (const auto* http = std::get_if<HttpUpstreamConfig>(&upstream.transport)) {
      try {
        normalized_http_url(http->url, "http or https");
      } catch (const InvalidValue& problem) {
        fail_upstream(upstream, problem.what());
      }
      if (!http->ca_file.empty()) {
        if (const auto problem = why_unreadable(http->ca_file)) {
          const std::string message =
              "cannot read CA file " + single_quoted(http->ca_file) + ": " + *problem;
          if (locations_ && locations_->contains(path + ".ca_file"))
            fail(path + ".ca_file", "", "", message);
          fail_upstream(upstream, message);
        }
      }
    } else {
      const auto& stdio = std::get<StdioUpstreamConfig>(upstream.transport);
      if (stdio.command.empty()) fail_upstream(upstream, "the stdio command is empty");
      if (!stdio.working_directory.empty()) {
        if (const auto problem = why_not_a_directory(stdio.working_directory)) {
          const std::string message =
              "working directory " + single_quoted(stdio.working_directory) + ": " + *problem;
          if (locations_ && locations_->contains(path + ".working_directory")) {
            fail(path + ".working_directory", "", "", message);
          }
          fail_upstream(upstream, message);
        }
      }
    }
  }
}

// A virtual server routes a published name to exactly one member: by its rename, else by the
// prefix it starts with, else to the one member published without a prefix. Anything that would
// let two members claim one name is refused here, so that routing (and the policy rules written
// against upstream names) never depends on what the upstreams happen to list.
void Validator::check_virtual_servers() const {
  std::map<std::string, const VirtualServerConfig*> seen;
  for (const auto& server : config_.virtual_servers) {
    const auto where =
        server.where.file.empty() ? SourceLocation{config_.source, 0, 0} : server.where;
    const std::string path = server.where.file == kFlagsSource
                                 ? "--virtual " + single_quoted(server.name)
                                 : "virtual_servers." + server.name;
    const auto fail_server = [&](const SourceLocation& at, const std::string& message) {
      throw ConfigError(at.file.empty() ? where : at, path + ": " + message);
    };
    if (!is_valid_upstream_name(server.name))
      fail_server(where, "the name may only contain letters, digits, '.', '_' and '-'");
    if (!seen.emplace(server.name, &server).second)
      fail_server(where, "duplicate virtual server name " + single_quoted(server.name));
    for (const auto& upstream : config_.upstreams) {
      if (upstream.name == server.name)
        fail_server(where, "the name is already an upstream's (" + upstream.where.to_string() +
                               "); /mcp/" + server.name + " can serve only one of them");
    }
    std::map<std::string, const VirtualMemberConfig*> members;
    std::map<std::string, const VirtualMemberConfig*> prefixes;
    for (const auto& member : server.members) {
      const UpstreamConfig* upstream = nullptr;
      std::string names;
      for (const auto& candidate : config_.upstreams) {
        if (candidate.name == member.upstream) upstream = &candidate;
        names += (names.empty() ? "" : ", ") + candidate.name;
      }
      if (!upstream)
        fail_server(member.where, "upstream " + single_quoted(member.upstream) +
                                      " is not configured (upstreams: " + names + ")");
      if (!members.emplace(member.upstream, &member).second)
        fail_server(member.where,
                    "upstream " + single_quoted(member.upstream) + " is listed twice");
      const std::string prefix = member.prefix.value_or(member.upstream);
      const auto [earlier, fresh] = prefixes.emplace(prefix, &member);
      if (!fresh) {
        fail_server(member.where,
                    prefix.empty()
                        ? "upstreams " + single_quoted(earlier->second->upstream) + " and " +
                              single_quoted(member.upstream) +
                              " both publish their names without a prefix; at most one may"
                        : "upstreams " + single_quoted(earlier->second->upstream) + " and " +
                              single_quoted(member.upstream) + " share the prefix " +
                              single_quoted(prefix));
      }
    }
    // "a_" and "a_b_": a name "a_b_x" could be a's "b_x" or a_b's "x".
    for (const auto& [prefix, member] : prefixes) {
      if (prefix.empty()) continue;
      const std::string start = prefix + server.separator;
      for (const auto& [other_prefix, other] : prefixes) {
        if (other == member || other_prefix.empty()) continue;
        const std::string other_start = other_prefix + server.separator;
        if (other_start.starts_with(start)) {
          fail_server(other->where, "the names of upstream " + single_quoted(other->upstream) +
                                        " (" + single_quoted(other_start) + "…) also start with " +
                                        single_quoted(start) + ", the prefix of upstream " +
                                        single_quoted(member->upstream) +
                                        "; give one of them another prefix");
        }
      }
    }
    std::map<std::string, std::string> published;  // renamed name -> "upstream's tool"
    for (const auto& member : server.members) {
      for (const auto& [tool, name] : member.rename) {
        const std::string owner = "tool " + single_quoted(tool) + " of " + member.upstream;
        const auto [earlier, fresh] = published.emplace(name, owner);
        if (!fresh)
          fail_server(member.where, owner + " is renamed " + single_quoted(name) +
                                        ", which is already the name of " + earlier->second);
        for (const auto& [prefix, other] : prefixes) {
          if (prefix.empty()) continue;
          if (name.starts_with(prefix + server.separator))
            fail_server(member.where,
                        owner + " is renamed " + single_quoted(name) + ", which starts with " +
                            single_quoted(prefix + server.separator) + ", where the names of " +
                            other->upstream + " are published");
        }
      }
    }
  }
}

void Validator::check_listener() const {
  try {
    parse_listen_host(config_.listen.host);
  } catch (const InvalidValue& problem) {
    fail("listen", "--listen", config_.listen.host, problem.what());
  }
  if (const auto& tls = config_.listen.tls) {
    if (tls->certificate_file.empty() || tls->private_key_file.empty()) {
      fail("listen.tls", "--tls-cert", "", "TLS needs both a certificate and a private key");
    }
    check_readable("listen.tls.certificate", "--tls-cert", tls->certificate_file,
                   "TLS certificate");
    check_readable("listen.tls.private_key", "--tls-key", tls->private_key_file, "TLS private key");
  }
}

void Validator::check_console() const {
  const auto& console = config_.console;
  if (!console.enabled) return;
  if (!config_.admin) {
    fail("console", "", "",
         "the console is served on the admin listener: set 'admin' (e.g. \"127.0.0.1:9090\")");
  }
  if (!console.auth && !config_.auth.enabled() && console.token_key_file.empty()) {
    fail("console", "", "",
         "the console needs a way to check who opens it: 'console.auth', the gateway's 'auth', "
         "or 'console.token_key_file' (a local issuer)");
  }
  if (config_.audit.file.empty() && console.audit_files.empty()) {
    fail("console", "", "",
         "the console shows the audit trail: set 'audit.file' (or 'console.audit_files')");
  }
  if (console.audit_scope.find_first_of(" \t") != std::string::npos ||
      console.approve_scope.find_first_of(" \t") != std::string::npos) {
    fail("console", "", "", "a scope is one word (no spaces)");
  }
}

void Validator::check_security() const {
  const auto& security = config_.security;
  for (std::size_t index = 0; index < security.allowed_origins.size(); ++index) {
    try {
      check_origin(security.allowed_origins[index]);
    } catch (const InvalidValue& problem) {
      fail("security.allowed_origins[" + std::to_string(index) + "]", "--allow-origin",
           security.allowed_origins[index], problem.what());
    }
  }
  for (std::size_t index = 0; index < security.allowed_hosts.size(); ++index) {
    try {
      check_allowed_host(security.allowed_hosts[index]);
    } catch (const InvalidValue& problem) {
      fail("security.allowed_hosts[" + std::to_string(index) + "]", "--allow-host",
           security.allowed_hosts[index], problem.what());
    }
  }
}

void Validator::check_session_and_timeouts() const {
  const auto& session = config_.session;
  if (!session.key_file.empty()) {
    check_readable("session.key_file", "--session-key-file", session.key_file, "session key file");
  }
  if (session.max_age.count() <= 0) fail("session.max_age", "", "", "must be greater than zero");

  const auto& timeouts = config_.timeouts;
  if (timeouts.stdio_restart_backoff_initial > timeouts.stdio_restart_backoff_max) {
    fail("timeouts.stdio_restart_backoff_initial", "", "",
         "must not exceed timeouts.stdio_restart_backoff_max (" +
             std::to_string(timeouts.stdio_restart_backoff_max.count()) + "ms)");
  }
}

void validate_with_locations(const Config& config, const LocationTable* locations) {
  Validator(config, locations).run();
}

}  // namespace

Config load_config_text(const std::string& yaml_text, const std::string& source_name) {
  if (const auto crossing = yaml_nesting::first_crossing(yaml_text)) {
    throw ConfigError(SourceLocation{source_name, static_cast<int>(crossing->line), 1},
                      yaml_nesting::describe(*crossing));
  }
  yaml_documents::SingleDocument document;
  try {
    document = yaml_documents::load_first(yaml_text);
  } catch (const YAML::Exception& error) {
    const SourceLocation where =
        error.mark.line < 0
            ? SourceLocation{source_name, 0, 0}
            : SourceLocation{source_name, error.mark.line + 1, error.mark.column + 1};
    throw ConfigError(where, "YAML syntax error: " + error.msg);
  }
  if (const auto& extra = document.extra_document) {
    throw ConfigError(SourceLocation{source_name, std::max(extra->line, 0) + 1, 1},
                      "only one YAML document is allowed; remove the extra '---' section");
  }
  config_reading::ConfigReader reader(source_name);
  Config config = reader.read(document.root);
  validate_with_locations(config, &reader.locations());
  return config;
}

Config load_config_file(const std::string& path) {
  const SourceLocation file_itself{path, 0, 0};
  if (const auto problem = why_unreadable(path)) {
    throw ConfigError(file_itself, "cannot read config file: " + *problem);
  }
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad())
    throw ConfigError(file_itself, "cannot read config file: " + std::string(std::strerror(errno)));
  return load_config_text(text.str(), path);
}

UpstreamConfig parse_upstream_flag(const std::string& value) {
  const auto fail = [&](const std::string& message) -> ConfigError {
    return ConfigError(flags_location(), "--upstream " + single_quoted(value) + ": " + message);
  };
  const std::size_t equals = value.find('=');
  if (equals == std::string::npos) {
    throw fail("expected NAME=URL or NAME=stdio:COMMAND ARGS...");
  }
  UpstreamConfig upstream;
  upstream.name = value.substr(0, equals);
  upstream.where = flags_location();
  const std::string target = value.substr(equals + 1);
  try {
    check_upstream_name(upstream.name);
    static constexpr std::string_view kStdioPrefix = "stdio:";
    if (target.starts_with(kStdioPrefix)) {
      std::vector<std::string> words = split_command_line(target.substr(kStdioPrefix.size()));
      if (words.empty()) throw InvalidValue("stdio: needs a command, e.g. stdio:node server.js");
      StdioUpstreamConfig stdio;
      stdio.command = std::move(words.front());
      stdio.args.assign(std::make_move_iterator(words.begin() + 1),
                        std::make_move_iterator(words.end()));
      upstream.transport = std::move(stdio);
    } else {
      if (target.empty()) throw InvalidValue("expected a URL or stdio:COMMAND after '='");
      HttpUpstreamConfig http;
      http.url = normalized_http_url(target, "http, https or stdio:");
      upstream.transport = std::move(http);
    }
  } catch (const InvalidValue& problem) {
    throw fail(problem.what());
  }
  return upstream;
}

VirtualServerConfig parse_virtual_flag(const std::string& value) {
  const auto fail = [&](const std::string& message) -> ConfigError {
    return ConfigError(flags_location(), "--virtual " + single_quoted(value) + ": " + message);
  };
  const std::size_t equals = value.find('=');
  if (equals == std::string::npos) throw fail("expected NAME=UPSTREAM,UPSTREAM...");
  VirtualServerConfig server;
  server.name = value.substr(0, equals);
  server.where = flags_location();
  try {
    check_upstream_name(server.name);
  } catch (const InvalidValue& problem) {
    throw fail(problem.what());
  }
  std::string_view members = std::string_view(value).substr(equals + 1);
  while (!members.empty()) {
    const std::size_t comma = members.find(',');
    VirtualMemberConfig member;
    member.upstream = std::string(members.substr(0, comma));
    member.where = server.where;
    if (member.upstream.empty()) throw fail("an upstream name is empty");
    server.members.push_back(std::move(member));
    members = comma == std::string_view::npos ? std::string_view() : members.substr(comma + 1);
    if (comma != std::string_view::npos && members.empty()) throw fail("an upstream name is empty");
  }
  if (server.members.empty()) throw fail("expected at least one upstream after '='");
  return server;
}

ListenerConfig parse_listen_flag(const std::string& value) {
  try {
    return parse_host_port(value);
  } catch (const InvalidValue& problem) {
    throw ConfigError(flags_location(), "--listen " + single_quoted(value) + ": " + problem.what());
  }
}

void validate(const Config& config) {
  validate_with_locations(config, nullptr);
}

Milliseconds parse_duration_flag(std::string_view flag, const std::string& text) {
  try {
    return parse_duration(text, true);
  } catch (const InvalidValue& problem) {
    throw ConfigError(SourceLocation{"<flags>", 0, 0}, std::string(flag) + ": " + problem.what());
  }
}

void set_redis_url_flag(const std::string& text, ClusterConfig& cluster) {
  std::string error;
  const auto url = cluster::RedisUrl::parse(text, error);
  if (!url) throw ConfigError(SourceLocation{"<flags>", 0, 0}, "--redis: " + error);
  if (!url->password.empty()) {
    throw ConfigError(SourceLocation{"<flags>", 0, 0},
                      "--redis: the URL holds a password; set $" + cluster.redis_password_env +
                          " instead (command lines are visible to every local user)");
  }
  cluster.redis_url = text;
}

}  // namespace membrane::app
