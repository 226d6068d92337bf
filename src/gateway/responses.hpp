// HTTP answers in the shapes MCP clients understand: JSON-RPC error bodies with the right status,
// and the SSE response header.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "http/server.hpp"
#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::gateway {

http::Response json_response(unsigned status, std::string body);
// `{"jsonrpc":"2.0","id":…,"error":{…}}` with HTTP `status`.
http::Response jsonrpc_error(unsigned status, const mcp::Json& id, int code,
                             std::string_view message);
http::ResponseHeader event_stream_header();
// 405 for a GET on a session whose upstream has no server-initiated stream; `why` completes
// "upstream '<name>' … no server-initiated stream".
http::Response no_standalone_stream(std::string_view upstream, std::string_view why);
// Case-insensitive media type check of a Content-Type / Accept entry, ignoring parameters.
bool media_type_is(std::string_view value, std::string_view type);
// True when an Accept header admits `type` (exact, "major/*" or "*/*").
bool accepts(std::string_view accept_header, std::string_view type);
// Path and query split of a request target; the query parameter `name` ("" when absent).
std::string_view target_path(std::string_view target);
std::string query_parameter(std::string_view target, std::string_view name);
// %XX escapes decoded (a malformed one is kept as it is); in a query, '+' is a space.
std::string percent_decoded(std::string_view text, bool plus_is_space = false);
const std::string& client_address(const http::RequestOrigin& origin);
// The request's headers as {lower-case name: value} (repeated headers joined with ", "), without
// Authorization, Proxy-Authorization, Cookie and Txn-Token: what policy rules see as
// request.headers.*.
mcp::Json request_headers_json(const http::Request& request);

// Seconds since the epoch: the clock sealed sessions are stamped and aged with.
std::int64_t unix_now();

// A POSTed body as one JSON-RPC message, or the answer to send instead: 415 when it is not
// declared as JSON, 400 with -32700 / -32600 when it is not one JSON-RPC 2.0 message.
struct PostedMessage {
  std::optional<mcp::Message> message;
  std::optional<http::Response> rejection;
  mcp::Json id;        // of a refused request, when it had a valid one
  std::string method;  // of a refused request, when it named one
};
PostedMessage read_posted_message(const http::Request& request);

}  // namespace membrane::gateway
