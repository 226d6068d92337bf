// An issuer's keys published at a URL (its jwks_uri): fetched when the gateway first needs them,
// again when a token names a key the set lacks (the issuer rotated) and when the set is old, but
// never more often than the refresh interval, so a flood of tokens with made-up key ids cannot
// turn the gateway against the issuer. Responses are bounded in size and number of keys.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "http/asio.hpp"
#include "http/client.hpp"
#include "membrane/identity/jwt.hpp"

namespace membrane::gateway {

struct RemoteJwksOptions {
  std::string url;
  std::string ca_file;
  std::chrono::seconds min_refresh_interval{30};
  std::chrono::seconds max_age{3600};
};

class RemoteJwks {
 public:
  // Throws std::runtime_error for a malformed URL (start-up).
  RemoteJwks(RemoteJwksOptions options, std::size_t workers);

  const std::string& url() const { return options_.url; }
  // True when a fetch is due because the keys are old (or were never fetched).
  bool stale() const;
  // Fetches the set when allowed now (not within the refresh interval of the last attempt).
  // Returns the new set, or nullopt (with `error` set, or empty when the attempt was skipped).
  awaitable<std::optional<identity::KeySet>> fetch(std::string& error);

 private:
  RemoteJwksOptions options_;
  http::HttpClient client_;
  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point last_attempt_{};
  std::chrono::steady_clock::time_point last_success_{};
  bool fetched_ = false;
};

}  // namespace membrane::gateway
