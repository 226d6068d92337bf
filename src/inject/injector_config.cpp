// Loading the injector's YAML config (`membrane inject -c FILE`). Operators edit this file by
// hand, so every problem names file:line:col and a misspelt key gets a suggestion, as in the
// gateway's own config.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>

#include "cluster/redis_client.hpp"
#include "inject/values.hpp"
#include "membrane/core/duration.hpp"
#include "membrane/core/yaml_documents.hpp"
#include "membrane/core/yaml_nesting.hpp"
#include "membrane/inject/injector.hpp"

namespace membrane::inject {

namespace {

// A duration as `membrane serve --shutdown-delay` takes it: digits and one of ms, s, m, h; 0s
// allowed. At most an hour: a longer shutdown delay is a typo. On failure `problem` says why.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                        std::string& problem) {
  const ParsedDuration parsed = parse_duration_text(text, std::chrono::hours(1));
  if (parsed.problem == ParsedDuration::Problem::too_long) {
    problem = "is too long (at most 1h)";
    return std::nullopt;
  }
  if (!parsed.ok()) {
    problem = "is not a duration like 10s (units: ms, s, m, h)";
    return std::nullopt;
  }
  return parsed.value;
}

// The URLs `membrane serve --redis` accepts (the cluster module's own parser), without a
// password: it would be in the pod spec, readable by anyone who can get the pod. On failure
// `problem` says why.
bool is_redis_url(std::string_view url, std::string& problem) {
  std::string error;
  const auto parsed = cluster::RedisUrl::parse(url, error);
  if (!parsed) {
    problem = "is not usable: " + error;
    return false;
  }
  if (!parsed->password.empty()) {
    problem =
        "holds a password, which would be readable in every pod spec; name a Secret in "
        "sidecar.redis_password_secret instead";
    return false;
  }
  return true;
}

class ConfigReader {
 public:
  explicit ConfigReader(std::string source) : source_(std::move(source)) {}

  InjectorConfig read(const YAML::Node& root) {
    InjectorConfig config;
    config.source = source_;
    if (!root || root.IsNull()) return config;  // an empty file keeps every default
    for_each_key(
        root, "the injector config",
        {
            {"on_error",
             [&](const YAML::Node& value) {
               const std::string text = one_of(value, {"allow", "deny"});
               config.on_error = text == "deny" ? OnError::deny : OnError::allow;
             }},
            {"namespaces", [&](const YAML::Node& value) { read_namespaces(value, config); }},
            {"sidecar", [&](const YAML::Node& value) { read_sidecar(value, config.sidecar); }},
        });
    return config;
  }

 private:
  using Field = std::function<void(const YAML::Node&)>;
  using Fields = std::vector<std::pair<std::string, Field>>;

  [[noreturn]] void fail(const YAML::Node& node, const std::string& message) const {
    const YAML::Mark mark = node.Mark();
    throw InjectorConfigError(source_, mark.line < 0 ? 0 : mark.line + 1,
                              mark.column < 0 ? 0 : mark.column + 1, message);
  }

  void expect_map(const YAML::Node& node, const std::string& what) const {
    if (!node.IsMap()) fail(node, what + " must be a mapping of keys to values");
  }

  void for_each_key(const YAML::Node& map, const std::string& what, const Fields& fields) const {
    expect_map(map, what);
    for (const auto& entry : map) {
      const std::string key = entry.first.Scalar();
      const auto field = std::find_if(fields.begin(), fields.end(), [&](const auto& candidate) {
        return candidate.first == key;
      });
      if (field == fields.end()) {
        std::string message = "unknown key '" + key + "' in " + what;
        for (const auto& [known, unused] : fields) {
          if (edit_distance(key, known) <= std::max<std::size_t>(2, known.size() / 3)) {
            message += " (did you mean '" + known + "'?)";
            break;
          }
        }
        fail(entry.first, message);
      }
      field->second(entry.second);
    }
  }

  std::string scalar(const YAML::Node& node) const {
    if (!node.IsScalar()) fail(node, "expected a single value here");
    return node.Scalar();
  }

  std::string one_of(const YAML::Node& node,
                     std::initializer_list<std::string_view> choices) const {
    const std::string text = scalar(node);
    if (std::find(choices.begin(), choices.end(), text) != choices.end()) return text;
    std::string listed;
    for (const auto choice : choices)
      listed += (listed.empty() ? "" : ", ") + std::string(choice);
    fail(node, "'" + text + "' is not one of: " + listed);
  }

