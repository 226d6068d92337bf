// Unit tests for the sidecar injector (`membrane inject`): AdmissionReview fixtures in
// tests/data/inject go in, and the exact JSON Patch or a clear answer comes out.
#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "inject/values.hpp"
#include "membrane/app/cli.hpp"
#include "membrane/inject/injector.hpp"
#include "membrane/inject/webhook.hpp"

using namespace membrane::inject;
using Json = nlohmann::json;
using Catch::Matchers::Contains;

namespace {

const std::string kDataDir = MEMBRANE_TEST_DATA_DIR "/inject/";

std::string read_fixture(const std::string& name) {
  std::ifstream file(kDataDir + name, std::ios::binary);
  REQUIRE(file);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

Json fixture_json(const std::string& name) {
  return Json::parse(read_fixture(name));
}

InjectorConfig test_config() {
  return load_injector_config_file(kDataDir + "injector.yaml");
}

std::string base64_decode(const std::string& text) {
  std::string bytes(text.size() / 4 * 3, '\0');
  const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                                     reinterpret_cast<const unsigned char*>(text.data()),
                                     static_cast<int>(text.size()));
  REQUIRE(length >= 0);
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t padding = 0;
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it)
    ++padding;
  bytes.resize(static_cast<std::size_t>(length) - padding);
  return bytes;
}

struct Reviewed {
  int http_status = 0;
  Json body;
  Json response;  // body["response"], when there is one

  bool has_patch() const { return response.contains("patch"); }
  Json patch() const { return Json::parse(base64_decode(response.at("patch").get<std::string>())); }
  std::string warnings() const { return response.value("warnings", Json::array()).dump(); }
};

Reviewed review(const std::string& text, const InjectorConfig& config = test_config()) {
  const AdmissionAnswer answer = SidecarInjector(config).review(text);
  Reviewed reviewed;
  reviewed.http_status = answer.http_status;
  reviewed.body = Json::parse(answer.body);  // every answer is JSON
  if (reviewed.body.contains("response")) reviewed.response = reviewed.body["response"];
  return reviewed;
}

Reviewed review(const Json& document, const InjectorConfig& config = test_config()) {
  return review(document.dump(), config);
}

InjectorConfig denying(InjectorConfig config = test_config()) {
  config.on_error = OnError::deny;
  return config;
}

Json annotated_review() {
  return fixture_json("review-annotated.json");
}

Json& annotations_of(Json& review_document) {
  return review_document["request"]["object"]["metadata"]["annotations"];
}

// The sidecar container the patch adds.
Json sidecar_of(const Reviewed& reviewed) {
  for (const auto& operation : reviewed.patch()) {
    if (operation["path"] == "/spec/containers/-") return operation["value"];
  }
  FAIL("the patch adds no container");
  return {};
}

}  // namespace

// ---- The fixtures named in the acceptance criteria -------------------------------------------

TEST_CASE("an annotated pod gets exactly the expected patch", "[inject]") {
  const Reviewed reviewed = review(read_fixture("review-annotated.json"));
  REQUIRE(reviewed.http_status == 200);
  CHECK(reviewed.body["apiVersion"] == "admission.k8s.io/v1");
  CHECK(reviewed.body["kind"] == "AdmissionReview");
  CHECK(reviewed.response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002");
  CHECK(reviewed.response["allowed"] == true);
  CHECK(reviewed.response["patchType"] == "JSONPatch");
  CHECK_FALSE(reviewed.response.contains("warnings"));
  CHECK(reviewed.patch() == fixture_json("review-annotated.patch.json"));
}

TEST_CASE("a pod opted in by label without annotations or volumes gets whole arrays and maps",
          "[inject]") {
  const Reviewed reviewed = review(read_fixture("review-labelled-bare.json"));
  REQUIRE(reviewed.http_status == 200);
  CHECK(reviewed.response["allowed"] == true);
  CHECK(reviewed.patch() == fixture_json("review-labelled-bare.patch.json"));
}

TEST_CASE("a pod that did not opt in is allowed without a patch or a warning", "[inject]") {
  const Reviewed reviewed = review(read_fixture("review-not-annotated.json"));
  REQUIRE(reviewed.http_status == 200);
  CHECK(reviewed.response["uid"] == "0f9d8e7c-0000-4000-8000-00000000c001");
  CHECK(reviewed.response["allowed"] == true);
  CHECK_FALSE(reviewed.has_patch());
  CHECK_FALSE(reviewed.response.contains("patchType"));
  CHECK_FALSE(reviewed.response.contains("warnings"));
  // Most pods are not for us: the log mentions them only at debug level.
  const SidecarInjector injector(test_config());
  CHECK(injector.review(read_fixture("review-not-annotated.json")).routine);
  CHECK_FALSE(injector.review(read_fixture("review-annotated.json")).routine);
}

TEST_CASE("an already injected pod is left alone", "[inject]") {
  SECTION("marked and carrying the sidecar") {
    const Reviewed reviewed = review(read_fixture("review-already-injected.json"));
    REQUIRE(reviewed.http_status == 200);
    CHECK(reviewed.response["allowed"] == true);
    CHECK_FALSE(reviewed.has_patch());
  }
  SECTION("only a container named membrane") {
    Json document = fixture_json("review-already-injected.json");
    annotations_of(document).erase("membrane.dev/injected");
    const Reviewed reviewed = review(document);
    CHECK(reviewed.response["allowed"] == true);
    CHECK_FALSE(reviewed.has_patch());
  }
  SECTION("only the injected mark") {
    Json document = annotated_review();
    annotations_of(document)["membrane.dev/injected"] = "true";
    const Reviewed reviewed = review(document);
    CHECK(reviewed.response["allowed"] == true);
    CHECK_FALSE(reviewed.has_patch());
  }
}

TEST_CASE("the patched pod is taken as injected when it comes back", "[inject]") {
  // What a re-invoked webhook (reinvocationPolicy: IfNeeded) sees: the pod with our patch applied.
  Json document = annotated_review();
  Json& pod = document["request"]["object"];
  for (const auto& operation : review(document).patch()) {
    const std::string path = operation["path"];
    if (path == "/spec/containers/-") pod["spec"]["containers"].push_back(operation["value"]);
    if (path == "/spec/volumes/-") pod["spec"]["volumes"].push_back(operation["value"]);
    if (path == "/metadata/annotations/membrane.dev~1injected")
      pod["metadata"]["annotations"]["membrane.dev/injected"] = operation["value"];
  }
  const Reviewed again = review(document);
  CHECK(again.response["allowed"] == true);
  CHECK_FALSE(again.has_patch());
}

TEST_CASE("malformed JSON gets HTTP 400 with a clear message", "[inject]") {
  const Reviewed reviewed = review(read_fixture("review-malformed.json"));
  CHECK(reviewed.http_status == 400);
  CHECK_THAT(reviewed.body["error"].get<std::string>(), Contains("not valid JSON"));
  CHECK_FALSE(reviewed.body.contains("response"));
}

TEST_CASE("a review without a uid gets HTTP 400: there is nobody to answer", "[inject]") {
  for (const char* text : {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})",
                           R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                               "request":{"uid":""}})",
                           R"({"request":{"uid":42}})", "[]", "\"text\"", "null", ""}) {
    const Reviewed reviewed = review(std::string(text));
    INFO(text);
    CHECK(reviewed.http_status == 400);
    CHECK(reviewed.body["error"].is_string());
  }
}

