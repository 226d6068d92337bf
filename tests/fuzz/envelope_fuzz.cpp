// libFuzzer target: a 2026-07-28 request as a client posts it, checked as Gateway::streamable_post
// checks it before anything else reads it: header lines, a blank line, then the body. The request
// is put together and read by the server's own parser (so only requests a client could really
// send get further), then read_posted_message, is_stateless_request and check_stateless_request
// judge the MCP-Protocol-Version / Mcp-Method / Mcp-Name headers against the body and its
// params._meta envelope. The bridging functions that rewrite such bodies for a session-era server
// (and translate that server's answers back) run on the same JSON. Checked properties: an
// accepted request names a supported revision, its Mcp-Method and Mcp-Name repeat the body, and
// header values survive encode_header_value / decode_header_value.
#include <boost/asio/buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/responses.hpp"
#include "gateway/revision.hpp"
#include "http/request_reading.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace {

using namespace membrane;
using mcp::Json;

void check_header_round_trip(std::string_view value) {
  const auto decoded = mcp::decode_header_value(mcp::encode_header_value(value));
  if (!decoded || *decoded != value) __builtin_trap();
}

std::optional<http::Request> parse_request(std::string_view headers, std::string_view body) {
  std::string text =
      "POST /mcp/fs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Accept: application/json, text/event-stream\r\n";
  while (!headers.empty()) {
    const auto end = headers.find('\n');
    text.append(headers.substr(0, end));
    text.append("\r\n");
    headers.remove_prefix(end == std::string_view::npos ? headers.size() : end + 1);
  }
  text.append("Content-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  text.append(body);

  static const http::ServerOptions options;
  http::RequestParser parser;
  http::apply_request_limits(parser, options);
  parser.eager(true);
  std::string_view rest = text;
  while (!parser.is_done()) {
    error_code ec;
    const std::size_t used = parser.put(asio::buffer(rest.data(), rest.size()), ec);
    if (ec || used == 0) return std::nullopt;
    rest.remove_prefix(used);
  }
  if (!rest.empty()) return std::nullopt;
  return parser.release();
}

void bridge(const mcp::Message& message, std::string_view header_version) {
  Json request = message.body();
  mcp::strip_reserved_meta(request);
  mcp::add_envelope(request, mcp::stateless_envelope(header_version, message.body(), Json()));
  (void)request.dump(-1, ' ', false, Json::error_handler_t::replace);
  // The same JSON as an upstream's answer, translated for the other revision.
  Json response = message.body();
  mcp::mark_complete_result(response, message.method());
  const Json& result = response.contains("result") ? response["result"] : response;
  (void)mcp::is_input_required(result);
  (void)mcp::discover_from_initialize(result);
  (void)mcp::initialize_from_discover(result, header_version);
  (void)mcp::methods_invalidated_by(message.method());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  membrane::log::set_level(membrane::log::Level::error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto blank = input.find("\n\n");
  const std::string_view headers = input.substr(0, blank);
  const std::string_view body =
      blank == std::string_view::npos ? std::string_view() : input.substr(blank + 2);
  auto request = parse_request(headers, body);
  if (!request) return 0;

  for (const auto& field : *request) {
    (void)mcp::decode_header_value(field.value());
    check_header_round_trip(field.value());
  }
  auto posted = gateway::read_posted_message(*request);
  if (!posted.message) return 0;
  const mcp::Message& message = *posted.message;
  check_header_round_trip(message.method());
  check_header_round_trip(message.target_name());
  const std::string_view header_version = (*request)[mcp::header::protocol_version];
  bridge(message, header_version);

  if (!gateway::is_stateless_request(*request, message)) return 0;
  const auto checked = gateway::check_stateless_request(*request, message);
  if (checked.rejection) {
    if (checked.rejection->result_int() != 400) __builtin_trap();
    return 0;
  }
  if (!mcp::is_supported_protocol_version(checked.protocol_version)) __builtin_trap();
  if ((*request)[mcp::header::method] != message.method()) __builtin_trap();
  if (const auto expected = gateway::expected_name_header(message)) {
    const auto named = mcp::decode_header_value((*request)[mcp::header::name]);
    if (!named || *named != *expected) __builtin_trap();
  }
  if (message.is_request() && !checked.client_capabilities.is_object()) __builtin_trap();
  return 0;
}
