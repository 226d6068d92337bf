#include "upstream/credentials.hpp"
#include "membrane/core/json.hpp"

#include <openssl/evp.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "http/tls.hpp"
#include "membrane/core/log.hpp"

namespace membrane::upstream {
namespace {

namespace bhttp = boost::beast::http;

// application/x-www-form-urlencoded (RFC 6749 appendix B).
std::string form_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                     reinterpret_cast<const unsigned char*>(bytes.data()),
                                     static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(length));
  return out;
}

http::HttpClient make_client(const std::string& upstream, const ClientCredentialsOptions& options,
                             std::size_t workers) {
  std::string error;
  auto url = http::UpstreamUrl::parse(options.token_url, error);
  if (!url) throw std::runtime_error("upstream '" + upstream + "': token_url: " + error);
  http::ClientOptions client_options;
  client_options.response_timeout = std::chrono::seconds(30);
  if (url->tls) {
    client_options.tls = http::make_client_tls_context(options.ca_file, options.verify_tls);
    client_options.verify_host_name = options.verify_tls;
  }
  return http::HttpClient(std::move(*url), std::move(client_options), workers);
}

}  // namespace

TokenResponse read_token_response(unsigned status, std::string_view body) {
  TokenResponse response;
  const auto answer = json::parse_or_discarded(body);
  if (status != 200 || !answer.is_object()) {
    response.error = "HTTP " + std::to_string(status);
    if (answer.is_object() && answer.contains("error") && answer["error"].is_string())
      response.error += " " + answer["error"].get<std::string>();
    return response;
  }
  const auto token = answer.find("access_token");
  if (token == answer.end() || !token->is_string() ||
      token->get_ref<const std::string&>().empty()) {
    response.error = "the response has no access_token";
    return response;
  }
  response.access_token = token->get<std::string>();
  if (const auto expires = answer.find("expires_in");
      expires != answer.end() && expires->is_number()) {
    // Bounded before the conversion (a double beyond long is undefined behaviour) and so that the
    // refresh time stays far from the clock's range: the token is fetched again at least daily.
    constexpr double day = 24 * 3600;
    const double seconds = std::clamp(expires->get<double>(), 1.0, day);
    response.lifetime = std::chrono::seconds(static_cast<long>(seconds));
  }
  return response;
}

ClientCredentialsSource::ClientCredentialsSource(std::string upstream,
                                                 ClientCredentialsOptions options,
                                                 std::size_t workers)
    : upstream_(std::move(upstream)),
      options_(std::move(options)),
      client_(make_client(upstream_, options_, workers)) {}

awaitable<ClientCredentialsSource::Result> ClientCredentialsSource::authorization() {
  {
    std::lock_guard lock(mutex_);
    if (!cached_.empty() && std::chrono::steady_clock::now() < refresh_at_)
      co_return Result{cached_, {}};
  }
  bhttp::request<bhttp::string_body> request{bhttp::verb::post, client_.url().target, 11};
  request.set(bhttp::field::content_type, "application/x-www-form-urlencoded");
  request.set(bhttp::field::accept, "application/json");
  request.set(bhttp::field::authorization, "Basic " + base64(form_encode(options_.client_id) + ":" +
                                                             form_encode(options_.client_secret)));
  std::string body = "grant_type=client_credentials";
  if (!options_.scope.empty()) body += "&scope=" + form_encode(options_.scope);
  if (!options_.audience.empty()) {
    body += "&audience=" + form_encode(options_.audience);
    body += "&resource=" + form_encode(options_.audience);
  }
  request.body() = std::move(body);
  request.prepare_payload();
  const auto fail = [this](const std::string& why) {
    log::warn("upstream '", upstream_, "': no access token from ", options_.token_url, ": ", why);
    return Result{
        {},
        "the gateway could not get an access token for upstream '" + upstream_ + "' (" + why + ")"};
  };
  auto result = co_await client_.send(std::move(request));
  if (!result.response) co_return fail(result.error);
  auto [ec, text] = co_await result.response->read_all(64 * 1024);
  if (ec) co_return fail("reading the token response: " + ec.message());
  const auto answer = read_token_response(result.response->status(), text);
  if (!answer.error.empty()) co_return fail(answer.error);
  const long lifetime = static_cast<long>(answer.lifetime.count());
  // Refresh a minute early (or at half-life for short tokens) so no request carries a token that
  // expires on the way.
  const long margin = std::min(60L, lifetime / 2);
  std::lock_guard lock(mutex_);
  cached_ = "Bearer " + answer.access_token;
  refresh_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(lifetime - margin);
  co_return Result{cached_, {}};
}

}  // namespace membrane::upstream