  bool boolean(const YAML::Node& node) const {
    const std::string text = scalar(node);
    if (text == "true") return true;
    if (text == "false") return false;
    fail(node, "expected true or false, got '" + text + "'");
  }

  std::vector<std::string> namespace_list(const YAML::Node& node) const {
    if (node.IsNull()) return {};
    if (!node.IsSequence()) fail(node, "expected a list of namespace names");
    std::vector<std::string> names;
    for (const auto& item : node) {
      std::string name = scalar(item);
      if (!is_dns_subdomain(name) || name.size() > 63 || name.find('.') != std::string::npos)
        fail(item, "'" + name + "' is not a namespace name");
      names.push_back(std::move(name));
    }
    return names;
  }

  void read_namespaces(const YAML::Node& node, InjectorConfig& config) const {
    for_each_key(
        node, "namespaces",
        {
            {"include",
             [&](const YAML::Node& value) { config.include_namespaces = namespace_list(value); }},
            {"exclude",
             [&](const YAML::Node& value) { config.exclude_namespaces = namespace_list(value); }},
        });
  }

  ResourceQuantities quantities(const YAML::Node& node, const std::string& what) const {
    ResourceQuantities result;
    const auto quantity = [&](const YAML::Node& value) {
      std::string text = value.IsNull() ? "" : scalar(value);
      if (!text.empty() && !is_quantity(text))
        fail(value, "'" + text + "' is not a Kubernetes quantity (e.g. 50m, 1, 64Mi)");
      return text;
    };
    for_each_key(node, what,
                 {
                     {"cpu", [&](const YAML::Node& value) { result.cpu = quantity(value); }},
                     {"memory", [&](const YAML::Node& value) { result.memory = quantity(value); }},
                 });
    return result;
  }