TEST_CASE("a Deployment is the wrong kind: allowed with a warning, or refused", "[inject]") {
  SECTION("on_error: allow") {
    const Reviewed reviewed = review(read_fixture("review-deployment.json"));
    REQUIRE(reviewed.http_status == 200);
    CHECK(reviewed.response["uid"] == "0f9d8e7c-0000-4000-8000-00000000f001");
    CHECK(reviewed.response["allowed"] == true);
    CHECK_FALSE(reviewed.has_patch());
    CHECK_THAT(reviewed.warnings(),
               Contains("only Pods are injected") && Contains("apps/Deployment"));
  }
  SECTION("on_error: deny") {
    const Reviewed reviewed = review(read_fixture("review-deployment.json"), denying());
    REQUIRE(reviewed.http_status == 200);
    CHECK(reviewed.response["allowed"] == false);
    CHECK(reviewed.response["status"]["code"] == 400);
    CHECK_THAT(reviewed.response["status"]["message"].get<std::string>(),
               Contains("only Pods are injected"));
  }
}

TEST_CASE("a review that is not admission.k8s.io/v1 is answered as configured", "[inject]") {
  const Reviewed allowed = review(read_fixture("review-v1beta1.json"));
  CHECK(allowed.response["allowed"] == true);
  CHECK_FALSE(allowed.has_patch());
  CHECK_THAT(allowed.warnings(), Contains("admissionReviewVersions"));

  Json wrong_kind = annotated_review();
  wrong_kind["kind"] = "Pod";
  const Reviewed refused = review(wrong_kind, denying());
  CHECK(refused.response["allowed"] == false);
  CHECK_THAT(refused.response["status"]["message"].get<std::string>(), Contains("AdmissionReview"));
}

// ---- Annotation values ---------------------------------------------------------------------

TEST_CASE("bad annotation values are named in the warning or the denial", "[inject]") {
  SECTION("on_error: allow lets the pod through uninjected") {
    const Reviewed reviewed = review(read_fixture("review-bad-annotations.json"));
    CHECK(reviewed.response["allowed"] == true);
    CHECK_FALSE(reviewed.has_patch());
    CHECK_THAT(reviewed.warnings(), Contains("membrane.dev/port 'abc' is not a port number") &&
                                        Contains("membrane.dev/upstream 'ftp://files.example.com/"
                                                 "mcp' is not an http:// or https:// URL"));
  }
  SECTION("on_error: deny refuses it with the same message") {
    const Reviewed reviewed = review(read_fixture("review-bad-annotations.json"), denying());
    CHECK(reviewed.response["allowed"] == false);
    const std::string message = reviewed.response["status"]["message"];
    CHECK_THAT(message, Contains("membrane.dev/port 'abc'") && Contains("membrane.dev/upstream"));
  }
}

TEST_CASE("ports outside 1-65535 are refused", "[inject]") {
  for (const char* port : {"0", "65536", "-1", "80a", "", "99999999999", " 80"}) {
    Json document = annotated_review();
    annotations_of(document)["membrane.dev/port"] = port;
    const Reviewed reviewed = review(document, denying());
    INFO(port);
    CHECK(reviewed.response["allowed"] == false);
    CHECK_THAT(reviewed.response["status"]["message"].get<std::string>(),
               Contains("membrane.dev/port"));
  }
  Json document = annotated_review();
  annotations_of(document)["membrane.dev/port"] = "65535";
  CHECK(sidecar_of(review(document))["ports"][0]["containerPort"] == 65535);
}

