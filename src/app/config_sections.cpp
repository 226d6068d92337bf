// One reader per top-level section of the config file, except the upstreams
// (config_upstreams.cpp).
#include "app/config_reader.hpp"

#include "cluster/redis_client.hpp"
#include "membrane/core/duration.hpp"
#include "membrane/core/json.hpp"

namespace membrane::app::config_reading {

using namespace config_values;

unsigned ConfigReader::read_workers(Field& field) {
  const std::uint64_t workers = read_unsigned(field, "a number of worker threads");
  if (workers > kMaxWorkerThreads) {
    fail(field, "at most " + std::to_string(kMaxWorkerThreads) +
                    " worker threads (0 = one per CPU core), got " + std::to_string(workers));
  }
  return static_cast<unsigned>(workers);
}

std::string ConfigReader::read_log_level(Field& field) {
  return parse_scalar(field, "a log level", [](const std::string& text) {
    check_log_level(text);
    return text;
  });
}

std::string ConfigReader::read_upstream_name(Field& field) {
  return parse_scalar(field, "an upstream name", [](const std::string& text) { return text; });
}

ListenerConfig ConfigReader::read_admin(Field& field) {
  ListenerConfig admin = read_listen(field);
  if (admin.tls) fail(field, "the admin listener serves plain HTTP: no tls");
  return admin;
}

void ConfigReader::read_policy(Field& field, PolicyConfig& policy) {
  expect_map(field,
             "a map with paths, mode, default_verdict, approval_timeout, allow_empty and pins");
  for (auto& [key, value] : entries_of(field, {"paths", "mode", "default_verdict",
                                               "approval_timeout", "allow_empty", "pins"})) {
    remember(value);
    if (key == "pins") {
      policy.pins = read_nonempty_string(value);
    } else if (key == "allow_empty") {
      policy.allow_empty = read_bool(value);
    } else if (key == "paths") {
      policy.paths = value.node.IsScalar() ? std::vector<std::string>{read_nonempty_string(value)}
                                           : read_string_list(value, "policy files or directories");
    } else if (key == "mode") {
      const std::string mode = read_nonempty_string(value);
      if (mode != "enforce" && mode != "shadow")
        fail(value, "expected enforce or shadow, got " + single_quoted(mode));
      policy.shadow = mode == "shadow";
    } else if (key == "approval_timeout") {
      policy.approval_timeout =
          parse_scalar(value, "a duration like 2m",
                       [](const std::string& text) { return parse_duration(text); });
    } else {
      const std::string verdict = read_nonempty_string(value);
      if (verdict != "allow" && verdict != "deny")
        fail(value, "expected allow or deny, got " + single_quoted(verdict));
      policy.default_verdict = verdict;
    }
  }
}

void ConfigReader::read_otel(Field& field, Config::Otel& otel) {
  expect_map(field, "a map with endpoint, headers, service_name, capture and queue");
  auto otel_entries =
      entries_of(field, {"endpoint", "headers", "service_name", "capture", "queue"});
  for (auto& [key, value] : otel_entries) {
    remember(value);
    if (key == "endpoint") {
      otel.endpoint = parse_scalar(value, "a URL", [](const std::string& text) {
        return normalized_http_url(text, "http or https");
      });
    } else if (key == "headers") {
      otel.headers = read_string_map(value, "header name", check_header_name, check_header_value);
    } else if (key == "capture") {
      for (const auto& item : read_string_list(value, "arguments and/or results")) {
        if (item == "arguments") {
          otel.capture_arguments = true;
        } else if (item == "results") {
          otel.capture_results = true;
        } else {
          fail(value, "capture lists arguments and/or results, got " + single_quoted(item));
        }
      }
    } else if (key == "queue") {
      otel.queue = read_unsigned(value, "a number of spans");
      if (otel.queue == 0 || otel.queue > 1'000'000)
        fail(value, "must be between 1 and 1000000 spans");
    } else {
      otel.service_name = read_nonempty_string(value);
    }
  }
  if (!find(otel_entries, "endpoint")) fail(field, "otel needs 'endpoint' (the collector URL)");
}

void ConfigReader::read_audit(Field& field, AuditConfig& audit) {
  expect_map(field, "a map with file, fsync, rotate, key_file, checkpoint_every and on_error");
  auto audit_entries =
      entries_of(field, {"file", "fsync", "rotate", "key_file", "checkpoint_every", "on_error"});
  for (auto& [key, value] : audit_entries) {
    remember(value);
    if (key == "file") {
      audit.file = read_nonempty_string(value);
    } else if (key == "rotate") {
      audit.rotate_bytes = parse_scalar(value, "a size like 100MiB",
                                        [](const std::string& text) { return parse_size(text); });
    } else if (key == "key_file") {
      audit.key_file = read_nonempty_string(value);
    } else if (key == "checkpoint_every") {
      audit.checkpoint_every = read_unsigned(value, "a number of records");
      if (audit.checkpoint_every == 0) fail(value, "must be at least 1");
    } else if (key == "on_error") {
      const std::string choice = read_nonempty_string(value);
      if (choice != "refuse" && choice != "log")
        fail(value, "expected refuse or log, got " + single_quoted(choice));
      audit.refuse_on_error = choice == "refuse";
    } else {
      const std::string policy = read_nonempty_string(value);
      if (policy != "every" && policy != "none")
        fail(value, "expected every or none, got " + single_quoted(policy));
      audit.fsync_every_record = policy == "every";
    }
  }
  if (!find(audit_entries, "file")) fail(field, "audit needs 'file'");
}

void ConfigReader::read_console(Field& field, ConsoleConfig& console) {
  expect_map(field,
             "a map with enabled, auth, token_key_file, audit_scope, approve_scope, audit_files, "
             "audit_jwks, trace_link, approval_timeout and max_scan");
  auto entries = entries_of(
      field, {"enabled", "auth", "token_key_file", "audit_scope", "approve_scope", "audit_files",
              "audit_jwks", "approval_timeout", "max_scan", "trace_link"});
  console.enabled = true;
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "enabled") {
      console.enabled = read_bool(value);
    } else if (key == "auth") {
      console.auth.emplace();
      read_auth(value, *console.auth);
    } else if (key == "token_key_file") {
      console.token_key_file = read_nonempty_string(value);
    } else if (key == "audit_scope") {
      console.audit_scope = read_nonempty_string(value);
    } else if (key == "approve_scope") {
      console.approve_scope = read_nonempty_string(value);
    } else if (key == "audit_files") {
      console.audit_files = read_string_list(value, "audit files or glob patterns");
    } else if (key == "audit_jwks") {
      console.audit_jwks = read_nonempty_string(value);
    } else if (key == "trace_link") {
      console.trace_link = read_nonempty_string(value);
      if ((console.trace_link.rfind("https://", 0) != 0 &&
           console.trace_link.rfind("http://", 0) != 0) ||
          console.trace_link.find("{trace_id}") == std::string::npos) {
        fail(value,
             "expected an http(s) URL with {trace_id} where the id goes, e.g. "
             "https://jaeger.example.com/trace/{trace_id}");
      }
    } else if (key == "approval_timeout") {
      console.approval_timeout =
          parse_scalar(value, "a duration like 5m",
                       [](const std::string& text) { return parse_duration(text); });
      if (console.approval_timeout.count() <= 0) fail(value, "must be longer than 0");
    } else {
      console.max_scan_bytes = parse_scalar(
          value, "a size like 2GiB", [](const std::string& text) { return parse_size(text); });
      if (console.max_scan_bytes == 0) fail(value, "must be more than 0");
    }
  }
}

