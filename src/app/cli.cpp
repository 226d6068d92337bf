// Command-line parsing for `membrane`. The flag syntax is a public interface (scripts depend on
// it), so every flag is declared once in a table and the usage text documents the same set.
#include "membrane/app/cli.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <optional>
#include <string_view>

namespace membrane::app {

namespace {

// The value after flag args[i]; `i` moves onto it. A flag at the end is a usage error.
const std::string& flag_value(const std::vector<std::string>& args, std::size_t& i) {
  if (i + 1 >= args.size()) throw UsageError(args[i] + " needs a value");
  return args[++i];
}

struct FlagSpec {
  std::string_view name;   // long form, e.g. "--listen"
  std::string_view alias;  // short form ("-c"), or empty
  bool repeatable;
  std::string_view value_example;  // shown when the value is missing
};

constexpr std::array kServeFlags{
    FlagSpec{"--config", "-c", false, "membrane.yaml"},
    FlagSpec{"--listen", "", false, "127.0.0.1:8080"},
    FlagSpec{"--upstream", "", true, "NAME=URL"},
    FlagSpec{"--virtual", "", true, "NAME=UPSTREAM,UPSTREAM"},
    FlagSpec{"--default-upstream", "", false, "NAME"},
    FlagSpec{"--tls-cert", "", false, "cert.pem"},
    FlagSpec{"--tls-key", "", false, "key.pem"},
    FlagSpec{"--session-key-file", "", false, "session.key"},
    FlagSpec{"--session-ended-file", "", false, "ended-sessions.txt"},
    FlagSpec{"--allow-origin", "", true, "https://app.example.com"},
    FlagSpec{"--allow-host", "", true, "mcp.example.com"},
    FlagSpec{"--workers", "", false, "4"},
    FlagSpec{"--log-level", "", false, "info"},
    FlagSpec{"--policy", "", true, "policies/default"},
    FlagSpec{"--policy-mode", "", false, "enforce"},
    FlagSpec{"--jwks", "", false, "issuer-jwks.json"},
    FlagSpec{"--issuer", "", false, "https://issuer.example.com"},
    FlagSpec{"--audience", "", true, "https://mcp.example.com"},
    FlagSpec{"--txn-key", "", false, "txn-key.json"},
    FlagSpec{"--audit-log", "", false, "audit.log"},
    FlagSpec{"--admin", "", false, "127.0.0.1:9090"},
    FlagSpec{"--otlp-endpoint", "", false, "http://127.0.0.1:4318"},
    FlagSpec{"--redis", "", false, "redis://127.0.0.1:6379"},
    FlagSpec{"--shutdown-delay", "", false, "5s"},
};

constexpr std::array kConfigCheckFlags{
    FlagSpec{"--config", "-c", false, "membrane.yaml"},
};

constexpr std::array kInjectFlags{
    FlagSpec{"--listen", "", false, "0.0.0.0:8443"},
    FlagSpec{"--tls-cert", "", false, "tls.crt"},
    FlagSpec{"--tls-key", "", false, "tls.key"},
    FlagSpec{"--config", "-c", false, "inject.yaml"},
    FlagSpec{"--log-level", "", false, "info"},
};

// Flags that only make sense without a config file: the file has its own place for each.
constexpr std::array<std::pair<std::string_view, std::string_view>, 20> kFlagsExcludedByConfig{{
    {"--default-upstream", "set default_upstream in the config file instead"},
    {"--redis", "set cluster.redis.url in the config file instead"},
    {"--shutdown-delay", "set timeouts.shutdown_delay in the config file instead"},
    {"--otlp-endpoint", "set otel.endpoint in the config file instead"},
    {"--admin", "set admin in the config file instead"},
    {"--audit-log", "set audit.file in the config file instead"},
    {"--txn-key", "set txn.key_file in the config file instead"},
    {"--jwks", "set auth.jwks in the config file instead"},
    {"--issuer", "set auth.issuer in the config file instead"},
    {"--audience", "set auth.audience in the config file instead"},
    {"--policy", "set policy.paths in the config file instead"},
    {"--policy-mode", "set policy.mode in the config file instead"},
    {"--upstream", "upstreams come from the config file; add them under 'upstreams:' there"},
    {"--virtual", "set virtual_servers in the config file instead"},
    {"--tls-cert", "set listen.tls.certificate in the config file instead"},
    {"--tls-key", "set listen.tls.private_key in the config file instead"},
    {"--session-key-file", "set session.key_file in the config file instead"},
    {"--session-ended-file", "set session.ended_file in the config file instead"},
    {"--allow-origin", "set security.allowed_origins in the config file instead"},
    {"--allow-host", "set security.allowed_hosts in the config file instead"},
}};

// Values by the flag's long name, in command-line order.
using FlagValues = std::map<std::string_view, std::vector<std::string>>;

struct ParsedFlags {
  FlagValues values;
  bool help_requested = false;
};

bool is_help_flag(std::string_view arg) {
  return arg == "--help" || arg == "-h";
}

template <std::size_t N>
ParsedFlags parse_flags(const std::vector<std::string>& args, std::size_t first,
                        const std::array<FlagSpec, N>& specs, std::string_view command) {
  ParsedFlags parsed;
  for (std::size_t index = first; index < args.size(); ++index) {
    const std::string& arg = args[index];
    if (is_help_flag(arg)) {
      parsed.help_requested = true;
      continue;
    }
    if (!arg.starts_with("-") || arg == "-") {
      throw UsageError("unexpected argument '" + arg + "' for '" + std::string(command) +
                       "' (see 'membrane help')");
    }
    // `--flag=value` and `--flag value` are equivalent; short flags only take the second form.
    std::string_view name = arg;
    std::optional<std::string> inline_value;
    if (const std::size_t equals = arg.find('=');
        arg.starts_with("--") && equals != std::string::npos) {
      name = std::string_view(arg).substr(0, equals);
      inline_value = arg.substr(equals + 1);
    }
    const auto spec = std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& candidate) {
      return candidate.name == name || (!candidate.alias.empty() && candidate.alias == name);
    });
    if (spec == specs.end()) {
      throw UsageError("unknown flag '" + std::string(name) + "' for '" + std::string(command) +
                       "' (see 'membrane help')");
    }
    std::string value;
    if (inline_value) {
      value = std::move(*inline_value);
    } else if (index + 1 < args.size() && !args[index + 1].starts_with("--")) {
      value = args[++index];
    } else {
      throw UsageError(std::string(spec->name) + " needs a value, e.g. " + std::string(spec->name) +
                       " " + std::string(spec->value_example));
    }
    auto& values = parsed.values[spec->name];
    if (!spec->repeatable && !values.empty()) {
      throw UsageError(std::string(spec->name) + " given more than once");
    }
    values.push_back(std::move(value));
  }
  return parsed;
}