TEST_CASE("an upstream annotation must be a URL the sidecar can start with", "[inject]") {
  for (const char* url :
       {"ftp://x", "127.0.0.1:3000/mcp", "http://", "http://user:pw@127.0.0.1/mcp",
        "http://127.0.0.1:3000/mcp#top", "http://127.0.0.1:0/mcp", "http://exa mple.com/mcp",
        "http://[::1/mcp", "stdio:node server.js", "http://127.0.0.1:9000/mcp"}) {
    Json document = annotated_review();  // the sidecar port is 9000: the last one is a loop
    annotations_of(document)["membrane.dev/upstream"] = url;
    const Reviewed reviewed = review(document, denying());
    INFO(url);
    CHECK(reviewed.response["allowed"] == false);
    CHECK_THAT(reviewed.response["status"]["message"].get<std::string>(),
               Contains("membrane.dev/upstream"));
  }
  for (const char* url : {"https://crm.internal.example.com/mcp", "http://[::1]:3000/mcp",
                          "HTTP://localhost:3000/mcp?tenant=a"}) {
    Json document = annotated_review();
    annotations_of(document)["membrane.dev/upstream"] = url;
    INFO(url);
    CHECK(sidecar_of(review(document))["args"][4] == std::string("crm=") + url);
  }
}

TEST_CASE("the upstream URL checks agree with membrane serve --upstream", "[inject]") {
  for (const char* url :
       {"http://127.0.0.1:3000/mcp", "https://a.example.com", "http://[::1]:80/x", "ftp://x",
        "http://", "http://u@h/", "http://h:0/", "http://h:/", "http://h#f", "http://h h",
        "http://[zz]/", "http://h:65536/", "https://h:443/mcp?x=1", "http://under_score:8/"}) {
    std::string problem;
    const bool injector_accepts = parse_http_url(url, problem).has_value();
    bool serve_accepts = true;
    try {
      membrane::app::parse_upstream_flag(std::string("name=") + url);
    } catch (const membrane::app::ConfigError&) {
      serve_accepts = false;
    }
    INFO(url);
    CHECK(injector_accepts == serve_accepts);
  }
}

TEST_CASE("the sidecar's args are a valid membrane serve command line", "[inject]") {
  const Json sidecar = sidecar_of(review(annotated_review()));
  std::vector<std::string> args = sidecar["args"].get<std::vector<std::string>>();
  const auto command = membrane::app::parse_command_line(args);
  REQUIRE(command.verb == membrane::app::Verb::serve);
  CHECK(command.config.listen.host == "0.0.0.0");
  CHECK(command.config.listen.port == 9000);
  REQUIRE(command.config.upstreams.size() == 1);
  CHECK(command.config.upstreams[0].name == "crm");
  CHECK(std::get<membrane::app::HttpUpstreamConfig>(command.config.upstreams[0].transport).url ==
        "http://127.0.0.1:3000/mcp");
  CHECK(command.config.policy.paths == std::vector<std::string>{"/etc/membrane/policies/..data"});
  CHECK_FALSE(command.config.policy.shadow);
  CHECK(command.config.worker_threads == 2);
  CHECK(command.config.timeouts.shutdown_delay == std::chrono::seconds(10));
  CHECK(command.config.cluster.redis_url.empty());

  InjectorConfig config = test_config();
  config.sidecar.shutdown_delay = std::chrono::milliseconds(2500);
  config.sidecar.redis_url = "redis://membrane:@redis.membrane.svc:6379/1";
  args = sidecar_of(review(annotated_review(), config))["args"].get<std::vector<std::string>>();
  const auto with_redis = membrane::app::parse_command_line(args);
  CHECK(with_redis.config.timeouts.shutdown_delay == std::chrono::milliseconds(2500));
  CHECK(with_redis.config.cluster.redis_url == "redis://membrane:@redis.membrane.svc:6379/1");
}

TEST_CASE("the redis_url checks agree with membrane serve --redis", "[inject]") {
  const std::vector<std::string> accepted{"redis://127.0.0.1:6379", "redis://redis.membrane.svc",
                                          "REDIS://h:6379/2",       "redis://[::1]:6379/0",
                                          "redis://user:@h",        "redis://:@h",
                                          "redis://a%41:@h",        "redis://h/"};
  const std::vector<std::string> refused{
      "redis://user:pw@h", "redis://:pw@h:6379", "rediss://h:6380", "http://h",    "redis://",
      "redis://:6379",     "redis://h:0",        "redis://h:65536", "redis://h:x", "redis://h/x"};
  const std::vector<std::string> refused_too{"redis://h?db=1", "redis://h#f", "redis://[::1",
                                             "redis://user@h", "h:6379",      "redis://a%4:@h"};
  std::vector<std::string> urls = accepted;
  urls.insert(urls.end(), refused.begin(), refused.end());
  urls.insert(urls.end(), refused_too.begin(), refused_too.end());
  for (const std::string& url : urls) {
    const std::string yaml = "sidecar:\n  redis_url: \"" + url + "\"\n";
    bool injector_accepts = true;
    try {
      load_injector_config_text(yaml, "inject.yaml");
    } catch (const InjectorConfigError&) {
      injector_accepts = false;
    }
    bool serve_accepts = true;
    try {
      membrane::app::parse_command_line(
          {"serve", "--upstream", "a=http://127.0.0.1:3000/mcp", "--redis", url});
    } catch (const std::exception&) {
      serve_accepts = false;
    }
    INFO(url);
    CHECK(injector_accepts == serve_accepts);
    const bool expected = std::find(accepted.begin(), accepted.end(), url) != accepted.end();
    CHECK(injector_accepts == expected);
  }
}