ListenerConfig ConfigReader::read_listen(Field& field) {
  if (field.node.IsScalar()) {
    return parse_scalar(field, "HOST:PORT",
                        [](const std::string& text) { return parse_host_port(text); });
  }
  expect_map(field, "HOST:PORT or a map with host, port and tls");
  ListenerConfig listener;
  for (auto& [key, value] : entries_of(field, {"host", "port", "tls"})) {
    remember(value);
    if (key == "host") {
      listener.host = parse_scalar(value, "a host",
                                   [](const std::string& text) { return parse_listen_host(text); });
    } else if (key == "port") {
      const std::uint64_t port = read_unsigned(value, "a port number 0-65535");
      if (port > 65535) fail(value, "port " + std::to_string(port) + " is out of range (0-65535)");
      listener.port = static_cast<std::uint16_t>(port);
    } else if (key == "tls") {
      expect_map(value, "a map with certificate and private_key");
      const auto tls_entries = entries_of(value, {"certificate", "private_key"});
      TlsListenerConfig tls;
      for (auto tls_entry : tls_entries) {
        const std::string path = read_nonempty_string(remember(tls_entry.value));
        (tls_entry.key == "certificate" ? tls.certificate_file : tls.private_key_file) = path;
      }
      for (const char* required : {"certificate", "private_key"}) {
        if (!find(tls_entries, required))
          fail(value, "missing required key " + single_quoted(required));
      }
      listener.tls = std::move(tls);
    }
  }
  return listener;
}