std::optional<std::string> single_value(const FlagValues& values, std::string_view flag) {
  const auto found = values.find(flag);
  if (found == values.end()) return std::nullopt;
  return found->second.front();
}

std::vector<std::string> all_values(const FlagValues& values, std::string_view flag) {
  const auto found = values.find(flag);
  return found == values.end() ? std::vector<std::string>{} : found->second;
}

unsigned parse_worker_count(const std::string& text) {
  unsigned workers = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), workers);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    throw ConfigError(
        SourceLocation{"<flags>", 0, 0},
        "--workers '" + text + "': expected a whole number of threads (0 = one per CPU core)");
  }
  return workers;  // the upper bound is checked by validate()
}

// Settings that may come from the command line even when a config file is used.
void apply_overrides(const FlagValues& values, Config& config) {
  if (const auto listen = single_value(values, "--listen")) {
    ListenerConfig listener = parse_listen_flag(*listen);
    listener.tls = config.listen.tls;  // --listen moves the address; TLS stays as configured
    config.listen = std::move(listener);
  }
  if (const auto workers = single_value(values, "--workers")) {
    config.worker_threads = parse_worker_count(*workers);
  }
  if (const auto level = single_value(values, "--log-level")) config.log_level = *level;
}

Config config_from_flags(const FlagValues& values) {
  Config config;
  config.source = "<flags>";
  const auto upstreams = all_values(values, "--upstream");
  if (upstreams.empty()) {
    throw UsageError(
        "membrane serve needs either -c FILE or at least one --upstream NAME=URL "
        "(see 'membrane serve --help')");
  }
  for (const auto& upstream : upstreams)
    config.upstreams.push_back(parse_upstream_flag(upstream));
  for (const auto& server : all_values(values, "--virtual"))
    config.virtual_servers.push_back(parse_virtual_flag(server));
  if (const auto fallback = single_value(values, "--default-upstream"))
    config.default_upstream = *fallback;

  const auto certificate = single_value(values, "--tls-cert");
  const auto private_key = single_value(values, "--tls-key");
  if (certificate.has_value() != private_key.has_value()) {
    throw UsageError(certificate ? "--tls-cert needs --tls-key as well"
                                 : "--tls-key needs --tls-cert as well");
  }
  if (certificate) config.listen.tls = TlsListenerConfig{*certificate, *private_key};
  if (const auto key_file = single_value(values, "--session-key-file")) {
    config.session.key_file = *key_file;
  }
  if (const auto ended_file = single_value(values, "--session-ended-file")) {
    config.session.ended_file = *ended_file;
  }
  config.security.allowed_origins = all_values(values, "--allow-origin");
  config.security.allowed_hosts = all_values(values, "--allow-host");
  config.policy.paths = all_values(values, "--policy");
  if (const auto mode = single_value(values, "--policy-mode")) {
    if (*mode != "enforce" && *mode != "shadow") {
      throw UsageError("--policy-mode must be enforce or shadow, got '" + *mode + "'");
    }
    if (config.policy.paths.empty()) throw UsageError("--policy-mode needs --policy PATH");
    config.policy.shadow = *mode == "shadow";
  }
  const auto jwks = single_value(values, "--jwks");
  const auto issuer = single_value(values, "--issuer");
  const auto audiences = all_values(values, "--audience");
  if (jwks || issuer || !audiences.empty()) {
    if (!jwks || !issuer || audiences.empty()) {
      throw UsageError("authorization needs --jwks FILE, --issuer ISS and --audience AUD together");
    }
    config.auth.jwks = *jwks;
    config.auth.issuer = *issuer;
    config.auth.audiences = audiences;
  }
  if (const auto txn_key = single_value(values, "--txn-key")) config.txn.key_file = *txn_key;
  if (const auto audit_log = single_value(values, "--audit-log")) config.audit.file = *audit_log;
  if (const auto admin = single_value(values, "--admin")) config.admin = parse_listen_flag(*admin);
  if (const auto otlp = single_value(values, "--otlp-endpoint")) config.otel.endpoint = *otlp;
  if (const auto redis = single_value(values, "--redis"))
    set_redis_url_flag(*redis, config.cluster);
  if (const auto delay = single_value(values, "--shutdown-delay"))
    config.timeouts.shutdown_delay = parse_duration_flag("--shutdown-delay", *delay);
  return config;
}

