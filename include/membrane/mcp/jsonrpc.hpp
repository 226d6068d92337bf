// The JSON-RPC 2.0 message model MCP is built on: one parsed message, what kind it is, and the
// error responses the gateway itself produces.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace membrane::mcp {

using Json = nlohmann::json;

// JSON-RPC 2.0 §5.1 and MCP's own codes.
namespace error_code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
// Used by the official SDKs for "Session not found" (MCP transports §session management).
inline constexpr int session_not_found = -32001;
// The gateway could not reach, or lost, the upstream MCP server.
inline constexpr int upstream_unavailable = -32002;
// MCP 2026-07-28: a standard header is missing, malformed or differs from the body.
inline constexpr int header_mismatch = -32020;
// MCP 2026-07-28: the requested protocol revision is not supported (data: supported, requested).
inline constexpr int unsupported_protocol_version = -32022;
// MCP 2026-07-28: the request needs a client capability the client did not declare
// (data: {requiredCapabilities: {<capability>: {…}}}); answered with HTTP 400.
inline constexpr int missing_client_capability = -32021;
// The gateway is at one of its overload limits (limits.*); `data` names it and says when to retry.
inline constexpr int overloaded = -32004;
// The client cancelled the request (the code LSP uses); the answer only ends the HTTP exchange,
// the client has stopped waiting for it.
inline constexpr int request_cancelled = -32800;
}  // namespace error_code

enum class MessageKind { request, notification, response };

class Message {
 public:
  Message(MessageKind kind, Json body) : kind_(kind), body_(std::move(body)) {}

  MessageKind kind() const { return kind_; }
  bool is_request() const { return kind_ == MessageKind::request; }
  bool is_notification() const { return kind_ == MessageKind::notification; }
  bool is_response() const { return kind_ == MessageKind::response; }

  // Empty for responses.
  std::string_view method() const;
  // The request/response id (null Json for notifications).
  const Json& id() const;
  // `params` object, or nullptr when absent.
  const Json* params() const;
  // What the request acts on: params.name (tools/call, prompts/get) or params.uri
  // (resources/read, resources/subscribe, resources/unsubscribe); empty for other methods.
  std::string_view target_name() const;
  // params._meta.progressToken, or nullptr.
  const Json* progress_token() const;
  bool is_initialize() const { return is_request() && method() == "initialize"; }

  const Json& body() const { return body_; }
  Json& body() { return body_; }

 private:
  MessageKind kind_;
  Json body_;
};

struct MessageError {
  int code = 0;
  std::string message;
};

// The outcome of reading one JSON-RPC message from text: a message, or the error to answer with
// (-32700 when it is not JSON, -32600 when it is JSON but not a JSON-RPC 2.0 message).
struct ParsedMessage {
  std::optional<Message> message;
  MessageError error;
  // What a refused message said before it was refused, for the error's id and for routing.
  Json id;
  std::string method;
  bool is_batch = false;  // a JSON array: JSON-RPC batch (removed from MCP in 2025-06-18)
};

ParsedMessage parse_message(std::string_view text);

// Classifies already-parsed JSON (same rules as parse_message).
ParsedMessage classify_message(Json body);

// `{"jsonrpc":"2.0","id":<id>,"error":{"code":…,"message":…}}`. `id` may be null.
std::string make_error_response(const Json& id, int code, std::string_view message);

// A canonical string for a request id, usable as a map key: ids 1 and "1" stay distinct.
std::string id_key(const Json& id);

}  // namespace membrane::mcp