void ConfigReader::read_limits(Field& field, LimitsConfig& limits) {
  expect_map(field, "a map of limits");
  const std::vector<std::pair<std::string, std::size_t*>> sizes{
      {"max_request_body", &limits.max_request_body_bytes},
      {"max_request_header", &limits.max_request_header_bytes},
      {"max_upstream_message", &limits.max_upstream_message_bytes},
      {"max_stream_buffer", &limits.max_stream_buffer_bytes},
      {"max_buffered_bytes", &limits.max_buffered_bytes}};
  const std::vector<std::pair<std::string, std::size_t*>> counts{
      {"max_buffered_messages", &limits.max_buffered_messages},
      {"max_connections", &limits.max_connections},
      {"max_streams", &limits.max_streams},
      {"max_sessions", &limits.max_sessions},
      {"max_sessions_per_caller", &limits.max_sessions_per_caller}};
  const std::vector<std::pair<std::string, Milliseconds*>> durations{
      {"session_idle", &limits.session_idle}, {"retry_after", &limits.retry_after}};
  std::vector<std::string> allowed;
  for (const auto& entry : sizes)
    allowed.push_back(entry.first);
  for (const auto& entry : counts)
    allowed.push_back(entry.first);
  for (const auto& entry : durations)
    allowed.push_back(entry.first);
  allowed.push_back("max_json_depth");
  const auto lookup = [](const auto& table, const std::string& key) {
    const auto found =
        std::find_if(table.begin(), table.end(), [&](const auto& t) { return t.first == key; });
    return found == table.end() ? nullptr : found->second;
  };
  auto entries = entries_of(field, allowed);
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "max_json_depth") {
      const std::uint64_t depth = read_unsigned(value, "a number of nesting levels");
      if (depth < 8 || depth > json::max_configurable_depth) {
        fail(value, "must be between 8 and " + std::to_string(json::max_configurable_depth) +
                        " (MCP messages need a few levels; deep recursion is what this bounds)");
      }
      limits.max_json_depth = static_cast<std::size_t>(depth);
    } else if (auto* count = lookup(counts, key)) {
      const std::uint64_t number = read_unsigned(
          value, key == "max_buffered_messages" ? "a number of messages" : "a whole number");
      if (number == 0) fail(value, "must be greater than zero");
      if (number > std::numeric_limits<std::uint32_t>::max()) {
        fail(value, "is too large (at most " +
                        std::to_string(std::numeric_limits<std::uint32_t>::max()) + ")");
      }
      *count = static_cast<std::size_t>(number);
    } else if (auto* duration = lookup(durations, key)) {
      *duration = parse_scalar(value, "a duration like 30m",
                               [](const std::string& text) { return parse_duration(text); });
      // Retry-After is a number of seconds.
      if (key == "retry_after" && duration->count() % 1000 != 0)
        fail(value, "must be a whole number of seconds (Retry-After counts in seconds)");
    } else {
      *lookup(sizes, key) = parse_scalar(value, "a size like 4MiB",
                                         [](const std::string& text) { return parse_size(text); });
    }
  }
  // Relations between the keys, reported at the key that breaks them.
  if (const Field* stream_buffer = find(entries, "max_stream_buffer");
      stream_buffer && limits.max_stream_buffer_bytes > limits.max_buffered_bytes) {
    fail(*stream_buffer, "must not exceed limits.max_buffered_bytes (" +
                             std::to_string(limits.max_buffered_bytes) + " bytes)");
  } else if (const Field* total = find(entries, "max_buffered_bytes");
             total && limits.max_stream_buffer_bytes > limits.max_buffered_bytes) {
    fail(*total, "must be at least limits.max_stream_buffer (" +
                     std::to_string(limits.max_stream_buffer_bytes) + " bytes)");
  }
  if (const Field* per_caller = find(entries, "max_sessions_per_caller");
      per_caller && limits.max_sessions_per_caller > limits.max_sessions) {
    fail(*per_caller,
         "must not exceed limits.max_sessions (" + std::to_string(limits.max_sessions) + ")");
  } else if (const Field* sessions = find(entries, "max_sessions");
             sessions && limits.max_sessions_per_caller > limits.max_sessions) {
    fail(*sessions, "must be at least limits.max_sessions_per_caller (" +
                        std::to_string(limits.max_sessions_per_caller) + ")");
  }
}

