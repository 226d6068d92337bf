// `membrane inject`: the injector on the project's own HTTPS listener. The Kubernetes API server
// POSTs an AdmissionReview to /mutate and waits (10 s by default) for the answer; the kubelet
// probes /healthz.
#include "membrane/inject/webhook.hpp"

#include <signal.h>

#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "http/server.hpp"
#include "http/tls.hpp"
#include "http/worker_pool.hpp"
#include "inject/reloading_certificate.hpp"
#include "membrane/core/log.hpp"

namespace membrane::inject {

namespace {

constexpr std::chrono::seconds kShutdownDrain{10};

std::string error_body(std::string_view message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::replace);
}

WebhookReply error_reply(int status, std::string_view message, std::string allow = {}) {
  return WebhookReply{status, "application/json", error_body(message), std::move(allow), {}};
}

// "application/json; charset=utf-8" -> "application/json"
std::string media_type(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  type.erase(
      std::remove_if(type.begin(), type.end(), [](unsigned char c) { return std::isspace(c); }),
      type.end());
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return type;
}

awaitable<void> serve_request(const SidecarInjector& injector, http::Request& request,
                              const http::RequestOrigin& origin, http::Responder& out) {
  WebhookReply reply;
  try {
    reply = answer_webhook_request(injector, request.method_string(), request.target(),
                                   request[http::bhttp::field::content_type], request.body());
  } catch (const std::exception& error) {
    // Only memory exhaustion gets here; the API server then applies the failurePolicy.
    log::error("inject: ", error.what());
    reply = error_reply(500, "internal error");
  }
  if (!reply.summary.empty()) log::info("inject: ", origin.peer_text, ": ", reply.summary);
  http::Response response{static_cast<http::bhttp::status>(reply.status), request.version()};
  response.set(http::bhttp::field::content_type, reply.content_type);
  if (!reply.allow.empty()) response.set(http::bhttp::field::allow, reply.allow);
  response.body() = std::move(reply.body);
  response.prepare_payload();
  co_await out.send(std::move(response));
}

}  // namespace

WebhookReply answer_webhook_request(const SidecarInjector& injector, std::string_view method,
                                    std::string_view target, std::string_view content_type,
                                    std::string_view body) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/healthz") {
    if (method != "GET" && method != "HEAD")
      return error_reply(405, "use GET /healthz", "GET, HEAD");
    return WebhookReply{200, "application/json", R"({"status":"ok"})", {}, {}};
  }
  if (path == "/mutate") {
    if (method != "POST") {
      return error_reply(405, "POST an admission.k8s.io/v1 AdmissionReview to /mutate", "POST");
    }
    if (media_type(content_type) != "application/json") {
      return error_reply(415, "Content-Type must be application/json");
    }
    AdmissionAnswer answer = injector.review(body);
    return WebhookReply{answer.http_status,
                        "application/json",
                        std::move(answer.body),
                        {},
                        std::move(answer.summary)};
  }
  return error_reply(404, "not found: the injector serves POST /mutate and GET /healthz");
}

int run_webhook(const WebhookOptions& options) {
  log::Level level;
  if (log::parse_level(options.log_level, level)) log::set_level(level);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);

  const SidecarInjector injector(options.injector);
  ReloadingCertificate certificate(options.certificate_file, options.private_key_file);
  // Admission reviews are small and rare next to agent traffic: one thread is plenty.
  http::WorkerPool workers(1);
  http::ServerOptions server_options;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.max_body_bytes = options.max_request_body_bytes;
  server_options.tls =
      http::make_server_tls_context(options.certificate_file, options.private_key_file);
  certificate.serve_from(server_options.tls->native_handle());
  server_options.error_response = [](http::bhttp::status status, std::string_view message) {
    http::Response response{status, 11};
    response.set(http::bhttp::field::content_type, "application/json");
    response.body() = error_body(message);
    return response;
  };
  http::Server server(
      workers, std::move(server_options),
      [&injector](http::Request& request, const http::RequestOrigin& origin, http::Responder& out) {
        return serve_request(injector, request, origin, out);
      });
  server.start();
  const auto endpoint = server.local_endpoint();
  const bool v6 = endpoint.address().is_v6();
  const auto& sidecar = options.injector.sidecar;
  log::info("membrane inject listening on https://", v6 ? "[" : "", endpoint.address().to_string(),
            v6 ? "]" : "", ":", endpoint.port(), " (POST /mutate, GET /healthz); sidecar image ",
            sidecar.image, ", port ", sidecar.port, ", policy ConfigMap ", sidecar.policy_configmap,
            ", on_error ", options.injector.on_error == OnError::deny ? "deny" : "allow",
            ", config ", options.injector.source, "; certificate sha256 ",
            certificate.fingerprint(), " (re-read when its files change)");

  auto& main_context = workers.context(0);
  asio::signal_set signals(main_context, SIGTERM, SIGINT);
  asio::co_spawn(
      main_context,
      [&]() -> awaitable<void> {
        auto [ec, signal_number] = co_await signals.async_wait(use_nothrow);
        if (ec) co_return;
        log::info("inject: received ", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
                  ": finishing open reviews");
        co_await server.drain(kShutdownDrain);
        log::info("membrane inject stopped");
        workers.stop();
      },
      asio::detached);
  workers.run();
  return 0;
}

}  // namespace membrane::inject
