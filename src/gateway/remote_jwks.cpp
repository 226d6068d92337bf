#include "gateway/remote_jwks.hpp"

#include "http/tls.hpp"
#include "membrane/core/log.hpp"

namespace membrane::gateway {
namespace {

namespace bhttp = boost::beast::http;

constexpr std::size_t max_document_bytes = 256 * 1024;
constexpr std::size_t max_keys = 100;

http::HttpClient make_client(const RemoteJwksOptions& options, std::size_t workers) {
  std::string error;
  auto url = http::UpstreamUrl::parse(options.url, error);
  if (!url) throw std::runtime_error("JWKS URL '" + options.url + "': " + error);
  http::ClientOptions client_options;
  client_options.response_timeout = std::chrono::seconds(10);
  if (url->tls) client_options.tls = http::make_client_tls_context(options.ca_file, true);
  return http::HttpClient(std::move(*url), std::move(client_options), workers);
}

}  // namespace

RemoteJwks::RemoteJwks(RemoteJwksOptions options, std::size_t workers)
    : options_(std::move(options)), client_(make_client(options_, workers)) {}

bool RemoteJwks::stale() const {
  std::lock_guard lock(mutex_);
  return !fetched_ || std::chrono::steady_clock::now() - last_success_ > options_.max_age;
}

awaitable<std::optional<identity::KeySet>> RemoteJwks::fetch(std::string& error) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    if (last_attempt_ != std::chrono::steady_clock::time_point{} &&
        now - last_attempt_ < options_.min_refresh_interval) {
      co_return std::nullopt;  // asked recently: the answer would be the same
    }
    last_attempt_ = now;
  }
  bhttp::request<bhttp::string_body> request{bhttp::verb::get, client_.url().target, 11};
  request.set(bhttp::field::accept, "application/jwk-set+json, application/json");
  auto result = co_await client_.send(std::move(request));
  if (!result.response) {
    error = result.error;
    co_return std::nullopt;
  }
  auto [ec, body] = co_await result.response->read_all(max_document_bytes);
  if (ec) {
    error = "reading the key set: " + ec.message();
    co_return std::nullopt;
  }
  if (result.response->status() != 200) {
    error = "HTTP " + std::to_string(result.response->status());
    co_return std::nullopt;
  }
  auto keys = identity::KeySet::parse_document(body, max_keys, error);
  if (!keys) co_return std::nullopt;
  std::lock_guard lock(mutex_);
  fetched_ = true;
  last_success_ = std::chrono::steady_clock::now();
  co_return keys;
}

}  // namespace membrane::gateway