CommandLine parse_serve(const std::vector<std::string>& args) {
  const ParsedFlags parsed = parse_flags(args, 1, kServeFlags, "membrane serve");
  if (parsed.help_requested) return CommandLine{Verb::help, {}, {}};

  CommandLine command_line{Verb::serve, {}, {}};
  if (const auto config_file = single_value(parsed.values, "--config")) {
    for (const auto& [flag, reason] : kFlagsExcludedByConfig) {
      if (parsed.values.contains(flag)) {
        throw UsageError(std::string(flag) +
                         " cannot be combined with -c/--config: " + std::string(reason));
      }
    }
    command_line.config = load_config_file(*config_file);
  } else {
    command_line.config = config_from_flags(parsed.values);
  }
  apply_overrides(parsed.values, command_line.config);
  validate(command_line.config);
  return command_line;
}

CommandLine parse_config_command(const std::vector<std::string>& args) {
  if (args.size() < 2 || is_help_flag(args[1])) {
    if (args.size() >= 2) return CommandLine{Verb::help, {}, {}};
    throw UsageError("'membrane config' needs a subcommand: membrane config check -c FILE");
  }
  if (args[1] != "check") {
    throw UsageError("unknown subcommand 'membrane config " + args[1] +
                     "' (the only one is: membrane config check -c FILE)");
  }
  const ParsedFlags parsed = parse_flags(args, 2, kConfigCheckFlags, "membrane config check");
  if (parsed.help_requested) return CommandLine{Verb::help, {}, {}};
  const auto config_file = single_value(parsed.values, "--config");
  if (!config_file) throw UsageError("membrane config check needs -c FILE");
  return CommandLine{Verb::check_config, load_config_file(*config_file), {}};  // also validates
}