TEST_CASE("the shutdown delay is in the args unless it is 0s", "[inject]") {
  const auto args_with = [](const std::string& yaml) {
    InjectorConfig config = load_injector_config_text(yaml, "inject.yaml");
    config.sidecar.upstream = "http://127.0.0.1:3000/mcp";
    return sidecar_of(review(annotated_review(), config))["args"].dump();
  };
  SECTION("by default") {
    CHECK(load_injector_config_text("", "inject.yaml").sidecar.shutdown_delay ==
          std::chrono::seconds(10));
    CHECK_THAT(args_with(""), Contains(R"("--shutdown-delay","10s")"));
  }
  SECTION("set in seconds, milliseconds or minutes") {
    CHECK_THAT(args_with("sidecar: {shutdown_delay: 3s}"), Contains(R"("--shutdown-delay","3s")"));
    CHECK_THAT(args_with("sidecar: {shutdown_delay: 1500ms}"),
               Contains(R"("--shutdown-delay","1500ms")"));
    CHECK_THAT(args_with("sidecar: {shutdown_delay: 1m}"), Contains(R"("--shutdown-delay","60s")"));
  }
  SECTION("0s turns it off") {
    CHECK(load_injector_config_text("sidecar: {shutdown_delay: 0s}", "inject.yaml")
              .sidecar.shutdown_delay.count() == 0);
    CHECK_THAT(args_with("sidecar: {shutdown_delay: 0s}"), !Contains("--shutdown-delay"));
  }
}

