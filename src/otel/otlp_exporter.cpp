#include "otel/otlp_exporter.hpp"

#include "http/background.hpp"
#include "http/tls.hpp"
#include "membrane/core/background_priority.hpp"
#include "membrane/core/log.hpp"

namespace membrane::otel {
namespace {

namespace bhttp = boost::beast::http;

std::string traces_url(const std::string& endpoint) {
  if (endpoint.ends_with("/v1/traces")) return endpoint;
  return endpoint.ends_with("/") ? endpoint + "v1/traces" : endpoint + "/v1/traces";
}

http::HttpClient make_client(const std::string& url_text) {
  std::string error;
  auto url = http::UpstreamUrl::parse(url_text, error);
  if (!url) throw std::runtime_error("OTLP endpoint '" + url_text + "': " + error);
  http::ClientOptions options;
  options.connect_timeout = std::chrono::seconds(3);
  options.response_timeout = std::chrono::seconds(10);
  if (url->tls) options.tls = http::make_client_tls_context("", true);
  // One pool: only the exporter's thread uses the client.
  return http::HttpClient(std::move(*url), std::move(options), 1);
}

}  // namespace

OtlpExporter::OtlpExporter(OtlpOptions options)
    : options_(std::move(options)),
      url_text_(traces_url(options_.endpoint)),
      client_(make_client(url_text_)) {}

OtlpExporter::~OtlpExporter() {
  if (!thread_.joinable()) return;
  context_.stop();
  thread_.join();
}

void OtlpExporter::enqueue(telemetry::Span span) {
  bool batch_full = false;
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= options_.queue_capacity) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(span));
    batch_full = queue_.size() >= options_.batch_size;
  }
  // A full batch goes now rather than at the end of the interval (once per batch, not per span).
  if (batch_full && thread_.joinable() && !wake_posted_.exchange(true))
    asio::post(context_, [this] { wake_.cancel(); });
}

void OtlpExporter::start() {
  asio::co_spawn(context_, run(), asio::detached);
  thread_ = std::thread([this] {
    core::run_as_background_thread();
    context_.run();
  });
}

awaitable<void> OtlpExporter::run() {
  bool sent = true;
  while (!stopping_) {
    // Re-armed before the queue is looked at: a wake-up posted while a batch was being sent
    // cancelled no wait, and must not keep later ones from being posted.
    wake_posted_ = false;
    // A full batch that is already waiting goes at once, unless the collector just failed one.
    if (!sent || queued() < options_.batch_size) {
      wake_.expires_after(options_.interval);
      co_await wake_.async_wait(use_nothrow);
    }
    if (stopping_) co_return;
    sent = co_await export_batch();
  }
}

awaitable<void> OtlpExporter::flush_and_stop() {
  if (!thread_.joinable()) co_return;
  auto flush_there = [this](std::function<void(bool)> done) {
    asio::co_spawn(context_, flush(), [done](std::exception_ptr) { done(true); });
  };
  co_await http::await_report<bool>(std::move(flush_there));
  context_.stop();
  thread_.join();
}

awaitable<void> OtlpExporter::flush() {
  stopping_ = true;
  wake_.cancel();
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) co_return;
    }
    if (!co_await export_batch()) break;
  }
  std::lock_guard lock(mutex_);
  if (!queue_.empty())
    log::warn("OTLP: ", queue_.size(), " span(s) dropped at shutdown: the collector failed");
  dropped_.fetch_add(queue_.size(), std::memory_order_relaxed);
  queue_.clear();
}

std::size_t OtlpExporter::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

awaitable<bool> OtlpExporter::export_batch() {
  std::vector<telemetry::Span> batch;
  {
    std::lock_guard lock(mutex_);
    const std::size_t take = std::min(queue_.size(), options_.batch_size);
    batch.reserve(take);
    for (std::size_t i = 0; i < take; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  if (batch.empty()) co_return true;
  asio::steady_timer pause(co_await asio::this_coro::executor);
  auto backoff = std::chrono::milliseconds(200);
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    // Encoded for each attempt: the request takes the body over, and a retry is rare.
    if (co_await post(telemetry::otlp_json(batch, options_.service_name, options_.service_version))) {
      exported_.fetch_add(batch.size(), std::memory_order_relaxed);
      warned_ = false;
      co_return true;
    }
    if (attempt == options_.max_attempts || stopping_) break;
    pause.expires_after(backoff);
    co_await pause.async_wait(use_nothrow);
    backoff *= 2;
  }
  dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
  co_return false;
}

awaitable<bool> OtlpExporter::post(std::string body) {
  bhttp::request<bhttp::string_body> request{bhttp::verb::post, client_.url().target, 11};
  request.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : options_.headers)
    request.set(name, value);
  request.body() = std::move(body);
  request.prepare_payload();
  auto result = co_await client_.send(std::move(request));
  std::string problem;
  if (!result.response) {
    problem = result.error;
  } else {
    auto [ec, reply] = co_await result.response->read_all(64 * 1024);
    const unsigned status = result.response->status();
    if (!ec && status >= 200 && status < 300) co_return true;
    problem = "HTTP " + std::to_string(status);
  }
  // One warning per outage, not one per batch.
  if (!warned_) {
    log::warn("OTLP export to ", url_text_, " failed: ", problem, " (retrying; spans are dropped ",
              "and counted when the queue is full or retries run out)");
    warned_ = true;
  }
  co_return false;
}

}  // namespace membrane::otel