CommandLine parse_inject_command(const std::vector<std::string>& args) {
  const ParsedFlags parsed = parse_flags(args, 1, kInjectFlags, "membrane inject");
  if (parsed.help_requested) return CommandLine{Verb::help, {}, {}};
  const auto listen = single_value(parsed.values, "--listen");
  if (!listen) {
    throw UsageError("membrane inject needs --listen HOST:PORT (in a pod: --listen 0.0.0.0:8443)");
  }
  const auto certificate = single_value(parsed.values, "--tls-cert");
  const auto private_key = single_value(parsed.values, "--tls-key");
  if (!certificate || !private_key) {
    throw UsageError(
        "membrane inject needs --tls-cert FILE and --tls-key FILE: the Kubernetes API server "
        "calls admission webhooks only over HTTPS");
  }
  CommandLine command_line{Verb::inject, {}, {}};
  auto& options = command_line.inject;
  const ListenerConfig listener = parse_listen_flag(*listen);
  options.host = listener.host;
  options.port = listener.port;
  options.certificate_file = *certificate;
  options.private_key_file = *private_key;
  if (const auto level = single_value(parsed.values, "--log-level")) {
    if (*level != "error" && *level != "warn" && *level != "info" && *level != "debug") {
      throw UsageError("--log-level must be error, warn, info or debug, got '" + *level + "'");
    }
    options.log_level = *level;
  }
  if (const auto config_file = single_value(parsed.values, "--config")) {
    try {
      options.injector = inject::load_injector_config_file(*config_file);
    } catch (const inject::InjectorConfigError& error) {
      throw ConfigError(SourceLocation{error.file(), error.line(), error.column()},
                        error.message());
    }
  }
  return command_line;
}

