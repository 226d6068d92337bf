#include "gateway/responses.hpp"
#include "membrane/core/ascii.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <ctime>

namespace membrane::gateway {

http::Response json_response(unsigned status, std::string body) {
  http::Response response{static_cast<http::bhttp::status>(status), 11};
  response.set(http::bhttp::field::content_type, "application/json");
  response.body() = std::move(body);
  return response;
}

http::Response jsonrpc_error(unsigned status, const mcp::Json& id, int code,
                             std::string_view message) {
  return json_response(status, mcp::make_error_response(id, code, message));
}

http::Response no_standalone_stream(std::string_view upstream, std::string_view why) {
  auto response = jsonrpc_error(405, nullptr, mcp::error_code::invalid_request,
                                "Method Not Allowed: upstream '" + std::string(upstream) + "' " +
                                    std::string(why) + " no server-initiated stream");
  response.set(http::bhttp::field::allow, "POST, DELETE");
  return response;
}

http::ResponseHeader event_stream_header() {
  http::ResponseHeader header{http::bhttp::status::ok, 11};
  header.set(http::bhttp::field::content_type, "text/event-stream");
  header.set(http::bhttp::field::cache_control, "no-cache, no-transform");
  // nginx and other buffering proxies in front must pass events through as they come.
  header.set("X-Accel-Buffering", "no");
  return header;
}

namespace {
std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}
}  // namespace

bool media_type_is(std::string_view value, std::string_view type) {
  const auto semicolon = value.find(';');
  return boost::beast::iequals(trim(value.substr(0, semicolon)), type);
}

bool accepts(std::string_view accept_header, std::string_view type) {
  const std::string_view major = type.substr(0, type.find('/'));
  while (!accept_header.empty()) {
    const auto comma = accept_header.find(',');
    std::string_view entry = accept_header.substr(0, comma);
    accept_header =
        comma == std::string_view::npos ? std::string_view() : accept_header.substr(comma + 1);
    const auto semicolon = entry.find(';');
    const std::string_view media = trim(entry.substr(0, semicolon));
    if (semicolon != std::string_view::npos) {
      // "q=0" means "not acceptable" (RFC 9110 §12.4.2).
      std::string_view params = entry.substr(semicolon + 1);
      const auto q = params.find("q=");
      if (q != std::string_view::npos) {
        const std::string_view weight = trim(params.substr(q + 2, params.find(';', q) - q - 2));
        if (weight == "0" || weight == "0.0" || weight == "0.00" || weight == "0.000") continue;
      }
    }
    if (media == "*/*") return true;
    if (boost::beast::iequals(media, type)) return true;
    if (media.size() == major.size() + 2 &&
        boost::beast::iequals(media.substr(0, major.size()), major) &&
        media.substr(major.size()) == "/*") {
      return true;
    }
  }
  return false;
}

std::string_view target_path(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::string query_parameter(std::string_view target, std::string_view name) {
  const auto question = target.find('?');
  if (question == std::string_view::npos) return {};
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto equals = pair.find('=');
    if (pair.substr(0, equals) != name) continue;
    const std::string_view raw =
        equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
    // Percent-decoding: sealed ids are base64url and need none, but a client may encode anyway.
    return percent_decoded(raw, true);
  }
  return {};
}

std::string percent_decoded(std::string_view text, bool plus_is_space) {
  std::string value;
  value.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int high = ascii::hex_value(text[i + 1]);
      const int low = ascii::hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        value.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    value.push_back(plus_is_space && text[i] == '+' ? ' ' : text[i]);
  }
  return value;
}

std::int64_t unix_now() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

const std::string& client_address(const http::RequestOrigin& origin) {
  return origin.peer_text;
}

mcp::Json request_headers_json(const http::Request& request) {
  mcp::Json headers = mcp::Json::object();
  for (const auto& field : request) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    // Credentials are the identity layer's business (identity.*, txn.*), never text a rule reads.
    if (name == "authorization" || name == "proxy-authorization" || name == "cookie" ||
        name == "txn-token")
      continue;
    auto& value = headers[name];
    const std::string_view text = field.value();
    if (value.is_string()) {
      value.get_ref<std::string&>().append(", ").append(text);
    } else {
      value = std::string(text);
    }
  }
  return headers;
}

PostedMessage read_posted_message(const http::Request& request) {
  PostedMessage posted;
  const std::string_view content_type = request[http::bhttp::field::content_type];
  if (!media_type_is(content_type, "application/json")) {
    posted.rejection =
        jsonrpc_error(415, nullptr, mcp::error_code::invalid_request,
                      "Unsupported Media Type: Content-Type must be application/json, got '" +
                          std::string(content_type) + "'");
    return posted;
  }
  auto parsed = mcp::parse_message(request.body());
  if (!parsed.message) {
    posted.rejection = jsonrpc_error(400, parsed.id, parsed.error.code, parsed.error.message);
    posted.id = std::move(parsed.id);
    posted.method = std::move(parsed.method);
    return posted;
  }
  posted.message = std::move(parsed.message);
  return posted;
}

}  // namespace membrane::gateway
