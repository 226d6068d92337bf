// HTTP/1.1 client for upstream MCP servers: a keep-alive connection pool per worker thread,
// TLS with certificate and host name verification, per-phase timeouts, and a response body that
// can be read incrementally (an SSE stream is consumed event by event, never buffered whole).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/asio.hpp"

namespace membrane::http {

namespace bhttp = boost::beast::http;

struct UpstreamUrl {
  bool tls = false;
  std::string host;  // name or address literal (IPv6 without brackets)
  std::uint16_t port = 80;
  std::string target = "/";  // path and query
  std::string host_header;   // what goes into Host:

  // Accepts http:// and https:// URLs; returns nullopt and fills `error` otherwise.
  static std::optional<UpstreamUrl> parse(std::string_view url, std::string& error);
  std::string to_string() const;
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds response_timeout{300'000};  // request written -> response headers
  std::size_t max_idle_per_worker = 64;
  std::shared_ptr<boost::asio::ssl::context> tls;  // required for https URLs
  bool verify_host_name = true;
};

class ClientConnection;

class ClientResponse {
 public:
  struct State;  // defined in client.cpp: only HttpClient can make one
  explicit ClientResponse(std::unique_ptr<State> state);
  ~ClientResponse();
  ClientResponse(const ClientResponse&) = delete;
  ClientResponse& operator=(const ClientResponse&) = delete;

  unsigned status() const;
  std::string_view header(bhttp::field field) const;
  std::string_view header(std::string_view name) const;

  // The next piece of the body as it arrives. An empty view with no error means the body is
  // complete. The view is valid until the next call.
  awaitable<std::pair<error_code, std::string_view>> read_some();
  // The whole body, failing with message_size beyond `limit` bytes.
  awaitable<std::pair<error_code, std::string>> read_all(std::size_t limit);
  bool complete() const;
  // Reads after `deadline` fail with beast::error::timeout and close the connection: an
  // upstream's silence is bounded even when its stream stays open.
  void expires_at(std::chrono::steady_clock::time_point deadline);
  // Stop reading: the connection is closed instead of going back to the pool.
  void abort();

 private:
  std::unique_ptr<State> state_;
};

struct ClientResult {
  std::unique_ptr<ClientResponse> response;
  std::string error;  // set when there is no response: connect/TLS/write/read failure, timeout
};

class HttpClient {
 public:
  HttpClient(UpstreamUrl url, ClientOptions options, std::size_t worker_count);
  ~HttpClient();

  const UpstreamUrl& url() const { return url_; }

  // Sends `request` (target, Host and keep-alive are filled in here) and waits for the response
  // headers. Must be called on a worker thread of the pool it was sized for.
  awaitable<ClientResult> send(bhttp::request<bhttp::string_body> request);

  // Closes idle pooled connections (shutdown).
  void close_idle();

 private:
  friend class ClientResponse;
  struct Pool;
  awaitable<std::pair<std::unique_ptr<ClientConnection>, std::string>> connect();
  void release(std::unique_ptr<ClientConnection> connection);

  UpstreamUrl url_;
  ClientOptions options_;
  std::vector<std::unique_ptr<Pool>> pools_;
};

}  // namespace membrane::http