CommandLine parse_token_command(const std::vector<std::string>& args) {
  const std::string subcommand = args.size() > 1 ? args[1] : "";
  CommandLine command_line;
  if (subcommand == "mint") {
    command_line.verb = Verb::token_mint;
  } else if (subcommand == "verify") {
    command_line.verb = Verb::token_verify;
  } else {
    throw UsageError(
        "'membrane token' needs a subcommand: membrane token mint --key FILE ..., "
        "membrane token verify TOKEN|- --jwks FILE ...");
  }
  auto& token = command_line.token;
  for (std::size_t i = 2; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--key" && subcommand == "mint") {
      token.key_file = flag_value(args, i);
    } else if (flag == "--jwks" && subcommand == "verify") {
      token.jwks_file = flag_value(args, i);
    } else if (flag == "--sub" && subcommand == "mint") {
      token.subject = flag_value(args, i);
    } else if (flag == "--issuer" || flag == "--iss") {
      token.issuer = flag_value(args, i);
    } else if (flag == "--audience" || flag == "--aud") {
      token.audiences.push_back(flag_value(args, i));
    } else if (flag == "--typ") {
      token.type = flag_value(args, i);
    } else if (flag == "--claims" && subcommand == "mint") {
      token.claims_json = flag_value(args, i);
    } else if (flag == "--lifetime" && subcommand == "mint") {
      const std::string& text = flag_value(args, i);
      std::size_t digits = 0;
      while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
        ++digits;
      const std::string unit = text.substr(digits);
      const long scale = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
      if (digits == 0 || digits > 6 || scale == 0)
        throw UsageError("--lifetime needs a duration like 90s, 5m or 1h, got '" + text + "'");
      token.lifetime_seconds = std::stol(text.substr(0, digits)) * scale;
    } else if (subcommand == "verify" && token.token.empty() && (flag == "-" || flag[0] != '-')) {
      token.token = flag;
    } else {
      throw UsageError("unknown flag '" + flag + "' for membrane token " + subcommand);
    }
  }
  if (subcommand == "mint" && token.key_file.empty())
    throw UsageError("membrane token mint needs --key FILE");
  if (subcommand == "verify" && token.jwks_file.empty())
    throw UsageError("membrane token verify needs --jwks FILE");
  if (subcommand == "verify" && token.token.empty())
    throw UsageError("membrane token verify needs the token (or - to read it from stdin)");
  return command_line;
}

CommandLine parse_policy_command(const std::vector<std::string>& args) {
  constexpr std::string_view subcommands =
      "membrane policy check FILE|DIR..., membrane policy test [-p RULES] PATH, "
      "membrane policy explain -p FILE --call JSON [--format json], "
      "membrane policy pin --pins FILE [--server NAME] [--prune] RECORDING...";
  if (args.size() < 2)
    throw UsageError("'membrane policy' needs a subcommand: " + std::string(subcommands));
  if (is_help_flag(args[1])) return CommandLine{Verb::help, {}, {}};
  CommandLine command_line{Verb::help, {}, {}};
  const std::string& subcommand = args[1];
  if (subcommand == "test") {
    command_line.verb = Verb::policy_test;
    std::vector<std::string> rules;
    std::vector<std::string> cases;
    for (std::size_t i = 2; i < args.size(); ++i) {
      if (args[i] == "-p" || args[i] == "--policy") {
        if (i + 1 >= args.size()) throw UsageError(args[i] + " needs a FILE or DIR of rules");
        rules.push_back(args[++i]);
      } else {
        cases.push_back(args[i]);
      }
    }
    if (cases.empty()) throw UsageError("membrane policy test needs at least one FILE or DIR");
    if (rules.empty()) {
      command_line.policy_paths = std::move(cases);
    } else {
      command_line.policy_paths = std::move(rules);
      command_line.case_paths = std::move(cases);
    }
    return command_line;
  }
  if (subcommand == "check") {
    command_line.verb = Verb::policy_check;
    command_line.policy_paths.assign(args.begin() + 2, args.end());
    if (command_line.policy_paths.empty()) {
      throw UsageError("membrane policy " + subcommand + " needs at least one FILE or DIR");
    }
    return command_line;
  }
  if (subcommand == "pin") {
    command_line.verb = Verb::policy_pin;
    for (std::size_t i = 2; i < args.size(); ++i) {
      const std::string& flag = args[i];
      if (flag == "--pins")
        command_line.pin.pins_file = flag_value(args, i);
      else if (flag == "--server")
        command_line.pin.server = flag_value(args, i);
      else if (flag == "--prune")
        command_line.pin.prune = true;
      else if (flag.starts_with("-") && flag != "-")
        throw UsageError("unknown flag '" + flag + "' for membrane policy pin");
      else
        command_line.policy_paths.push_back(flag);
    }
    if (command_line.pin.pins_file.empty())
      throw UsageError("membrane policy pin needs --pins FILE");
    if (command_line.policy_paths.empty())
      throw UsageError("membrane policy pin needs a tools/list recording (a file, or - for stdin)");
    return command_line;
  }
  if (subcommand != "explain") {
    throw UsageError("unknown subcommand 'membrane policy " + subcommand +
                     "' (available: " + std::string(subcommands) + ")");
  }
  command_line.verb = Verb::policy_explain;
  for (std::size_t i = 2; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "-p" || flag == "--policy")
      command_line.policy_paths.push_back(flag_value(args, i));
    else if (flag == "--call")
      command_line.policy_call = flag_value(args, i);
    else if (flag == "--format") {
      const std::string& format = flag_value(args, i);
      if (format != "json" && format != "text")
        throw UsageError("--format must be json or text, got '" + format + "'");
      command_line.json_output = format == "json";
    } else {
      throw UsageError("unknown flag '" + flag + "' for membrane policy explain");
    }
  }
  if (command_line.policy_paths.empty()) throw UsageError("membrane policy explain needs -p FILE");
  if (command_line.policy_call.empty())
    throw UsageError("membrane policy explain needs --call JSON");
  return command_line;
}

}  // namespace