void ConfigReader::read_timeouts(Field& field, TimeoutsConfig& timeouts) {
  expect_map(field, "a map of timeouts");
  const std::vector<std::pair<std::string, Milliseconds*>> durations{
      {"request_header_read", &timeouts.request_header_read},
      {"request_body_read", &timeouts.request_body_read},
      {"keep_alive_idle", &timeouts.keep_alive_idle},
      {"upstream_connect", &timeouts.upstream_connect},
      {"upstream_response", &timeouts.upstream_response},
      {"sse_keep_alive", &timeouts.sse_keep_alive},
      {"shutdown_delay", &timeouts.shutdown_delay},
      {"shutdown_drain", &timeouts.shutdown_drain},
      {"stdio_restart_backoff_initial", &timeouts.stdio_restart_backoff_initial},
      {"stdio_restart_backoff_max", &timeouts.stdio_restart_backoff_max},
      {"stdio_shutdown_grace", &timeouts.stdio_shutdown_grace},
      {"stdio_session_idle", &timeouts.stdio_session_idle}};
  std::vector<std::string> allowed;
  for (const auto& duration : durations)
    allowed.push_back(duration.first);
  for (auto& [key, value] : entries_of(field, allowed)) {
    remember(value);
    const auto target = std::find_if(durations.begin(), durations.end(),
                                     [&name = key](const auto& d) { return d.first == name; });
    const bool allow_zero = key == "shutdown_delay";  // 0s: stop accepting at once
    *target->second = parse_scalar(
        value, "a duration like 15s",
        [allow_zero](const std::string& text) { return parse_duration(text, allow_zero); });
  }
}

void ConfigReader::read_security(Field& field, SecurityConfig& security) {
  expect_map(field, "a map with allowed_origins and allowed_hosts");
  for (auto& [key, value] : entries_of(field, {"allowed_origins", "allowed_hosts"})) {
    remember(value);
    const bool origins = key == "allowed_origins";
    auto& list = origins ? security.allowed_origins : security.allowed_hosts;
    list = read_string_list(value, origins ? "origins" : "host names");
    for (std::size_t index = 0; index < list.size(); ++index) {
      try {
        origins ? check_origin(list[index]) : check_allowed_host(list[index]);
      } catch (const InvalidValue& problem) {
        const std::string item_path = value.path + "[" + std::to_string(index) + "]";
        throw ConfigError(locations_[item_path], item_path + ": " + problem.what());
      }
    }
  }
}

void ConfigReader::read_session(Field& field, SessionConfig& session) {
  expect_map(field, "a map with key_file, key_env, max_age and ended_file");
  for (auto& [key, value] : entries_of(field, {"key_file", "key_env", "max_age", "ended_file"})) {
    remember(value);
    if (key == "key_file") {
      session.key_file = read_nonempty_string(value);
    } else if (key == "ended_file") {
      session.ended_file = read_nonempty_string(value);
    } else if (key == "key_env") {
      session.key_env = read_nonempty_string(value);
      try {
        check_environment_name(session.key_env);
      } catch (const InvalidValue& problem) {
        fail(value, problem.what());
      }
    } else if (key == "max_age") {
      const Milliseconds age =
          parse_scalar(value, "a duration like 24h",
                       [](const std::string& text) { return parse_duration(text); });
      if (age.count() % 1000 != 0)
        fail(value, "must be a whole number of seconds, got " + single_quoted(value.node.Scalar()));
      session.max_age = std::chrono::duration_cast<std::chrono::seconds>(age);
    }
  }
}

void ConfigReader::read_cluster(Field& field, ClusterConfig& cluster) {
  expect_map(field, "a map with redis");
  for (auto& [key, redis_field] : entries_of(field, {"redis"})) {
    Field& redis = remember(redis_field);
    expect_map(redis,
               "a map with url, password_env, password_file, key_prefix, timeout and on_error");
    auto entries = entries_of(
        redis, {"url", "password_env", "password_file", "key_prefix", "timeout", "on_error"});
    for (auto& [name, value] : entries) {
      remember(value);
      if (name == "url") {
        cluster.redis_url = read_nonempty_string(value);
        std::string error;
        const auto url = cluster::RedisUrl::parse(cluster.redis_url, error);
        if (!url) fail(value, error);
        if (!url->password.empty()) {
          fail(value,
               "the URL holds a password; name it with password_env or password_file instead "
               "(secrets stay out of the config)");
        }
      } else if (name == "password_env") {
        cluster.redis_password_env = read_nonempty_string(value);
        try {
          check_environment_name(cluster.redis_password_env);
        } catch (const InvalidValue& problem) {
          fail(value, problem.what());
        }
      } else if (name == "password_file") {
        cluster.redis_password_file = read_nonempty_string(value);
      } else if (name == "key_prefix") {
        cluster.key_prefix = read_nonempty_string(value);
      } else if (name == "timeout") {
        cluster.redis_timeout =
            parse_scalar(value, "a duration like 250ms",
                         [](const std::string& text) { return parse_duration(text); });
        if (cluster.redis_timeout.count() <= 0) fail(value, "must be longer than 0");
      } else {
        const std::string choice = read_nonempty_string(value);
        if (choice != "allow" && choice != "deny")
          fail(value, "expected allow or deny, got " + single_quoted(choice));
        cluster.deny_when_redis_down = choice == "deny";
      }
    }
    if (!find(entries, "url")) fail(redis, "needs 'url' (redis://HOST:PORT)");
  }
}

