// The sidecar injector: a Kubernetes mutating admission webhook that adds a Membrane container
// next to every pod that opts in. This header is the pure part: AdmissionReview text in,
// AdmissionReview text out, no networking, so every decision is unit-testable.
//
// admission.k8s.io/v1 AdmissionReview:
// https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace membrane::inject {

// The pod annotations (and the one label) the injector reads and writes.
namespace annotation {
inline constexpr std::string_view inject = "membrane.dev/inject";  // "true" opts in (also a label)
inline constexpr std::string_view injected = "membrane.dev/injected";  // written by the injector
inline constexpr std::string_view upstream = "membrane.dev/upstream";  // http(s) URL fronted
inline constexpr std::string_view upstream_name = "membrane.dev/upstream-name";  // /mcp/<name>
// Several servers in the pod behind one URL: "NAME=URL,NAME=URL", published as one virtual
// server at /mcp/<upstream-name> (instead of membrane.dev/upstream).
inline constexpr std::string_view upstreams = "membrane.dev/upstreams";
inline constexpr std::string_view port = "membrane.dev/port";  // the port agents connect to
inline constexpr std::string_view policy_configmap = "membrane.dev/policy-configmap";
inline constexpr std::string_view policy_mode = "membrane.dev/policy-mode";  // enforce | shadow
inline constexpr std::string_view image = "membrane.dev/image";  // only if the config allows it
}  // namespace annotation

// What the injected container is called; a pod that already has a container of this name is
// taken as injected and left alone.
inline constexpr std::string_view kSidecarName = "membrane";
inline constexpr std::string_view kPolicyVolumeName = "membrane-policies";
inline constexpr std::string_view kPolicyMountPath = "/etc/membrane/policies";

// What to do with input the injector cannot act on (a malformed pod, a bad annotation value, a
// request that is not for a Pod): let the pod through uninjected with a warning the user sees in
// kubectl, or refuse it with a message.
enum class OnError { allow, deny };

struct ResourceQuantities {
  std::string cpu;     // Kubernetes quantity, e.g. "50m"; empty = not set
  std::string memory;  // e.g. "64Mi"; empty = not set
};

// The sidecar every injected pod gets. Annotations may override some of these per pod.
struct SidecarSettings {
  std::string image = "membrane:0.1.0";
  std::string image_pull_policy = "IfNotPresent";  // Always | IfNotPresent | Never
  bool allow_image_annotation = false;  // honour membrane.dev/image (lets pod authors pick code)
  std::uint16_t port = 8080;
  std::string upstream;  // default for pods without membrane.dev/upstream; empty = required
  std::string upstream_name = "app";
  std::string policy_configmap = "membrane-policies";
  bool allow_policy_configmap_annotation = true;
  std::string policy_mode = "enforce";  // enforce | shadow
  std::string log_level = "info";
  // Gateway worker threads. `membrane serve` defaults to one per CPU core of the node, which
  // ignores the container's CPU limit; 0 keeps that default.
  unsigned workers = 2;
  std::int64_t run_as_user = 10001;  // also the group; must not be 0 (runAsNonRoot)
  // A Secret in the pod's namespace whose key `key` becomes $MEMBRANE_SESSION_KEY, so
  // sessions survive a sidecar restart; empty = a random key per start.
  std::string session_key_secret;
  // `membrane serve --shutdown-delay`: after SIGTERM the sidecar keeps accepting this long while
  // /readyz answers 503, then drains. The injected readiness probe runs every 2 s and needs 2
  // failures, so the kubelet marks the pod unready at most 4 s after SIGTERM; the rest of the
  // 10 s lets the endpoint update reach every node before the listener closes. 10 s + the 15 s
  // drain + 5 s of slack is also exactly the default terminationGracePeriodSeconds (30). 0 = no
  // delay.
  std::chrono::milliseconds shutdown_delay{10'000};
  // `membrane serve --redis`: rate-limit buckets and approval answers shared by every sidecar
  // that uses this Redis. redis://HOST[:PORT][/DB], never a password; empty = off.
  std::string redis_url;
  // A Secret in the pod's namespace whose key `password` becomes $MEMBRANE_REDIS_PASSWORD; only
  // with redis_url. Empty = Redis without a password.
  std::string redis_password_secret;
  ResourceQuantities requests{"50m", "64Mi"};
  ResourceQuantities limits{"1", "256Mi"};
};

struct InjectorConfig {
  OnError on_error = OnError::allow;
  // Namespaces whose pods may be injected: `include` empty = any namespace the webhook
  // configuration sends; `exclude` always wins.
  std::vector<std::string> include_namespaces;
  std::vector<std::string> exclude_namespaces{"kube-system", "kube-public", "kube-node-lease"};
  SidecarSettings sidecar;
  std::string source = "<defaults>";  // the file it came from
};

// Thrown only while loading the injector config. what() is "file:line:col: message".
class InjectorConfigError : public std::runtime_error {
 public:
  InjectorConfigError(std::string file, int line, int column, const std::string& message);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  int line_;
  int column_;
  std::string message_;
};

// Reads and validates an injector config (YAML). Unknown keys, wrong types and bad values throw
// InjectorConfigError naming file:line:col.
InjectorConfig load_injector_config_file(const std::string& path);
InjectorConfig load_injector_config_text(const std::string& yaml_text,
                                         const std::string& source_name);

// The answer to one POST /mutate.
struct AdmissionAnswer {
  int http_status = 200;  // 200 with an AdmissionReview; 400 when there is no uid to answer
  std::string body;       // JSON
  std::string summary;    // one line for the log: which pod, and what was done
  bool routine = false;   // nothing to report (a pod that did not opt in): logged at debug
};

class SidecarInjector {
 public:
  explicit SidecarInjector(InjectorConfig config) : config_(std::move(config)) {}

  // Never throws for any input: every problem becomes an answer.
  AdmissionAnswer review(std::string_view request_body) const;

  const InjectorConfig& config() const { return config_; }

 private:
  InjectorConfig config_;
};

}  // namespace membrane::inject