CommandLine parse_command_line(const std::vector<std::string>& args) {
  if (args.empty()) return CommandLine{Verb::help, {}, {}};
  const std::string& verb = args.front();
  // Asking for help never fails, whatever follows.
  if (verb == "help" || is_help_flag(verb)) return CommandLine{Verb::help, {}, {}};
  if (verb == "version" || verb == "--version") {
    if (args.size() > 1) throw UsageError("unexpected argument '" + args[1] + "' after " + verb);
    return CommandLine{Verb::version, {}, {}};
  }
  if (verb == "serve") return parse_serve(args);
  if (verb == "config") return parse_config_command(args);
  if (verb == "policy") return parse_policy_command(args);
  if (verb == "token") return parse_token_command(args);
  if (verb == "inject") return parse_inject_command(args);
  if (verb == "audit") {
    const std::string subcommand = args.size() > 1 ? args[1] : "";
    if (subcommand != "verify" && subcommand != "query") {
      throw UsageError(
          "'membrane audit' needs a subcommand: membrane audit verify [--jwks FILE] FILE..., "
          "membrane audit query FILE... [--txn T] [--identity S] [--tool T] [--verdict V] "
          "[--upstream U] [--rule R] [--since TIME] [--until TIME] [--format json|table]");
    }
    CommandLine command_line(subcommand == "verify" ? Verb::audit_verify : Verb::audit_query);
    auto& query = command_line.audit_query;
    const std::map<std::string, std::string*> query_flags = {
        {"--txn", &query.txn},           {"--identity", &query.identity}, {"--tool", &query.tool},
        {"--verdict", &query.verdict},   {"--since", &query.since},       {"--until", &query.until},
        {"--upstream", &query.upstream}, {"--rule", &query.rule}};
    for (std::size_t i = 2; i < args.size(); ++i) {
      const std::string& flag = args[i];
      if (flag == "--jwks" && subcommand == "verify") {
        command_line.token.jwks_file = flag_value(args, i);
      } else if (const auto it = query_flags.find(flag);
                 it != query_flags.end() && subcommand == "query") {
        *it->second = flag_value(args, i);
      } else if (flag == "--format" && subcommand == "query") {
        const std::string& format = flag_value(args, i);
        if (format != "json" && format != "table")
          throw UsageError("--format must be json or table, got '" + format + "'");
        command_line.json_output = format == "json";
      } else if (!flag.empty() && flag[0] == '-') {
        throw UsageError("unknown flag '" + flag + "' for membrane audit " + subcommand);
      } else {
        command_line.policy_paths.push_back(flag);
      }
    }
    if (command_line.policy_paths.empty())
      throw UsageError("membrane audit " + subcommand + " needs the audit log FILE(s)");
    return command_line;
  }
  if (verb.starts_with("-")) {
    throw UsageError("flags go after the command, e.g. 'membrane serve " + verb +
                     " ...' (unknown flag '" + verb + "' here)");
  }
  throw UsageError("unknown command '" + verb +
                   "' (use serve, config check, policy, token, audit, inject, version or help)");
}