void ConfigReader::read_auth(Field& field, AuthConfig& auth) {
  expect_map(field,
             "a map with issuer, audience, jwks, leeway, scopes and public_url (and, for a "
             "JWKS URL, jwks_refresh_interval and jwks_ca_file)");
  auto entries = entries_of(field, {"issuer", "audience", "jwks", "jwks_refresh_interval",
                                    "jwks_ca_file", "leeway", "scopes", "public_url"});
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "issuer") {
      auth.issuer = read_nonempty_string(value);
    } else if (key == "audience") {
      auth.audiences = value.node.IsScalar() ? std::vector<std::string>{read_nonempty_string(value)}
                                             : read_string_list(value, "accepted audiences");
    } else if (key == "jwks") {
      auth.jwks = read_nonempty_string(value);
    } else if (key == "jwks_refresh_interval") {
      auth.jwks_refresh_interval =
          parse_scalar(value, "a duration like 30s",
                       [](const std::string& text) { return parse_duration(text); });
    } else if (key == "jwks_ca_file") {
      auth.jwks_ca_file = read_nonempty_string(value);
    } else if (key == "leeway") {
      auth.leeway = parse_scalar(value, "a duration like 60s",
                                 [](const std::string& text) { return parse_duration(text); });
    } else if (key == "scopes") {
      auth.scopes = read_string_list(value, "scopes");
    } else if (key == "public_url") {
      auth.public_url = parse_scalar(value, "a URL", [](const std::string& text) {
        std::string url = normalized_http_url(text, "http or https");
        while (!url.empty() && url.back() == '/')
          url.pop_back();
        return url;
      });
    }
  }
  for (const char* required : {"issuer", "audience", "jwks"}) {
    if (!find(entries, required)) {
      fail(field, std::string("auth needs '") + required +
                      "' (issuer, audience and jwks together turn authorization on)");
    }
  }
}

void ConfigReader::read_txn(Field& field, TxnConfig& txn) {
  expect_map(field,
             "a map with key_file, trust_domain, workload, lifetime, per, context and "
             "trusted_jwks");
  auto entries = entries_of(field, {"key_file", "trust_domain", "workload", "lifetime", "per",
                                    "context", "trusted_jwks", "exchange_clients"});
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "key_file") {
      txn.key_file = read_nonempty_string(value);
    } else if (key == "trust_domain") {
      txn.trust_domain = read_nonempty_string(value);
    } else if (key == "workload") {
      txn.workload = read_nonempty_string(value);
    } else if (key == "lifetime") {
      txn.lifetime = parse_scalar(value, "a duration like 5m",
                                  [](const std::string& text) { return parse_duration(text); });
      // The draft: minutes or less. A long-lived transaction token is a bearer credential.
      if (txn.lifetime > Milliseconds(15 * 60'000))
        fail(value, "transaction tokens live minutes at most: use 15m or less");
      if (txn.lifetime < Milliseconds(10'000)) fail(value, "use at least 10s");
    } else if (key == "per") {
      const std::string per = read_nonempty_string(value);
      // "session" is the name this mode had before a client could declare its transactions.
      if (per != "call" && per != "transaction" && per != "session")
        fail(value, "expected transaction or call, got " + single_quoted(per));
      txn.per_call = per == "call";
    } else if (key == "context") {
      txn.context = read_string_list(value, "argument names");
    } else if (key == "trusted_jwks") {
      txn.trusted_jwks = read_nonempty_string(value);
    } else if (key == "exchange_clients") {
      txn.exchange_clients = read_nonempty_string(value);
    }
  }
  if (!find(entries, "key_file")) {
    fail(field, "txn needs 'key_file' (the signing key; it is created when missing)");
  }
}

}  // namespace membrane::app::config_reading
