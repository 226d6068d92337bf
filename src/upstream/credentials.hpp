// Credentials the gateway presents to an upstream on its own behalf (the agent's token is never
// forwarded): an OAuth 2.0 client-credentials access token (RFC 6749 §4.4), fetched from the
// token endpoint and cached until shortly before it expires.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "http/asio.hpp"
#include "http/client.hpp"

namespace membrane::upstream {

struct ClientCredentialsOptions {
  std::string token_url;
  std::string client_id;
  std::string client_secret;
  std::string scope;     // optional
  std::string audience;  // optional (`audience` and RFC 8707 `resource` parameters)
  std::string ca_file;
  bool verify_tls = true;
};

// What a token endpoint answered (RFC 6749 §5.1/§5.2), read from its status and body: the access
// token and its lifetime, or why there is none.
struct TokenResponse {
  std::string access_token;
  // expires_in within [1 s, 1 day], or 300 s when the server gives none.
  std::chrono::seconds lifetime{300};
  std::string error;  // set when there is no token
};
TokenResponse read_token_response(unsigned status, std::string_view body);

class ClientCredentialsSource {
 public:
  // Throws std::runtime_error for a bad token URL (start-up).
  ClientCredentialsSource(std::string upstream, ClientCredentialsOptions options,
                          std::size_t workers);

  struct Result {
    std::string authorization;  // "Bearer <token>"
    std::string error;          // set when no token could be had
  };
  // Must run on a worker thread of the pool.
  awaitable<Result> authorization();

 private:
  std::string upstream_;
  ClientCredentialsOptions options_;
  http::HttpClient client_;
  std::mutex mutex_;
  std::string cached_;  // "Bearer ..."
  std::chrono::steady_clock::time_point refresh_at_;
};

}  // namespace membrane::upstream