std::string usage_text() {
  return R"(Membrane: a gateway in front of MCP servers (Streamable HTTP and stdio upstreams).

Usage:
  membrane serve -c FILE [--listen ADDR] [--workers N] [--log-level LEVEL]
  membrane serve --upstream NAME=TARGET [--upstream NAME=TARGET]... [options]
  membrane config check -c FILE
  membrane policy check FILE|DIR...   type-check policy files; exit 1 with file:line:col
  membrane policy test PATH...        run the *.test.yaml cases under PATH against its policy
  membrane policy test -p RULES PATH...
                                      run the cases under PATH against the rules in RULES;
                                      labelled cases are reported per area (recall, false
                                      positives)
  membrane policy explain -p FILE --call JSON [--format json]
                                      the verdict for one call, every rule that held and
                                      the call's views (call.paths, call.commands, …)
  membrane policy pin --pins FILE [--server NAME] [--prune] RECORDING...
                                      pin each tool of a tools/list recording (a file or -):
                                      write its digest to FILE, report what changed
  membrane token mint --key FILE [--sub S] [--iss I] [--aud A]... [--typ T]
                      [--lifetime 5m] [--claims JSON]
                                      sign a JWT with a private JWK (tests and demos)
  membrane token verify TOKEN|- --jwks FILE [--issuer I] [--audience A] [--typ T]
                                      check a token; print its claims or why it is invalid
  membrane audit verify [--jwks FILE] FILE...
                                      check an audit log's hash chain (and, with the key,
                                      its signed checkpoints); exit 1 naming the first
                                      broken line
  membrane audit query FILE... [--txn T] [--identity S] [--tool T] [--verdict V]
                      [--upstream U] [--rule R] [--since TIME] [--until TIME]
                      [--format json|table]
                                      the records that match, oldest first
  membrane inject --listen ADDR --tls-cert FILE --tls-key FILE [-c FILE] [--log-level LEVEL]
                                      the Kubernetes sidecar injector: a mutating admission
                                      webhook at POST /mutate (HTTPS), plus GET /healthz
  membrane version | --version
  membrane help | --help | serve --help

Commands:
  serve               Run the gateway. Each upstream is served at /mcp/NAME.
  config check        Load and validate FILE, print "ok" or the first problem as
                      FILE:LINE:COL: message, and exit non-zero on a problem.
  version             Print the version.
  help                Print this text.

