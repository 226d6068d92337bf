// The admission decision: which pods get a Membrane sidecar, and the RFC 6902 JSON Patch that
// adds it. Everything here is a pure function of the AdmissionReview text and the config.
#include "membrane/inject/injector.hpp"
#include "membrane/core/json.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "inject/values.hpp"

namespace membrane::inject {

using Json = nlohmann::json;

namespace {

constexpr std::string_view kAdmissionApiVersion = "admission.k8s.io/v1";
constexpr std::string_view kAdmissionKind = "AdmissionReview";
constexpr std::string_view kAnnotationPrefix = "membrane.dev/";
constexpr std::string_view kSessionKeyEnv = "MEMBRANE_SESSION_KEY";
// The key the gateway Deployment in deploy/kubernetes uses for the same Secret.
constexpr std::string_view kSessionKeySecretKey = "key";
// `membrane serve` reads the Redis password from this variable; the Secret's key holding it.
constexpr std::string_view kRedisPasswordEnv = "MEMBRANE_REDIS_PASSWORD";
constexpr std::string_view kRedisPasswordSecretKey = "password";
// The readiness probe on /readyz. After SIGTERM it fails at once, and the kubelet marks the pod
// unready after kReadinessFailureThreshold failures, at most period × threshold (4 s) later.
// SidecarSettings::shutdown_delay (10 s by default) keeps the listener open well past that, so
// the endpoint update has time to reach every kube-proxy before the listener closes.
constexpr int kReadinessPeriodSeconds = 2;
constexpr int kReadinessFailureThreshold = 2;
// What the sidecar needs between SIGTERM and exit besides its shutdown delay: the gateway's
// default timeouts.shutdown_drain (the sidecar's args do not change it), and a margin for the
// exit itself. A terminationGracePeriodSeconds below delay + these gets a warning.
constexpr std::chrono::milliseconds kSidecarShutdownDrain{15'000};
constexpr std::chrono::milliseconds kGracePeriodMargin{5'000};
// A ConfigMap volume holds every file twice: the visible name is a symlink into a hidden
// ..<timestamp> directory, and a walk of the mount finds both (each rule twice). "..data" is the
// symlink the kubelet swaps atomically on an update, to the one current copy; the gateway's
// change watcher follows it.
constexpr std::string_view kPolicyDirectory = "/etc/membrane/policies/..data";

// Values from a request end up in kubectl warnings and in our log: keep them short and on one
// line, so a hostile annotation can neither flood the output nor forge a log line.
std::string quoted_excerpt(std::string_view value) {
  constexpr std::size_t kShown = 64;
  std::string text = "'";
  for (const char c : value.substr(0, kShown))
    text += std::iscntrl(static_cast<unsigned char>(c)) ? '?' : c;
  if (value.size() > kShown) text += "...";
  return text + "'";
}

std::string dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// RFC 4648 §4 base64 with padding: how Go's encoding/json writes the []byte `patch` field.
std::string base64(std::string_view bytes) {
  std::string encoded(4 * ((bytes.size() + 2) / 3), '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                                     reinterpret_cast<const unsigned char*>(bytes.data()),
                                     static_cast<int>(bytes.size()));
  encoded.resize(static_cast<std::size_t>(std::max(length, 0)));
  return encoded;
}

// RFC 6901 §3: a reference token escapes '~' as "~0" and '/' as "~1".
std::string pointer_token(std::string_view key) {
  std::string token;
  for (const char c : key) {
    if (c == '~') {
      token += "~0";
    } else if (c == '/') {
      token += "~1";
    } else {
      token += c;
    }
  }
  return token;
}

const Json* member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto found = object.find(key);
  return found == object.end() || found->is_null() ? nullptr : &*found;
}

std::optional<std::string> string_member(const Json& object, std::string_view key) {
  const Json* value = member(object, key);
  if (!value || !value->is_string()) return std::nullopt;
  return value->get<std::string>();
}

constexpr std::array kKnownAnnotations{
    annotation::inject,           annotation::injected,    annotation::upstream,
    annotation::upstream_name,    annotation::upstreams,   annotation::port,
    annotation::policy_configmap, annotation::policy_mode, annotation::image,
};

// A pod fronts at most this many servers through one sidecar.
constexpr std::size_t kMaxPodUpstreams = 16;

bool is_loopback_host(std::string_view host) {
  return host == "localhost" || host == "[::1]" || host == "0.0.0.0" || host == "[::]" ||
         host.starts_with("127.");
}

// ---- The pod ---------------------------------------------------------------------------------

// What the sidecar of one pod will be, after defaults and annotations.
struct SidecarPlan {
  std::string image;
  std::uint16_t port = 0;
  std::string upstream;
  std::string upstream_name;
  // membrane.dev/upstreams: the pod's servers by name, published together as the virtual server
  // `upstream_name` (empty: the one `upstream`).
  std::vector<std::pair<std::string, std::string>> upstreams;
  std::string policy_configmap;
  std::string policy_mode;
};

class PodView {
 public:
  explicit PodView(const Json& pod) : pod_(pod) {}

  std::optional<std::string> annotation(std::string_view key) const {
    const Json* metadata = member(pod_, "metadata");
    const Json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
    return annotations ? string_member(*annotations, key) : std::nullopt;
  }
  std::optional<std::string> label(std::string_view key) const {
    const Json* metadata = member(pod_, "metadata");
    const Json* labels = metadata ? member(*metadata, "labels") : nullptr;
    return labels ? string_member(*labels, key) : std::nullopt;
  }
  std::vector<std::string> annotation_keys() const {
    std::vector<std::string> keys;
    const Json* metadata = member(pod_, "metadata");
    const Json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
    if (annotations && annotations->is_object()) {
      for (const auto& [key, value] : annotations->items())
        keys.push_back(key);
    }
    return keys;
  }
  // "namespace/name" for messages; a pod created from a template has only generateName yet.
  std::string display_name(const std::string& request_namespace) const {
    const Json* metadata = member(pod_, "metadata");
    std::string name = metadata ? string_member(*metadata, "name").value_or("") : "";
    if (name.empty() && metadata) {
      const auto generate_name = string_member(*metadata, "generateName");
      if (generate_name) name = *generate_name + "*";
    }
    return request_namespace + "/" + (name.empty() ? "<unnamed>" : name);
  }
  const Json* spec() const { return member(pod_, "spec"); }

  // Every container of the pod, app and init, for the name and port checks.
  template <class Visit>
  void for_each_container(Visit visit) const {
    const Json* spec_object = spec();
    if (!spec_object) return;
    for (const std::string_view list : {"containers", "initContainers", "ephemeralContainers"}) {
      const Json* containers = member(*spec_object, list);
      if (!containers || !containers->is_array()) continue;
      for (const auto& container : *containers) {
        if (container.is_object()) visit(container);
      }
    }
  }

  bool has_container_named(std::string_view name) const {
    bool found = false;
    for_each_container([&](const Json& container) {
      found = found || string_member(container, "name") == std::optional<std::string>(name);
    });
    return found;
  }

  // The container that already declares `port`, if any: the pod shares one network namespace.
  std::optional<std::string> container_using_port(std::uint16_t port) const {
    std::optional<std::string> user;
    for_each_container([&](const Json& container) {
      const Json* ports = member(container, "ports");
      if (user || !ports || !ports->is_array()) return;
      for (const auto& declared : *ports) {
        const Json* number = member(declared, "containerPort");
        if (number && number->is_number_integer() && number->get<std::int64_t>() == port) {
          user = string_member(container, "name").value_or("<unnamed>");
          return;
        }
      }
    });
    return user;
  }

 private:
  const Json& pod_;
};

// ---- The sidecar -------------------------------------------------------------------------------

Json http_probe(std::string_view path, std::uint16_t port, int period_seconds,
                int failure_threshold) {
  return Json{{"httpGet", {{"path", path}, {"port", port}, {"scheme", "HTTP"}}},
              {"periodSeconds", period_seconds},
              {"timeoutSeconds", 2},
              {"failureThreshold", failure_threshold}};
}

// A duration as `membrane serve` takes it: whole seconds as "10s", anything else in "ms".
std::string duration_flag(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + "s";
  return std::to_string(duration.count()) + "ms";
}

Json secret_env(std::string_view name, const std::string& secret, std::string_view key) {
  return Json{{"name", name}, {"valueFrom", {{"secretKeyRef", {{"name", secret}, {"key", key}}}}}};
}

Json quantities(const ResourceQuantities& quantities) {
  Json object = Json::object();
  if (!quantities.cpu.empty()) object["cpu"] = quantities.cpu;
  if (!quantities.memory.empty()) object["memory"] = quantities.memory;
  return object;
}

// What the sidecar fronts, for the review's message: the URL, or the upstreams' names.
std::string fronted(const SidecarPlan& plan) {
  if (plan.upstreams.empty()) return plan.upstream;
  std::string names;
  for (const auto& upstream : plan.upstreams)
    names += (names.empty() ? "" : "+") + upstream.first;
  return names;
}

Json sidecar_container(const SidecarPlan& plan, const SidecarSettings& settings) {
  const std::string port = std::to_string(plan.port);
  // `membrane serve` with flags only: the whole per-pod config is in the container's args, so
  // the pod needs no generated ConfigMap and the sidecar reads nothing but its policy.
  Json args = Json::array({"serve", "--listen", "0.0.0.0:" + port});
  if (plan.upstreams.empty()) {
    args.push_back("--upstream");
    args.push_back(plan.upstream_name + "=" + plan.upstream);
  } else {
    std::string members;
    for (const auto& [name, url] : plan.upstreams) {
      args.push_back("--upstream");
      args.push_back(name + "=" + url);
      members += (members.empty() ? "" : ",") + name;
    }
    args.push_back("--virtual");
    args.push_back(plan.upstream_name + "=" + members);
  }
  args.push_back("--policy");
  args.push_back(std::string(kPolicyDirectory));
  args.push_back("--policy-mode");
  args.push_back(plan.policy_mode);
  args.push_back("--log-level");
  args.push_back(settings.log_level);
  if (settings.workers > 0) {
    args.push_back("--workers");
    args.push_back(std::to_string(settings.workers));
  }
  if (settings.shutdown_delay.count() > 0) {
    args.push_back("--shutdown-delay");
    args.push_back(duration_flag(settings.shutdown_delay));
  }
  if (!settings.redis_url.empty()) {
    args.push_back("--redis");
    args.push_back(settings.redis_url);
  }
  Json resources = Json::object();
  if (Json requests = quantities(settings.requests); !requests.empty())
    resources["requests"] = std::move(requests);
  if (Json limits = quantities(settings.limits); !limits.empty())
    resources["limits"] = std::move(limits);

  Json container{
      {"name", kSidecarName},
      {"image", plan.image},
      {"imagePullPolicy", settings.image_pull_policy},
      {"args", std::move(args)},
      {"ports",
       Json::array({{{"name", "membrane"}, {"containerPort", plan.port}, {"protocol", "TCP"}}})},
      // /readyz turns 503 as soon as the gateway starts draining, before the listener closes.
      {"readinessProbe",
       http_probe("/readyz", plan.port, kReadinessPeriodSeconds, kReadinessFailureThreshold)},
      {"livenessProbe", http_probe("/healthz", plan.port, 10, 3)},
      {"resources", std::move(resources)},
      {"securityContext",
       {{"runAsNonRoot", true},
        {"runAsUser", settings.run_as_user},
        {"runAsGroup", settings.run_as_user},
        {"readOnlyRootFilesystem", true},
        {"allowPrivilegeEscalation", false},
        {"privileged", false},
        {"capabilities", {{"drop", Json::array({"ALL"})}}},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"volumeMounts",
       Json::array(
           {{{"name", kPolicyVolumeName}, {"mountPath", kPolicyMountPath}, {"readOnly", true}}})},
      {"terminationMessagePolicy", "FallbackToLogsOnError"},
  };
  Json env = Json::array();
  if (!settings.session_key_secret.empty())
    env.push_back(secret_env(kSessionKeyEnv, settings.session_key_secret, kSessionKeySecretKey));
  if (!settings.redis_password_secret.empty()) {
    env.push_back(
        secret_env(kRedisPasswordEnv, settings.redis_password_secret, kRedisPasswordSecretKey));
  }
  if (!env.empty()) container["env"] = std::move(env);
  return container;
}

// RFC 6902 operations that add the sidecar, its policy volume and the injected mark. An "add" to
// "/-" needs the array to exist, so a pod without volumes (or annotations) gets the whole array
// (or map) instead.
Json injection_patch(const Json& pod, const SidecarPlan& plan, const SidecarSettings& settings) {
  Json patch = Json::array();
  patch.push_back({{"op", "add"},
                   {"path", "/spec/containers/-"},
                   {"value", sidecar_container(plan, settings)}});

  const Json volume{{"name", kPolicyVolumeName}, {"configMap", {{"name", plan.policy_configmap}}}};
  const Json* volumes = member(*member(pod, "spec"), "volumes");
  if (volumes && volumes->is_array()) {
    patch.push_back({{"op", "add"}, {"path", "/spec/volumes/-"}, {"value", volume}});
  } else {
    patch.push_back({{"op", "add"}, {"path", "/spec/volumes"}, {"value", Json::array({volume})}});
  }

  // An opted-in pod has metadata (the opt-in is in it), but a pod opted in by its label may have
  // no annotations at all.
  const std::string injected_key(annotation::injected);
  if (!member(*member(pod, "metadata"), "annotations")) {
    patch.push_back(
        {{"op", "add"}, {"path", "/metadata/annotations"}, {"value", {{injected_key, "true"}}}});
  } else {
    patch.push_back({{"op", "add"},
                     {"path", "/metadata/annotations/" + pointer_token(injected_key)},
                     {"value", "true"}});
  }
  return patch;
}

// ---- The review --------------------------------------------------------------------------------

class Review {
 public:
  Review(const InjectorConfig& config, std::string uid) : config_(config), uid_(std::move(uid)) {}

  void warn(std::string message) { warnings_.push_back("membrane: " + std::move(message)); }

  AdmissionAnswer allow(std::string summary) const {
    return answer(response_base(true), std::move(summary));
  }

  // Most pods in an enabled namespace are not for us: saying so is debug detail, not news.
  AdmissionAnswer pass_by(std::string summary) const {
    AdmissionAnswer passed = allow(std::move(summary));
    passed.routine = true;
    return passed;
  }

  AdmissionAnswer allow_with_patch(const Json& patch, std::string summary) const {
    Json response = response_base(true);
    response["patchType"] = "JSONPatch";
    response["patch"] = base64(dump(patch));
    return answer(std::move(response), std::move(summary));
  }

  // Input the injector cannot act on: let the pod through with a warning, or refuse it, as the
  // operator chose with on_error.
  AdmissionAnswer cannot_inject(const std::string& problem, std::string summary_prefix) {
    if (config_.on_error == OnError::deny) {
      Json response = response_base(false);
      response["status"] = {{"code", 400}, {"message", "membrane sidecar injection: " + problem}};
      return answer(std::move(response), summary_prefix + ": refused: " + problem);
    }
    warn("sidecar not injected: " + problem);
    return answer(response_base(true), summary_prefix + ": not injected (allowed): " + problem);
  }

 private:
  Json response_base(bool allowed) const { return Json{{"uid", uid_}, {"allowed", allowed}}; }

  AdmissionAnswer answer(Json response, std::string summary) const {
    if (!warnings_.empty()) response["warnings"] = warnings_;
    const Json review{{"apiVersion", kAdmissionApiVersion},
                      {"kind", kAdmissionKind},
                      {"response", std::move(response)}};
    return AdmissionAnswer{200, dump(review), std::move(summary)};
  }

  const InjectorConfig& config_;
  std::string uid_;
  std::vector<std::string> warnings_;
};

AdmissionAnswer unanswerable(const std::string& problem) {
  const Json body{{"error", "not an admission.k8s.io/v1 AdmissionReview: " + problem}};
  return AdmissionAnswer{400, dump(body), "rejected a request: " + problem};
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// The sidecar for this pod from the config and the pod's annotations; problems with the
// annotations are collected, each naming its annotation.
SidecarPlan plan_sidecar(const PodView& pod, const SidecarSettings& settings, Review& review,
                         std::vector<std::string>& problems) {
  SidecarPlan plan{settings.image,
                   settings.port,
                   settings.upstream,
                   settings.upstream_name,
                   {},
                   settings.policy_configmap,
                   settings.policy_mode};
  const auto bad = [&](std::string_view key, const std::string& value, const std::string& why) {
    problems.push_back(std::string(key) + " " + quoted_excerpt(value) + " " + why);
  };

  if (const auto port = pod.annotation(annotation::port)) {
    if (const auto number = parse_port(*port)) {
      plan.port = *number;
    } else {
      bad(annotation::port, *port, "is not a port number (1-65535)");
    }
  }
  if (const auto name = pod.annotation(annotation::upstream_name)) {
    if (is_upstream_name(*name)) {
      plan.upstream_name = *name;
    } else {
      bad(annotation::upstream_name, *name,
          "may only contain letters, digits, '.', '_' and '-' (at most 63)");
    }
  }
  if (const auto mode = pod.annotation(annotation::policy_mode)) {
    if (*mode == "enforce" || *mode == "shadow") {
      plan.policy_mode = *mode;
    } else {
      bad(annotation::policy_mode, *mode, "must be enforce or shadow");
    }
  }
  if (const auto configmap = pod.annotation(annotation::policy_configmap)) {
    if (!settings.allow_policy_configmap_annotation) {
      review.warn(std::string(annotation::policy_configmap) +
                  " is ignored: the injector's config does not let pods choose their policy");
    } else if (is_dns_subdomain(*configmap)) {
      plan.policy_configmap = *configmap;
    } else {
      bad(annotation::policy_configmap, *configmap, "is not a valid ConfigMap name");
    }
  }
  if (const auto image = pod.annotation(annotation::image)) {
    if (!settings.allow_image_annotation) {
      review.warn(std::string(annotation::image) +
                  " is ignored: the injector's config does not let pods choose the sidecar image");
    } else if (is_image_reference(*image)) {
      plan.image = *image;
    } else {
      bad(annotation::image, *image, "is not an image reference");
    }
  }

  const auto check_url = [&](std::string_view key, const std::string& value) {
    std::string why;
    const auto url = parse_http_url(value, why);
    if (!url) {
      bad(key, value, why);
    } else if (is_loopback_host(url->host) && url->port == plan.port) {
      bad(key, value,
          "points at the sidecar's own port " + std::to_string(plan.port) +
              "; set membrane.dev/port to another port");
    }
  };
  const auto upstream = pod.annotation(annotation::upstream);
  if (const auto several = pod.annotation(annotation::upstreams)) {
    if (upstream) {
      problems.push_back("give " + std::string(annotation::upstream) + " or " +
                         std::string(annotation::upstreams) + ", not both");
      return plan;
    }
    std::string_view rest = *several;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      std::string entry(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\n'))
        entry.erase(0, 1);
      while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\n'))
        entry.pop_back();
      if (entry.empty()) continue;
      const std::size_t equals = entry.find('=');
      const std::string name = entry.substr(0, equals);
      if (equals == std::string::npos || !is_upstream_name(name)) {
        bad(annotation::upstreams, entry,
            "is not NAME=URL (NAME: letters, digits, '.', '_' and '-', at most 63)");
        continue;
      }
      if (name == plan.upstream_name) {
        bad(annotation::upstreams, entry,
            "uses the name the servers are published under together (" + plan.upstream_name +
                ", membrane.dev/upstream-name); give it another");
        continue;
      }
      const bool repeated = std::any_of(plan.upstreams.begin(), plan.upstreams.end(),
                                        [&](const auto& earlier) { return earlier.first == name; });
      if (repeated) {
        bad(annotation::upstreams, entry, "names an upstream twice");
        continue;
      }
      const std::string url = entry.substr(equals + 1);
      check_url(annotation::upstreams, url);
      plan.upstreams.emplace_back(name, url);
    }
    if (plan.upstreams.empty()) {
      bad(annotation::upstreams, *several, "names no upstream");
    } else if (plan.upstreams.size() > kMaxPodUpstreams) {
      bad(annotation::upstreams, *several,
          "names more than " + std::to_string(kMaxPodUpstreams) + " upstreams");
    }
    return plan;
  }
  if (upstream) plan.upstream = *upstream;
  if (plan.upstream.empty()) {
    problems.push_back(std::string(annotation::upstream) +
                       " is required: the URL of the MCP server the sidecar fronts, e.g. "
                       "http://127.0.0.1:3000/mcp");
    return plan;
  }
  check_url(annotation::upstream, plan.upstream);
  return plan;
}

// The kubelet kills the sidecar terminationGracePeriodSeconds after SIGTERM, drained or not. The
// injector does not change the pod's grace period (it belongs to the pod's owner, and the app may
// need more); a pod that sets one too short for the sidecar's delay and drain gets a warning.
// Without the field, Kubernetes' default of 30 s applies, which the default delay fits.
void warn_about_grace_period(const Json& spec, const SidecarSettings& settings, Review& review) {
  const Json* grace = member(spec, "terminationGracePeriodSeconds");
  if (!grace || !grace->is_number_integer()) return;
  const auto needed = settings.shutdown_delay + kSidecarShutdownDrain + kGracePeriodMargin;
  const std::int64_t needed_seconds = (needed.count() + 999) / 1000;
  const std::int64_t seconds =
      grace->is_number_unsigned()
          ? static_cast<std::int64_t>(std::min<std::uint64_t>(
                grace->get<std::uint64_t>(), std::numeric_limits<std::int64_t>::max()))
          : grace->get<std::int64_t>();
  if (seconds >= needed_seconds) return;
  review.warn("spec.terminationGracePeriodSeconds is " + std::to_string(seconds) +
              ", less than the " + std::to_string(needed_seconds) +
              " seconds the sidecar needs to shut down (shutdown delay " +
              duration_flag(settings.shutdown_delay) + " + drain " +
              duration_flag(kSidecarShutdownDrain) + " + " + duration_flag(kGracePeriodMargin) +
              "); the kubelet would kill it mid-drain. Set it to at least " +
              std::to_string(needed_seconds));
}

void warn_about_unknown_annotations(const PodView& pod, Review& review) {
  for (const auto& key : pod.annotation_keys()) {
    if (!key.starts_with(kAnnotationPrefix)) continue;
    if (std::find(kKnownAnnotations.begin(), kKnownAnnotations.end(), key) !=
        kKnownAnnotations.end()) {
      continue;
    }
    std::string message = "unknown annotation " + quoted_excerpt(key) + " ignored";
    for (const auto known : kKnownAnnotations) {
      if (edit_distance(key, known) <= 3) {
        message += " (did you mean " + std::string(known) + "?)";
        break;
      }
    }
    review.warn(std::move(message));
  }
}

AdmissionAnswer review_pod(const InjectorConfig& config, const Json& request, Review& review) {
  const Json* pod_json = member(request, "object");
  std::string namespace_name = string_member(request, "namespace").value_or("");
  if (namespace_name.empty() && pod_json) {
    const Json* metadata = member(*pod_json, "metadata");
    if (metadata) namespace_name = string_member(*metadata, "namespace").value_or("");
  }
  if (!pod_json || !pod_json->is_object()) {
    return review.cannot_inject("the request has no pod in request.object",
                                "pod " + namespace_name + "/<unknown>");
  }
  const PodView pod(*pod_json);
  const std::string who = "pod " + pod.display_name(namespace_name);

  // Opt-in: the annotation decides when present; else the label, which a webhook
  // configuration's objectSelector can match so that other pods never reach the injector.
  const auto inject_annotation = pod.annotation(annotation::inject);
  const bool opted_in =
      inject_annotation ? *inject_annotation == "true" : pod.label(annotation::inject) == "true";

  // A namespace that is not enabled is never interfered with, not even to refuse bad input.
  if (contains(config.exclude_namespaces, namespace_name) ||
      (!config.include_namespaces.empty() &&
       !contains(config.include_namespaces, namespace_name))) {
    if (!opted_in) return review.pass_by(who + ": namespace not enabled");
    review.warn("namespace " + quoted_excerpt(namespace_name) +
                " is not enabled for sidecar injection; the pod runs without a sidecar");
    return review.allow(who + ": namespace not enabled");
  }
  if (inject_annotation && *inject_annotation != "true" && *inject_annotation != "false") {
    return review.cannot_inject(std::string(annotation::inject) + " " +
                                    quoted_excerpt(*inject_annotation) +
                                    " must be \"true\" or \"false\"",
                                who);
  }
  if (!opted_in) return review.pass_by(who + ": not opted in");
  if (pod.annotation(annotation::injected) == "true" || pod.has_container_named(kSidecarName)) {
    return review.allow(who + ": already injected");
  }

  const Json* spec = pod.spec();
  const Json* containers = spec ? member(*spec, "containers") : nullptr;
  if (!containers || !containers->is_array() || containers->empty()) {
    return review.cannot_inject("the pod has no spec.containers", who);
  }
  const Json* volumes = member(*spec, "volumes");
  if (volumes && !volumes->is_array()) {
    return review.cannot_inject("the pod's spec.volumes is not a list", who);
  }
  const Json* metadata = member(*pod_json, "metadata");
  const Json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
  if ((metadata && !metadata->is_object()) || (annotations && !annotations->is_object())) {
    return review.cannot_inject("the pod's metadata.annotations is not a map", who);
  }
  if (const Json* host_network = member(*spec, "hostNetwork");
      host_network && host_network->is_boolean() && host_network->get<bool>()) {
    // The sidecar would listen on the node's own interfaces.
    return review.cannot_inject("pods with hostNetwork: true are not injected", who);
  }

  warn_about_unknown_annotations(pod, review);
  std::vector<std::string> problems;
  const SidecarPlan plan = plan_sidecar(pod, config.sidecar, review, problems);
  if (problems.empty()) {
    if (const auto user = pod.container_using_port(plan.port)) {
      problems.push_back("port " + std::to_string(plan.port) + " is already used by container " +
                         quoted_excerpt(*user) + "; set " + std::string(annotation::port) +
                         " to a free port");
    }
  }
  if (volumes) {
    for (const auto& volume : *volumes) {
      if (string_member(volume, "name") == std::optional<std::string>(kPolicyVolumeName)) {
        problems.push_back("the pod already has a volume named " + std::string(kPolicyVolumeName));
      }
    }
  }
  if (!problems.empty()) {
    std::string joined;
    for (const auto& problem : problems)
      joined += (joined.empty() ? "" : "; ") + problem;
    return review.cannot_inject(joined, who);
  }
  warn_about_grace_period(*spec, config.sidecar, review);
  return review.allow_with_patch(injection_patch(*pod_json, plan, config.sidecar),
                                 who + ": injected (" + plan.upstream_name + "=" + fronted(plan) +
                                     ", port " + std::to_string(plan.port) + ", policy " +
                                     plan.policy_configmap + ")");
}

}  // namespace

AdmissionAnswer SidecarInjector::review(std::string_view request_body) const {
  // Nesting is bounded before parsing (limits.max_json_depth): no pod is nested anywhere near
  // that deep, and every later walk of the review may then recurse.
  const auto parsed = json::parse(request_body);
  if (!parsed.ok()) return unanswerable("the body is " + parsed.reason());
  const Json& envelope = parsed.value;
  if (!envelope.is_object()) return unanswerable("the body is not a JSON object");
  const Json* request = member(envelope, "request");
  const auto uid = request ? string_member(*request, "uid") : std::nullopt;
  if (!uid || uid->empty())
    return unanswerable("request.uid is missing, so there is no one to answer");

  Review review(config_, *uid);
  const std::string who = "request " + quoted_excerpt(*uid);
  const auto api_version = string_member(envelope, "apiVersion").value_or("");
  const auto kind = string_member(envelope, "kind").value_or("");
  if (api_version != kAdmissionApiVersion || kind != kAdmissionKind) {
    return review.cannot_inject(
        "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, "
        "got " +
            quoted_excerpt(api_version) + " " + quoted_excerpt(kind) +
            " (set admissionReviewVersions: [v1])",
        who);
  }
  const Json* resource_kind = member(*request, "kind");
  const auto group = resource_kind ? string_member(*resource_kind, "group").value_or("") : "";
  const auto object_kind = resource_kind ? string_member(*resource_kind, "kind").value_or("") : "";
  if (!group.empty() || object_kind != "Pod") {
    return review.cannot_inject(
        "only Pods are injected, got " +
            quoted_excerpt(group.empty() ? object_kind : group + "/" + object_kind) +
            " (check the rules of the MutatingWebhookConfiguration)",
        who);
  }
  // A subresource (pods/status, pods/binding, ...) or an update is never ours to change: the
  // containers of a running pod cannot be added to.
  if (!string_member(*request, "subResource").value_or("").empty()) {
    return review.pass_by(who + ": subresource, ignored");
  }
  const auto operation = string_member(*request, "operation").value_or("CREATE");
  if (operation != "CREATE") return review.pass_by(who + ": " + operation + ", ignored");
  return review_pod(config_, *request, review);
}

InjectorConfigError::InjectorConfigError(std::string file, int line, int column,
                                         const std::string& message)
    : std::runtime_error([&] {
        std::string where = file;
        if (line > 0) where += ":" + std::to_string(line);
        if (line > 0 && column > 0) where += ":" + std::to_string(column);
        return where + ": " + message;
      }()),
      file_(std::move(file)),
      line_(line),
      column_(column),
      message_(message) {}

}  // namespace membrane::inject