TEST_CASE("redis_url and redis_password_secret reach the sidecar", "[inject]") {
  SECTION("off by default: no --redis, no Redis password") {
    const Json sidecar = sidecar_of(review(annotated_review()));
    CHECK_THAT(sidecar["args"].dump(), !Contains("--redis"));
    CHECK_FALSE(sidecar.contains("env"));
  }
  SECTION("URL only") {
    const InjectorConfig config = load_injector_config_text(
        "sidecar:\n  upstream: http://127.0.0.1:3000/mcp\n"
        "  redis_url: redis://membrane-redis.membrane.svc:6379/0\n",
        "inject.yaml");
    const Json sidecar = sidecar_of(review(annotated_review(), config));
    CHECK_THAT(sidecar["args"].dump(),
               Contains(R"("--redis","redis://membrane-redis.membrane.svc:6379/0")"));
    CHECK_FALSE(sidecar.contains("env"));
  }
  SECTION("URL and password Secret, after the session key") {
    const InjectorConfig config = load_injector_config_text(
        "sidecar:\n  upstream: http://127.0.0.1:3000/mcp\n"
        "  session_key_secret: membrane-session-key\n"
        "  redis_password_secret: membrane-redis\n"
        "  redis_url: redis://membrane-redis.membrane.svc:6379\n",
        "inject.yaml");
    CHECK(config.sidecar.redis_password_secret == "membrane-redis");
    const Json sidecar = sidecar_of(review(annotated_review(), config));
    CHECK_THAT(sidecar["args"].dump(),
               Contains(R"("--redis","redis://membrane-redis.membrane.svc:6379")"));
    CHECK(sidecar["env"] == Json::parse(R"([
        {"name":"MEMBRANE_SESSION_KEY",
         "valueFrom":{"secretKeyRef":{"name":"membrane-session-key","key":"key"}}},
        {"name":"MEMBRANE_REDIS_PASSWORD",
         "valueFrom":{"secretKeyRef":{"name":"membrane-redis","key":"password"}}}])"));
  }
  SECTION("password Secret without the session key") {
    InjectorConfig config = test_config();
    config.sidecar.redis_url = "redis://10.0.0.7";
    config.sidecar.redis_password_secret = "membrane-redis";
    CHECK(sidecar_of(review(annotated_review(), config))["env"] ==
          Json::parse(R"([{"name":"MEMBRANE_REDIS_PASSWORD",
              "valueFrom":{"secretKeyRef":{"name":"membrane-redis","key":"password"}}}])"));
  }
}

TEST_CASE("a terminationGracePeriodSeconds too short for the sidecar's drain is warned about",
          "[inject]") {
  const auto with_grace_period = [](const Json& seconds,
                                    const InjectorConfig& config = test_config()) {
    Json document = annotated_review();
    if (!seconds.is_null())
      document["request"]["object"]["spec"]["terminationGracePeriodSeconds"] = seconds;
    return review(document, config);
  };
  SECTION("10 s: injected, with a warning naming what it is and what it needs") {
    const Reviewed reviewed = with_grace_period(10);
    CHECK(reviewed.response["allowed"] == true);
    CHECK(reviewed.has_patch());
    CHECK_THAT(reviewed.warnings(),
               Contains("spec.terminationGracePeriodSeconds is 10, less than the 30") &&
                   Contains("at least 30"));
  }
  SECTION("never refused for it, even with on_error: deny") {
    const Reviewed reviewed = with_grace_period(10, denying());
    CHECK(reviewed.response["allowed"] == true);
    CHECK(reviewed.has_patch());
    CHECK_THAT(reviewed.warnings(), Contains("terminationGracePeriodSeconds is 10"));
  }
  SECTION("unset, enough, or more: no warning") {
    for (const Json& seconds : {Json(), Json(30), Json(60), Json(std::uint64_t{1} << 63)}) {
      INFO(seconds.dump());
      const Reviewed reviewed = with_grace_period(seconds);
      CHECK(reviewed.has_patch());
      CHECK_FALSE(reviewed.response.contains("warnings"));
    }
  }
  SECTION("the needed time follows shutdown_delay") {
    InjectorConfig config = test_config();
    config.sidecar.shutdown_delay = std::chrono::milliseconds(20'500);
    CHECK_THAT(with_grace_period(30, config).warnings(),
               Contains("is 30, less than the 41") && Contains("shutdown delay 20500ms"));
    config.sidecar.shutdown_delay = std::chrono::milliseconds(0);
    CHECK_FALSE(with_grace_period(20, config).response.contains("warnings"));
    CHECK_THAT(with_grace_period(19, config).warnings(), Contains("less than the 20"));
  }
  SECTION("a value of the wrong type is left to the API server") {
    CHECK_FALSE(with_grace_period("10").response.contains("warnings"));
  }
}

TEST_CASE("annotations choose the upstream name, policy mode and policy ConfigMap", "[inject]") {
  Json document = annotated_review();
  annotations_of(document)["membrane.dev/policy-mode"] = "shadow";
  annotations_of(document)["membrane.dev/policy-configmap"] = "crm-policies";
  const Reviewed reviewed = review(document);
  const Json sidecar = sidecar_of(reviewed);
  CHECK(sidecar["args"][8] == "shadow");
  CHECK(reviewed.patch()[1]["value"]["configMap"]["name"] == "crm-policies");

  annotations_of(document)["membrane.dev/policy-configmap"] = "Not_A_Name";
  annotations_of(document)["membrane.dev/policy-mode"] = "audit";
  annotations_of(document)["membrane.dev/upstream-name"] = "crm/../x";
  const std::string message = review(document, denying()).response["status"]["message"];
  CHECK_THAT(message, Contains("membrane.dev/policy-configmap 'Not_A_Name'") &&
                          Contains("membrane.dev/policy-mode 'audit'") &&
                          Contains("membrane.dev/upstream-name 'crm/../x'"));
}

TEST_CASE("the image annotation is honoured only when the config allows it", "[inject]") {
  Json document = annotated_review();
  annotations_of(document)["membrane.dev/image"] = "evil.example.com/membrane:latest";
  const Reviewed ignored = review(document);
  CHECK(sidecar_of(ignored)["image"] == "registry.example.com/membrane:0.1.0");
  CHECK_THAT(ignored.warnings(), Contains("membrane.dev/image is ignored"));

  InjectorConfig permissive = test_config();
  permissive.sidecar.allow_image_annotation = true;
  CHECK(sidecar_of(review(document, permissive))["image"] == "evil.example.com/membrane:latest");
}

TEST_CASE("a misspelt membrane.dev annotation gets a warning with a suggestion", "[inject]") {
  Json document = annotated_review();
  annotations_of(document)["membrane.dev/prot"] = "9001";
  const Reviewed reviewed = review(document);
  CHECK(reviewed.has_patch());
  CHECK_THAT(reviewed.warnings(), Contains("unknown annotation 'membrane.dev/prot'") &&
                                      Contains("did you mean membrane.dev/port?"));
}

TEST_CASE("membrane.dev/inject takes only true or false", "[inject]") {
  Json document = annotated_review();
  annotations_of(document)["membrane.dev/inject"] = "false";
  CHECK_FALSE(review(document).has_patch());
  CHECK_FALSE(review(document).response.contains("warnings"));

  annotations_of(document)["membrane.dev/inject"] = "yes";
  const Reviewed reviewed = review(document);
  CHECK(reviewed.response["allowed"] == true);
  CHECK_FALSE(reviewed.has_patch());
  CHECK_THAT(reviewed.warnings(), Contains("must be \\\"true\\\" or \\\"false\\\""));
}

TEST_CASE("an annotation of false wins over the label", "[inject]") {
  Json document = fixture_json("review-labelled-bare.json");
  document["request"]["object"]["metadata"]["annotations"] = {{"membrane.dev/inject", "false"}};
  CHECK_FALSE(review(document).has_patch());
}

TEST_CASE("a pod without an upstream needs the annotation when the config has no default",
          "[inject]") {
  const Reviewed reviewed = review(read_fixture("review-labelled-bare.json"), InjectorConfig{});
  CHECK(reviewed.response["allowed"] == true);
  CHECK_FALSE(reviewed.has_patch());
  CHECK_THAT(reviewed.warnings(), Contains("membrane.dev/upstream is required"));
}

// ---- The pod -----------------------------------------------------------------------------------

TEST_CASE("the sidecar port must be free in the pod", "[inject]") {
  Json document = annotated_review();
  annotations_of(document)["membrane.dev/port"] = "3000";  // the app's own port
  annotations_of(document)["membrane.dev/upstream"] = "http://127.0.0.1:3001/mcp";
  const std::string message = review(document, denying()).response["status"]["message"];
  CHECK_THAT(message, Contains("port 3000 is already used by container 'crm-mcp'"));
}

TEST_CASE("a pod that already has a volume of the sidecar's name is not injected", "[inject]") {
  Json document = annotated_review();
  document["request"]["object"]["spec"]["volumes"].push_back(
      {{"name", "membrane-policies"}, {"emptyDir", Json::object()}});
  const Reviewed reviewed = review(document, denying());
  CHECK(reviewed.response["allowed"] == false);
  CHECK_THAT(reviewed.response["status"]["message"].get<std::string>(),
             Contains("already has a volume named membrane-policies"));
}

TEST_CASE("pods on the host network are not injected", "[inject]") {
  Json document = annotated_review();
  document["request"]["object"]["spec"]["hostNetwork"] = true;
  CHECK_THAT(review(document).warnings(), Contains("hostNetwork"));
}

TEST_CASE("a pod without containers is answered, not injected", "[inject]") {
  Json document = annotated_review();
  document["request"]["object"]["spec"].erase("containers");
  const Reviewed reviewed = review(document);
  CHECK(reviewed.response["allowed"] == true);
  CHECK_THAT(reviewed.warnings(), Contains("no spec.containers"));
}

TEST_CASE("namespaces opt in through the config", "[inject]") {
  SECTION("excluded namespaces are never injected") {
    Json document = annotated_review();
    document["request"]["namespace"] = "kube-system";
    const Reviewed reviewed = review(document);
    CHECK(reviewed.response["allowed"] == true);
    CHECK_FALSE(reviewed.has_patch());
    CHECK_THAT(reviewed.warnings(), Contains("namespace 'kube-system' is not enabled"));
  }
  SECTION("with an include list, only those") {
    InjectorConfig config = test_config();
    config.include_namespaces = {"team-a"};
    CHECK_FALSE(review(annotated_review(), config).has_patch());
    Json document = annotated_review();
    document["request"]["namespace"] = "team-a";
    CHECK(review(document, config).has_patch());
  }
  SECTION("bad input in a disabled namespace is never refused") {
    Json document = annotated_review();
    document["request"]["namespace"] = "kube-system";
    annotations_of(document)["membrane.dev/inject"] = "yes";
    const Reviewed reviewed = review(document, denying());
    CHECK(reviewed.response["allowed"] == true);
    CHECK_FALSE(reviewed.response.contains("warnings"));
  }
  SECTION("a pod that did not opt in gets no warning in a disabled namespace") {
    Json document = fixture_json("review-not-annotated.json");
    document["request"]["namespace"] = "kube-system";
    CHECK_FALSE(review(document).response.contains("warnings"));
  }
}

TEST_CASE("updates and subresources are never patched", "[inject]") {
  Json update = annotated_review();
  update["request"]["operation"] = "UPDATE";
  CHECK(review(update).response["allowed"] == true);
  CHECK_FALSE(review(update).has_patch());

  Json binding = annotated_review();
  binding["request"]["subResource"] = "binding";
  CHECK_FALSE(review(binding).has_patch());
  CHECK_FALSE(review(binding).response.contains("warnings"));
}

TEST_CASE("a session key Secret becomes the sidecar's MEMBRANE_SESSION_KEY", "[inject]") {
  InjectorConfig config = test_config();
  config.sidecar.session_key_secret = "membrane-session-key";
  const Json sidecar = sidecar_of(review(annotated_review(), config));
  CHECK(sidecar["env"] == Json::parse(R"([{"name":"MEMBRANE_SESSION_KEY","valueFrom":
      {"secretKeyRef":{"name":"membrane-session-key","key":"key"}}}])"));
}

TEST_CASE("hostile values are cut short and made printable in messages", "[inject]") {
  Json document = annotated_review();
  annotations_of(document)["membrane.dev/port"] = "1\n2" + std::string(500, 'x');
  const AdmissionAnswer answer = SidecarInjector(test_config()).review(document.dump());
  CHECK(answer.summary.find('\n') == std::string::npos);
  CHECK(answer.summary.size() < 400);
  CHECK_THAT(answer.summary, Contains("'1?2xxx") && Contains("...'"));
}

// ---- Never a crash -------------------------------------------------------------------------

namespace {

// Every JSON Pointer to a value inside `document`.
void collect_pointers(const Json& document, const Json::json_pointer& at,
                      std::vector<Json::json_pointer>& pointers) {
  pointers.push_back(at);
  if (document.is_object()) {
    for (const auto& [key, value] : document.items())
      collect_pointers(value, at / key, pointers);
  } else if (document.is_array()) {
    for (std::size_t index = 0; index < document.size(); ++index)
      collect_pointers(document[index], at / index, pointers);
  }
}

}  // namespace

TEST_CASE("every field of a review replaced by any type gets an answer, never a crash",
          "[inject]") {
  const Json original = annotated_review();
  std::vector<Json::json_pointer> pointers;
  collect_pointers(original, Json::json_pointer(), pointers);
  const std::vector<Json> replacements{
      nullptr, 7, -1, 3.5, true, "", "x", Json::array(), Json::object(), Json::array({1, "a"})};
  for (const InjectorConfig& config : {test_config(), denying()}) {
    for (const auto& pointer : pointers) {
      for (const auto& replacement : replacements) {
        Json document = original;
        document[pointer] = replacement;
        const AdmissionAnswer answer = SidecarInjector(config).review(document.dump());
        INFO(pointer.to_string() << " = " << replacement.dump());
        REQUIRE((answer.http_status == 200 || answer.http_status == 400));
        const Json body = Json::parse(answer.body);
        if (answer.http_status == 200) REQUIRE(body["response"]["allowed"].is_boolean());
      }
    }
  }
}

TEST_CASE("deeply nested JSON is refused without exhausting the stack", "[inject]") {
  const std::string nested = std::string(200'000, '[') + std::string(200'000, ']');
  CHECK(review(nested).http_status == 400);
  Json document = annotated_review();
  const std::string deep_pod =
      document.dump().substr(0, document.dump().size() - 2) + R"(,"extra":)" + nested + "}}";
  const auto refused = review(deep_pod);
  CHECK(refused.http_status == 400);
  CHECK_THAT(refused.body["error"].get<std::string>(),
             Contains("JSON nesting deeper than 64 levels"));
}

// ---- HTTP ------------------------------------------------------------------------------------

TEST_CASE("the webhook's HTTP surface", "[inject]") {
  const SidecarInjector injector(test_config());
  const std::string body = read_fixture("review-annotated.json");

  const WebhookReply mutated =
      answer_webhook_request(injector, "POST", "/mutate?timeout=10s", "application/json", body);
  CHECK(mutated.status == 200);
  CHECK(Json::parse(mutated.body)["response"]["allowed"] == true);
  CHECK_THAT(mutated.summary, Contains("agents/crm-mcp-7d4b9c-*: injected"));

  const WebhookReply health = answer_webhook_request(injector, "GET", "/healthz", "", "");
  CHECK(health.status == 200);
  CHECK(Json::parse(health.body)["status"] == "ok");

  const WebhookReply get_mutate = answer_webhook_request(injector, "GET", "/mutate", "", "");
  CHECK(get_mutate.status == 405);
  CHECK(get_mutate.allow == "POST");

  CHECK(answer_webhook_request(injector, "POST", "/mutate", "text/plain", body).status == 415);
  CHECK(answer_webhook_request(injector, "POST", "/mutate", "Application/JSON; charset=utf-8", body)
            .status == 200);
  CHECK(answer_webhook_request(injector, "POST", "/validate", "application/json", body).status ==
        404);
  CHECK(answer_webhook_request(injector, "POST", "/mutate", "application/json", "{").status == 400);
}

// ---- Config ------------------------------------------------------------------------------------

TEST_CASE("the injector config: defaults, every key, and errors with file:line:col", "[inject]") {
  SECTION("an empty file keeps the defaults") {
    const InjectorConfig config = load_injector_config_text("", "empty.yaml");
    CHECK(config.on_error == OnError::allow);
    CHECK(config.sidecar.port == 8080);
    CHECK(config.sidecar.policy_configmap == "membrane-policies");
    CHECK(config.exclude_namespaces.size() == 3);
  }
  SECTION("the test config sets every key") {
    const InjectorConfig config = test_config();
    CHECK(config.sidecar.image == "registry.example.com/membrane:0.1.0");
    CHECK(config.sidecar.upstream == "http://127.0.0.1:3000/mcp");
    CHECK(config.sidecar.limits.cpu == "1");
  }
  SECTION("deny, includes and shadow") {
    const InjectorConfig config = load_injector_config_text(
        "on_error: deny\nnamespaces: {include: [team-a, team-b]}\nsidecar: {policy_mode: shadow}\n",
        "x.yaml");
    CHECK(config.on_error == OnError::deny);
    CHECK(config.include_namespaces == std::vector<std::string>{"team-a", "team-b"});
    CHECK(config.sidecar.policy_mode == "shadow");
  }
  const auto error_of = [](const std::string& text) -> std::string {
    try {
      load_injector_config_text(text, "inject.yaml");
    } catch (const InjectorConfigError& error) {
      return error.what();
    }
    return "";
  };
  CHECK(error_of("sidecar:\n  imgae: x\n") ==
        "inject.yaml:2:3: unknown key 'imgae' in sidecar (did you mean 'image'?)");
  CHECK(error_of("on_error: maybe\n") == "inject.yaml:1:11: 'maybe' is not one of: allow, deny");
  CHECK(error_of("sidecar:\n  port: 70000\n") ==
        "inject.yaml:2:9: expected a port number 1-65535, got '70000'");
  CHECK_THAT(error_of("sidecar:\n  resources:\n    limits: {memory: 256 MB}\n"),
             Contains("inject.yaml:3:22: '256 MB' is not a Kubernetes quantity"));
  CHECK_THAT(error_of("sidecar:\n  upstream: ftp://x\n"), Contains("inject.yaml:2:13:"));
  CHECK_THAT(error_of("sidecar:\n  run_as_user: 0\n"), Contains("non-root user id"));
  CHECK_THAT(error_of("sidecar:\n  workers: 1000\n"), Contains("worker threads 0-256"));
  CHECK_THAT(error_of("namespaces:\n  include: [Team_A]\n"), Contains("not a namespace name"));
  CHECK_THAT(error_of("sidecar: [\n"), Contains("inject.yaml:") && Contains("YAML syntax error"));
  CHECK_THAT(error_of("a: 1\n---\nb: 2\n"), Contains("only one YAML document"));
  CHECK_THAT(error_of(",n\n: i"), Contains("YAML syntax error"));  // yaml-cpp 0.7's LoadAll hangs

  CHECK(error_of("sidecar:\n  shutdown_delay: 5\n") ==
        "inject.yaml:2:19: shutdown_delay '5' is not a duration like 10s (units: ms, s, m, h)");
  CHECK_THAT(error_of("sidecar:\n  shutdown_delay: 5 s\n"), Contains("inject.yaml:2:19:"));
  CHECK_THAT(error_of("sidecar:\n  shutdown_delay: -1s\n"), Contains("inject.yaml:2:19:"));
  CHECK_THAT(error_of("sidecar:\n  shutdown_delay: 2h\n"),
             Contains("inject.yaml:2:19:") && Contains("at most 1h"));
  CHECK_THAT(error_of("sidecar:\n  shutdown_delay: 99999999999999s\n"), Contains("at most 1h"));
  const std::string with_password = error_of("sidecar:\n  redis_url: redis://:s3cret@redis:6379\n");
  CHECK_THAT(with_password, Contains("inject.yaml:2:14: redis_url holds a password") &&
                                Contains("redis_password_secret"));
  CHECK_THAT(with_password, !Contains("s3cret"));
  CHECK_THAT(error_of("sidecar:\n  redis_url: redis://user:s3cret@redis\n"),
             Contains("holds a password") && !Contains("s3cret"));
  CHECK_THAT(error_of("sidecar:\n  redis_url: rediss://redis:6380\n"),
             Contains("inject.yaml:2:14: redis_url is not usable: rediss:// (Redis over TLS) is "
                      "not supported"));
  CHECK_THAT(error_of("sidecar:\n  redis_url: redis://:6379\n"),
             Contains("inject.yaml:2:14: redis_url is not usable: missing host"));
  CHECK(error_of("sidecar:\n  redis_password_secret: membrane-redis\n") ==
        "inject.yaml:2:26: redis_password_secret needs redis_url: without Redis the sidecar has "
        "no use for a password");
  CHECK(error_of("sidecar:\n  redis_url: redis://redis\n  redis_password_secret: Redis_Pw\n") ==
        "inject.yaml:3:26: 'Redis_Pw' is not a valid Secret name");
  CHECK(error_of("sidecar:\n  redis_password_secret: membrane-redis\n"
                 "  redis_url: redis://redis\n")
            .empty());
  CHECK(error_of("sidecar:\n  redis_url: \"\"\n  redis_password_secret: \"\"\n").empty());
}

TEST_CASE("quantities", "[inject]") {
  for (const char* good : {"50m", "1", "0.5", "64Mi", "1G", "100k", "2Ei"})
    CHECK(is_quantity(good));
  for (const char* bad : {"", "m", "1.", ".5", "64mb", "1 Gi", "-1", "1e3x"})
    CHECK_FALSE(is_quantity(bad));
}

// ---- Command line ----------------------------------------------------------------------------

TEST_CASE("membrane inject on the command line", "[inject]") {
  using membrane::app::parse_command_line;
  using membrane::app::UsageError;
  const auto command = parse_command_line({"inject", "--listen", "0.0.0.0:8443", "--tls-cert",
                                           "tls.crt", "--tls-key", "tls.key", "-c",
                                           kDataDir + "injector.yaml", "--log-level=debug"});
  CHECK(command.verb == membrane::app::Verb::inject);
  CHECK(command.inject.host == "0.0.0.0");
  CHECK(command.inject.port == 8443);
  CHECK(command.inject.certificate_file == "tls.crt");
  CHECK(command.inject.private_key_file == "tls.key");
  CHECK(command.inject.log_level == "debug");
  CHECK(command.inject.injector.sidecar.image == "registry.example.com/membrane:0.1.0");

  CHECK_THROWS_WITH(parse_command_line({"inject", "--tls-cert", "c", "--tls-key", "k"}),
                    Contains("needs --listen"));
  CHECK_THROWS_WITH(parse_command_line({"inject", "--listen", ":8443", "--tls-cert", "c"}),
                    Contains("only over HTTPS"));
  CHECK_THROWS_AS(parse_command_line({"inject", "--listen", ":8443", "--upstream", "a=b"}),
                  UsageError);
  CHECK_THROWS_WITH(
      parse_command_line({"inject", "--listen", "nowhere", "--tls-cert", "c", "--tls-key", "k"}),
      Contains("--listen 'nowhere'"));
  CHECK(parse_command_line({"inject", "--help"}).verb == membrane::app::Verb::help);
  CHECK_THAT(membrane::app::usage_text(), Contains("membrane inject --listen ADDR"));
}

TEST_CASE("membrane inject -c names the bad line of the config", "[inject]") {
  const std::string path = kDataDir + "review-annotated.json";  // JSON is YAML, but not ours
  try {
    membrane::app::parse_command_line(
        {"inject", "--listen", ":8443", "--tls-cert", "c", "--tls-key", "k", "-c", path});
    FAIL("expected a ConfigError");
  } catch (const membrane::app::ConfigError& error) {
    CHECK_THAT(std::string(error.what()),
               Contains(path + ":2:3: unknown key 'apiVersion' in the injector config"));
  }
}

TEST_CASE("several servers in a pod are fronted as one virtual server", "[inject]") {
  Json document = annotated_review();
  auto& annotations = annotations_of(document);
  annotations.erase("membrane.dev/upstream");
  annotations["membrane.dev/upstreams"] =
      "docs=http://127.0.0.1:3000/mcp, tickets=http://127.0.0.1:3001/mcp\n";
  const Reviewed reviewed = review(document);
  REQUIRE(reviewed.response["allowed"] == true);
  const auto args = sidecar_of(reviewed)["args"].get<std::vector<std::string>>();
  const auto command = membrane::app::parse_command_line(args);
  REQUIRE(command.verb == membrane::app::Verb::serve);
  REQUIRE(command.config.upstreams.size() == 2);
  CHECK(command.config.upstreams[0].name == "docs");
  CHECK(std::get<membrane::app::HttpUpstreamConfig>(command.config.upstreams[1].transport).url ==
        "http://127.0.0.1:3001/mcp");
  REQUIRE(command.config.virtual_servers.size() == 1);
  const auto& server = command.config.virtual_servers[0];
  CHECK(server.name == "crm");  // membrane.dev/upstream-name
  REQUIRE(server.members.size() == 2);
  CHECK(server.members[1].upstream == "tickets");
  CHECK_NOTHROW(membrane::app::validate(command.config));

  SECTION("bad entries are named, and the single-upstream annotation is exclusive") {
    annotations["membrane.dev/upstreams"] =
        "docs=ftp://x, crm=http://127.0.0.1:3002/mcp, nameless, docs=http://127.0.0.1:3003/mcp,"
        "self=http://127.0.0.1:9000/mcp";
    const std::string message = review(document, denying()).response["status"]["message"];
    CHECK_THAT(message, Contains("membrane.dev/upstreams 'ftp://x'") &&
                            Contains("'crm=http://127.0.0.1:3002/mcp' uses the name") &&
                            Contains("'nameless' is not NAME=URL") &&
                            Contains("names an upstream twice") &&
                            Contains("points at the sidecar's own port 9000"));
    annotations["membrane.dev/upstream"] = "http://127.0.0.1:3000/mcp";
    annotations["membrane.dev/upstreams"] = "docs=http://127.0.0.1:3000/mcp";
    CHECK_THAT(std::string(review(document, denying()).response["status"]["message"]),
               Contains("give membrane.dev/upstream or membrane.dev/upstreams, not both"));
    annotations.erase("membrane.dev/upstream");
    annotations["membrane.dev/upstreams"] = " , ";
    CHECK_THAT(std::string(review(document, denying()).response["status"]["message"]),
               Contains("names no upstream"));
  }
}