Options for serve (every flag also accepts --flag=value):
  -c, --config FILE         YAML configuration file (see examples/membrane.yaml).
                            Can be combined with --listen, --workers and --log-level,
                            which override the file; not with the other flags below,
                            whose settings belong in the file.
  --listen ADDR             Address to listen on: HOST:PORT, [IPV6]:PORT or :PORT.
                            HOST is an IP address or localhost. Default 127.0.0.1:8080;
                            :PORT keeps host 127.0.0.1; port 0 picks a free port.
                            With -c, TLS settings from the file still apply.
  --upstream NAME=TARGET    An upstream MCP server, repeatable; required without -c.
                            NAME uses letters, digits, '.', '_' and '-'. TARGET is
                              http://HOST[:PORT]/PATH or https://...   (HTTP upstream)
                              stdio:COMMAND ARGS...                     (child process)
                            COMMAND ARGS are split on whitespace; "double" and 'single'
                            quotes group words and a backslash escapes a character.
                            Quote the whole flag for your shell, e.g.
                              --upstream 'files=stdio:npx -y server-files "/my docs"'
  --virtual NAME=UP,UP...   Publish those upstreams as one server at /mcp/NAME, each
                            tool and prompt under its upstream's name as a prefix
                            (UP_tool); repeatable. Filters, renames and the rest are
                            in the config file: docs/virtual-servers.md.
  --tls-cert FILE           PEM certificate chain: serve HTTPS (needs --tls-key).
  --tls-key FILE            PEM private key for --tls-cert.
  --session-key-file FILE   Secret that session ids are sealed with. Without it the
                            key comes from $MEMBRANE_SESSION_KEY, else it is random
                            and sessions do not survive a restart.
  --session-ended-file FILE Remembers session ids ended with DELETE across restarts, so
                            they stay dead (with a fixed session key).
  --allow-origin ORIGIN     Allowed browser Origin, repeatable, e.g.
                            https://app.example.com or http://localhost:* (any port).
                            Default: loopback origins only.
  --allow-host HOST         Allowed Host header, repeatable, e.g. mcp.example.com or
                            mcp.example.com:8443. Default: loopback names when
                            listening on loopback, any host otherwise.
  --default-upstream NAME   Also serve upstream NAME at /mcp and /sse, for clients that
                            cannot use a path of their own.
  --workers N               Worker threads; 0 (default) = one per CPU core.
  --log-level LEVEL         error, warn, info (default) or debug.
  --policy PATH             Policy file or directory (every *.yaml in it), repeatable;
                            policies/default is the shipped ruleset.
  --policy-mode MODE        enforce (default: denials block the call) or shadow
                            (decisions are logged, nothing is blocked).
  --jwks FILE               Require OAuth bearer tokens: the issuer's keys (a JWKS file).
  --issuer ISS              ...the tokens' issuer (`iss`)...
  --audience AUD            ...and the gateway's resource URL they must be for (`aud`),
                            repeatable. The three go together.
  --audit-log FILE          Append a tamper-evident audit line per request to FILE.
  --admin HOST:PORT         Serve /metrics (Prometheus), /healthz and /readyz there.
  --otlp-endpoint URL       Export a span per request and upstream hop (OTLP/HTTP JSON).
  --txn-key FILE            Mint a transaction token (Txn-Token) for every tool call, signed
                            with the key in FILE (created when missing); trust domain
                            "membrane". Public keys: /.well-known/jwks.json.
  --redis URL               Keep rate-limit buckets in Redis, shared by every replica,
                            and pass approval answers between replicas:
                            redis://HOST[:PORT][/DB]; the password comes from
                            $MEMBRANE_REDIS_PASSWORD.
  --shutdown-delay DURATION On SIGTERM, keep accepting this long (e.g. 5s) while /readyz
                            answers 503, then drain. Default 0s.
  -h, --help                Print this text.

Options for inject:
  --listen ADDR             Address of the webhook, e.g. 0.0.0.0:8443 (required).
  --tls-cert FILE           PEM certificate chain the API server trusts (required).
  --tls-key FILE            PEM private key for --tls-cert (required).
  -c, --config FILE         YAML injector config: sidecar image, resources, default port,
                            policy ConfigMap, namespaces, on_error (allow | deny).
                            Without it the defaults apply (see docs/kubernetes.md).
  --log-level LEVEL         error, warn, info (default) or debug.
  Pods opt in with the annotation (or label) membrane.dev/inject: "true" and name what
  the sidecar fronts with membrane.dev/upstream: http://127.0.0.1:3000/mcp.

Examples:
  membrane serve -c examples/membrane.yaml
  membrane serve --upstream everything=http://127.0.0.1:3001/mcp
  membrane serve --listen :9000 --upstream 'local=stdio:node server.js stdio'
  membrane config check -c membrane.yaml
  membrane inject --listen 0.0.0.0:8443 --tls-cert tls.crt --tls-key tls.key -c inject.yaml
)";
}

}  // namespace membrane::app
