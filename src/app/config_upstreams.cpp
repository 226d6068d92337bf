// The upstreams section: each upstream's transport (url or command), its settings and the
// gateway's own credentials for it.
#include "app/config_reader.hpp"

#include "membrane/core/duration.hpp"

namespace membrane::app::config_reading {

using namespace config_values;

UpstreamCredentialsConfig ConfigReader::read_credentials(Field& field) {
  expect_map(field,
             "a map with env or file (a static value), or token_url, client_id and "
             "client_secret_env / client_secret_file (OAuth client credentials)");
  UpstreamCredentialsConfig credentials;
  auto entries =
      entries_of(field, {"header", "scheme", "env", "file", "token_url", "client_id",
                         "client_secret_env", "client_secret_file", "scope", "audience"});
  for (auto& [key, value] : entries) {
    remember(value);
    std::string text = read_nonempty_string(value);
    if (key == "env" || key == "client_secret_env") {
      try {
        check_environment_name(text);
      } catch (const InvalidValue& problem) {
        fail(value, problem.what());
      }
    }
    if (key == "header") {
      try {
        check_header_name(text);
      } catch (const InvalidValue& problem) {
        fail(value, problem.what());
      }
      credentials.header = std::move(text);
    } else if (key == "scheme") {
      credentials.scheme = std::move(text);
    } else if (key == "env") {
      credentials.env = std::move(text);
    } else if (key == "file") {
      credentials.file = std::move(text);
    } else if (key == "token_url") {
      credentials.token_url = parse_scalar(value, "a URL", [](const std::string& url) {
        return normalized_http_url(url, "http or https");
      });
    } else if (key == "client_id") {
      credentials.client_id = std::move(text);
    } else if (key == "client_secret_env") {
      credentials.client_secret_env = std::move(text);
    } else if (key == "client_secret_file") {
      credentials.client_secret_file = std::move(text);
    } else if (key == "scope") {
      credentials.scope = std::move(text);
    } else if (key == "audience") {
      credentials.audience = std::move(text);
    }
  }
  const bool is_static = !credentials.env.empty() || !credentials.file.empty();
  const bool is_oauth = !credentials.token_url.empty();
  if (is_static == is_oauth) {
    fail(field,
         "give either env or file (a static value), or token_url (OAuth client "
         "credentials)");
  }
  if (is_static && !credentials.env.empty() && !credentials.file.empty())
    fail(field, "give env or file, not both");
  if (is_oauth) {
    if (credentials.client_id.empty()) fail(field, "token_url needs client_id");
    if (credentials.client_secret_env.empty() == credentials.client_secret_file.empty())
      fail(field, "token_url needs one of client_secret_env or client_secret_file");
  }
  return credentials;
}

std::vector<UpstreamConfig> ConfigReader::read_upstreams(Field& field) {
  expect_map(field, "a map of upstream name to its definition");
  std::vector<UpstreamConfig> upstreams;
  for (auto& [name, definition] : entries_of(field, {}, "upstream name")) {
    upstreams.push_back(read_upstream(name, remember(definition)));
  }
  if (upstreams.empty()) fail(field, "at least one upstream is required");
  return upstreams;
}

UpstreamConfig ConfigReader::read_upstream(const std::string& name, Field& definition) {
  // Problems with the upstream as a whole point at its name: that is what the operator chose and
  // searches for.
  const Field name_field{definition.node, definition.path, definition.key_where};
  try {
    check_upstream_name(name);
  } catch (const InvalidValue& problem) {
    fail(name_field, problem.what());
  }
  expect_map(definition, "a map with 'url' (HTTP upstream) or 'command' (stdio upstream)");

  static const std::vector<std::string> kHttpKeys{"url", "ca_file", "verify_tls", "headers",
                                                  "credentials"};
  static const std::vector<std::string> kStdioKeys{
      "command", "args", "env", "working_directory", "max_processes", "max_processes_per_caller"};
  static const std::vector<std::string> kCommonKeys{"scopes", "protocol"};
  std::vector<std::string> allowed = kHttpKeys;
  allowed.insert(allowed.end(), kStdioKeys.begin(), kStdioKeys.end());
  allowed.insert(allowed.end(), kCommonKeys.begin(), kCommonKeys.end());
  auto entries = entries_of(definition, allowed);

  const bool is_http = find(entries, "url") != nullptr;
  const bool is_stdio = find(entries, "command") != nullptr;
  if (is_http && is_stdio) {
    fail(name_field, "give either 'url' (HTTP upstream) or 'command' (stdio upstream), not both");
  }
  if (!is_http && !is_stdio) {
    fail(name_field, "needs 'url' (HTTP upstream) or 'command' (stdio upstream)");
  }

  UpstreamConfig upstream;
  upstream.name = name;
  upstream.where = definition.key_where;
  HttpUpstreamConfig http;
  StdioUpstreamConfig stdio;
  const auto& own_keys = is_http ? kHttpKeys : kStdioKeys;
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "scopes") {
      upstream.scopes = read_string_list(value, "scopes");
      continue;
    }
    if (key == "protocol") {
      upstream.protocol =
          parse_scalar(value, "auto, 2026-07-28 or 2025-11-25", [](const std::string& text) {
            if (text == "auto") return std::string();
            if (text == "2026-07-28" || text == "2025-11-25") return text;
            throw InvalidValue(
                "'" + text +
                "' is not a revision the gateway speaks to an upstream (auto, 2026-07-28 "
                "or 2025-11-25)");
          });
      continue;
    }
    if (std::find(own_keys.begin(), own_keys.end(), key) == own_keys.end()) {
      fail(value,
           is_http ? single_quoted(key) + " only applies to stdio upstreams (those with 'command')"
                   : single_quoted(key) + " only applies to HTTP upstreams (those with 'url')");
    }
    if (key == "url") {
      http.url = parse_scalar(value, "a URL", [](const std::string& text) {
        return normalized_http_url(text, "http or https; for a local process use 'command'");
      });
    } else if (key == "ca_file") {
      http.ca_file = read_nonempty_string(value);
    } else if (key == "verify_tls") {
      http.verify_tls = read_bool(value);
    } else if (key == "headers") {
      http.headers = read_string_map(value, "header name", check_header_name, check_header_value);
    } else if (key == "credentials") {
      http.credentials = read_credentials(value);
    } else if (key == "command") {
      stdio.command = read_nonempty_string(value);
    } else if (key == "args") {
      stdio.args = read_string_list(value, "arguments");
    } else if (key == "env") {
      stdio.env =
          read_string_map(value, "variable name", check_environment_name, [](std::string_view) {});
    } else if (key == "working_directory") {
      stdio.working_directory = read_nonempty_string(value);
    } else if (key == "max_processes" || key == "max_processes_per_caller") {
      const std::uint64_t count = read_unsigned(value, "a number of processes");
      if (count == 0 || count > 100'000) fail(value, "must be between 1 and 100000");
      (key == "max_processes" ? stdio.max_processes : stdio.max_processes_per_caller) =
          static_cast<std::size_t>(count);
    }
  }
  if (is_http) {
    upstream.transport = std::move(http);
  } else {
    upstream.transport = std::move(stdio);
  }
  return upstream;
}

}  // namespace membrane::app::config_reading
