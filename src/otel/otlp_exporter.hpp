// The OTLP/HTTP trace exporter (JSON encoding, POST <endpoint>/v1/traces). Spans go into a
// bounded queue that never blocks the proxy path: when it is full the span is dropped and
// counted. A loop on a thread of its own (not a worker's: serializing a batch is work the
// event loops should not do) sends a batch every interval, or as soon as a batch is full,
// retries a failed batch with backoff, and drops (and counts) it after the last attempt;
// shutdown flushes what is queued.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "http/asio.hpp"
#include "http/client.hpp"
#include "membrane/telemetry/trace.hpp"

namespace membrane::otel {

struct OtlpOptions {
  std::string endpoint;  // collector base URL (…/v1/traces is added) or the full traces URL
  std::map<std::string, std::string> headers;
  std::string service_name = "membrane";
  std::string service_version;
  std::size_t queue_capacity = 8192;
  std::size_t batch_size = 512;
  std::chrono::milliseconds interval{1000};
  int max_attempts = 3;
};

class OtlpExporter {
 public:
  // Throws std::runtime_error for a malformed endpoint (start-up).
  explicit OtlpExporter(OtlpOptions options);
  ~OtlpExporter();

  // From any thread; never blocks.
  void enqueue(telemetry::Span span);

  // Starts the export loop on the exporter's own thread.
  void start();
  // Sends what is queued (shutdown), then ends the loop and its thread; the caller's event loop
  // goes on meanwhile. A collector that fails a batch gets no more: the rest is dropped and
  // counted, so a dead collector cannot hold the shutdown.
  awaitable<void> flush_and_stop();

  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  std::size_t queued() const;
  const std::string& url() const { return url_text_; }

 private:
  awaitable<void> run();           // the export loop, on the exporter's thread
  awaitable<void> flush();         // what flush_and_stop does there
  awaitable<bool> export_batch();  // false when the batch was dropped
  awaitable<bool> post(std::string body);

  OtlpOptions options_;
  asio::io_context context_;
  asio::steady_timer wake_{context_};  // the interval, cut short when a batch is full
  std::atomic<bool> wake_posted_{false};
  std::thread thread_;
  std::string url_text_;
  http::HttpClient client_;
  mutable std::mutex mutex_;
  std::deque<telemetry::Span> queue_;
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> exported_{0};
  std::atomic<bool> stopping_{false};
  bool warned_ = false;
};

}  // namespace membrane::otel