  void read_sidecar(const YAML::Node& node, SidecarSettings& sidecar) const {
    YAML::Node redis_password_secret;  // checked against redis_url once every key is read
    for_each_key(
        node, "sidecar",
        {
            {"image",
             [&](const YAML::Node& value) {
               sidecar.image = scalar(value);
               if (!is_image_reference(sidecar.image))
                 fail(value, "'" + sidecar.image + "' is not an image reference");
             }},
            {"image_pull_policy",
             [&](const YAML::Node& value) {
               sidecar.image_pull_policy = one_of(value, {"Always", "IfNotPresent", "Never"});
             }},
            {"allow_image_annotation",
             [&](const YAML::Node& value) { sidecar.allow_image_annotation = boolean(value); }},
            {"port",
             [&](const YAML::Node& value) {
               const auto port = parse_port(scalar(value));
               if (!port)
                 fail(value, "expected a port number 1-65535, got '" + value.Scalar() + "'");
               sidecar.port = *port;
             }},
            {"upstream",
             [&](const YAML::Node& value) {
               sidecar.upstream = value.IsNull() ? "" : scalar(value);
               std::string problem;
               if (!sidecar.upstream.empty() && !parse_http_url(sidecar.upstream, problem))
                 fail(value, "upstream '" + sidecar.upstream + "' " + problem);
             }},
            {"upstream_name",
             [&](const YAML::Node& value) {
               sidecar.upstream_name = scalar(value);
               if (!is_upstream_name(sidecar.upstream_name))
                 fail(value, "'" + sidecar.upstream_name +
                                 "' may only contain letters, digits, '.', '_' and '-'");
             }},
            {"policy_configmap",
             [&](const YAML::Node& value) {
               sidecar.policy_configmap = scalar(value);
               if (!is_dns_subdomain(sidecar.policy_configmap))
                 fail(value, "'" + sidecar.policy_configmap + "' is not a valid ConfigMap name");
             }},
            {"allow_policy_configmap_annotation",
             [&](const YAML::Node& value) {
               sidecar.allow_policy_configmap_annotation = boolean(value);
             }},
            {"policy_mode",
             [&](const YAML::Node& value) {
               sidecar.policy_mode = one_of(value, {"enforce", "shadow"});
             }},
            {"log_level",
             [&](const YAML::Node& value) {
               sidecar.log_level = one_of(value, {"error", "warn", "info", "debug"});
             }},
            {"workers",
             [&](const YAML::Node& value) {
               const std::string text = scalar(value);
               if (text.empty() || text.size() > 3 ||
                   !std::all_of(text.begin(), text.end(),
                                [](unsigned char c) { return std::isdigit(c); })) {
                 fail(value, "expected a number of worker threads 0-256, got '" + text + "'");
               }
               sidecar.workers = static_cast<unsigned>(std::stoul(text));
               if (sidecar.workers > 256)
                 fail(value, "expected a number of worker threads 0-256, got '" + text + "'");
             }},
            {"run_as_user",
             [&](const YAML::Node& value) {
               const std::string text = scalar(value);
               const auto digits = std::all_of(text.begin(), text.end(),
                                               [](unsigned char c) { return std::isdigit(c); });
               // runAsNonRoot refuses uid 0; Linux uids stop at 2^31 - 1 in Kubernetes.
               if (text.empty() || !digits || text.size() > 10 || std::stoll(text) < 1 ||
                   std::stoll(text) > std::numeric_limits<std::int32_t>::max()) {
                 fail(value, "expected a non-root user id (1-2147483647), got '" + text + "'");
               }
               sidecar.run_as_user = std::stoll(text);
             }},
            {"session_key_secret",
             [&](const YAML::Node& value) {
               sidecar.session_key_secret = value.IsNull() ? "" : scalar(value);
               if (!sidecar.session_key_secret.empty() &&
                   !is_dns_subdomain(sidecar.session_key_secret)) {
                 fail(value, "'" + sidecar.session_key_secret + "' is not a valid Secret name");
               }
             }},
            {"shutdown_delay",
             [&](const YAML::Node& value) {
               const std::string text = scalar(value);
               std::string problem;
               const auto delay = parse_duration(text, problem);
               if (!delay) fail(value, "shutdown_delay '" + text + "' " + problem);
               sidecar.shutdown_delay = *delay;
             }},
            {"redis_url",
             [&](const YAML::Node& value) {
               sidecar.redis_url = value.IsNull() ? "" : scalar(value);
               std::string problem;
               // The URL may hold a password: the message never repeats it.
               if (!sidecar.redis_url.empty() && !is_redis_url(sidecar.redis_url, problem))
                 fail(value, "redis_url " + problem);
             }},
            {"redis_password_secret",
             [&](const YAML::Node& value) {
               sidecar.redis_password_secret = value.IsNull() ? "" : scalar(value);
               if (!sidecar.redis_password_secret.empty() &&
                   !is_dns_subdomain(sidecar.redis_password_secret)) {
                 fail(value, "'" + sidecar.redis_password_secret + "' is not a valid Secret name");
               }
               redis_password_secret.reset(value);
             }},
            {"resources",
             [&](const YAML::Node& value) {
               for_each_key(value, "sidecar.resources",
                            {
                                {"requests",
                                 [&](const YAML::Node& requests) {
                                   sidecar.requests =
                                       quantities(requests, "sidecar.resources.requests");
                                 }},
                                {"limits",
                                 [&](const YAML::Node& limits) {
                                   sidecar.limits = quantities(limits, "sidecar.resources.limits");
                                 }},
                            });
             }},
        });
    if (!sidecar.redis_password_secret.empty() && sidecar.redis_url.empty()) {
      fail(redis_password_secret,
           "redis_password_secret needs redis_url: without Redis the sidecar has no use for a "
           "password");
    }
  }

  std::string source_;
};

}  // namespace

InjectorConfig load_injector_config_text(const std::string& yaml_text,
                                         const std::string& source_name) {
  if (const auto crossing = yaml_nesting::first_crossing(yaml_text)) {
    throw InjectorConfigError(source_name, static_cast<int>(crossing->line), 1,
                              yaml_nesting::describe(*crossing));
  }
  yaml_documents::SingleDocument document;
  try {
    document = yaml_documents::load_first(yaml_text);
  } catch (const YAML::Exception& error) {
    throw InjectorConfigError(source_name, error.mark.line < 0 ? 0 : error.mark.line + 1,
                              error.mark.column < 0 ? 0 : error.mark.column + 1,
                              "YAML syntax error: " + error.msg);
  }
  if (const auto& extra = document.extra_document) {
    throw InjectorConfigError(source_name, std::max(extra->line, 0) + 1, 1,
                              "only one YAML document is allowed; remove the extra '---' section");
  }
  return ConfigReader(source_name).read(document.root);
}

InjectorConfig load_injector_config_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw InjectorConfigError(
        path, 0, 0, "cannot read injector config file: " + std::string(std::strerror(errno)));
  }
  std::ostringstream text;
  text << file.rdbuf();
  return load_injector_config_text(text.str(), path);
}

}  // namespace membrane::inject
