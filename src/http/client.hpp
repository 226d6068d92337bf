// HTTP/1.1 client for upstream MCP servers: a keep-alive connection pool per worker thread,
// TLS with certificate and host name verification, per-phase timeouts, and a response body that
// can be read incrementally (an SSE stream is consumed event by event, never buffered whole).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/container/small_vector.hpp>

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

// A request as the client writes it: the request line and header lines go straight into one
// buffer, with no container of fields to fill and serialize again (what one proxied call costs
// the worker is mostly small allocations like those). Host, Content-Length and the blank line are
// added by HttpClient::send.
class OutgoingRequest {
 public:
  OutgoingRequest(bhttp::verb method, std::string_view target);

  // Sets a header, replacing one of the same name (case-insensitive). A name that is not an
  // HTTP token or a value holding CR, LF or NUL (which would smuggle header lines in) is not
  // written: the request is then refused by send() instead of going out without it.
  void set(std::string_view name, std::string_view value);
  void set(bhttp::field name, std::string_view value) { set(bhttp::to_string(name), value); }
  bool has(std::string_view name) const;

  bhttp::verb method() const { return method_; }
  std::string& body() { return body_; }
  const std::string& body() const { return body_; }
  // The request line and header lines so far (each ending in CRLF).
  const std::string& head() const { return head_; }
  // Why the request must not be sent ("" when it may).
  const std::string& refusal() const { return refusal_; }

 private:
  struct Field {
    std::uint32_t offset;  // of the name in head_
    std::uint32_t size;    // of the whole line, CRLF included
    std::uint32_t name_size;
  };
  const Field* find(std::string_view name) const;
  friend class HttpClient;  // writes Host, Content-Length and the blank line

  bhttp::verb method_;
  std::string head_;
  std::string body_;
  std::string refusal_;
  boost::container::small_vector<Field, 12> fields_;
};

// An HTTP/1.1 request from Beast's message type (for callers that build one): its fields set on
// an OutgoingRequest one by one, so they are checked the same way.
OutgoingRequest outgoing_request(const bhttp::request<bhttp::string_body>& request);

class HttpClient {
 public:
  HttpClient(UpstreamUrl url, ClientOptions options, std::size_t worker_count);
  ~HttpClient();

  const UpstreamUrl& url() const { return url_; }

  // Sends `request` (Host and Content-Length are filled in here; connections are kept alive) and
  // waits for the response headers. Must be called on a worker thread of the pool it was sized
  // for.
  awaitable<ClientResult> send(OutgoingRequest request);
  awaitable<ClientResult> send(const bhttp::request<bhttp::string_body>& request) {
    return send(outgoing_request(request));
  }

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
