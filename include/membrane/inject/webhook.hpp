// `membrane inject`: the sidecar injector served over HTTPS, as the Kubernetes API server calls
// it (POST /mutate), plus GET /healthz for the injector's own probes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "membrane/inject/injector.hpp"

namespace membrane::inject {

struct WebhookOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8443;     // 0 = pick a free port (the bound port is logged)
  std::string certificate_file;  // PEM chain; the API server only calls webhooks over TLS
  std::string private_key_file;
  std::string log_level = "info";
  // An AdmissionReview carries one object of at most ~1.5 MiB (etcd's limit) plus its envelope.
  std::size_t max_request_body_bytes = 4 * 1024 * 1024;
  InjectorConfig injector;
};

// One HTTP answer of the webhook, decided without any I/O.
struct WebhookReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;     // the Allow header, for 405
  std::string summary;   // log line; empty = nothing worth logging
  bool routine = false;  // log the summary at debug only
};

WebhookReply answer_webhook_request(const SidecarInjector& injector, std::string_view method,
                                    std::string_view target, std::string_view content_type,
                                    std::string_view body);

// Serves until SIGTERM/SIGINT, then drains. Start-up problems (bad TLS files, port in use) throw.
int run_webhook(const WebhookOptions& options);

}  // namespace membrane::inject
