// MCP protocol revisions the gateway understands, and the HTTP header names they use.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace membrane::mcp {

// Newest first. 2026-07-28 is stateless (no initialize, no session); 2024-11-05 is the legacy
// HTTP+SSE transport (served at /sse/<name>).
inline constexpr std::array<std::string_view, 5> supported_protocol_versions = {
    "2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

// The stateless revision (SEP-2575): each request carries its revision and the client's
// capabilities in params._meta, and server-to-client questions come back as `input_required`.
inline constexpr std::string_view stateless_protocol_version = "2026-07-28";
// The newest revision with sessions: what the gateway speaks to a session-based upstream on
// behalf of a stateless client.
inline constexpr std::string_view latest_session_protocol_version = "2025-11-25";

// MCP transports §protocol-version-header: absent means the client speaks 2025-03-26.
inline constexpr std::string_view default_protocol_version = "2025-03-26";

bool is_supported_protocol_version(std::string_view version);
// True for 2026-07-28 and later (the per-request `_meta` envelope era).
bool is_stateless_protocol_version(std::string_view version);
// "2025-11-25, 2025-06-18, …" for error messages.
std::string_view supported_protocol_versions_text();

namespace header {
inline constexpr std::string_view session_id = "Mcp-Session-Id";
inline constexpr std::string_view protocol_version = "MCP-Protocol-Version";
inline constexpr std::string_view last_event_id = "Last-Event-ID";
// 2026-07-28 (SEP-2243): the body's method and target, readable without parsing it.
inline constexpr std::string_view method = "Mcp-Method";
inline constexpr std::string_view name = "Mcp-Name";
inline constexpr std::string_view param_prefix = "Mcp-Param-";
}  // namespace header

// Reserved params._meta keys of 2026-07-28.
namespace meta {
inline constexpr std::string_view protocol_version = "io.modelcontextprotocol/protocolVersion";
inline constexpr std::string_view client_capabilities =
    "io.modelcontextprotocol/clientCapabilities";
inline constexpr std::string_view client_info = "io.modelcontextprotocol/clientInfo";
inline constexpr std::string_view log_level = "io.modelcontextprotocol/logLevel";
inline constexpr std::string_view server_info = "io.modelcontextprotocol/serverInfo";
inline constexpr std::string_view prefix = "io.modelcontextprotocol/";
}  // namespace meta

// The requests by which a client has the server act on something it names: a tool, a resource,
// a prompt. What the policy judges and a transaction token goes with.
inline bool is_call_method(std::string_view method) {
  return method == "tools/call" || method == "resources/read" || method == "prompts/get";
}

// The RFC 5424 severities MCP logging uses (logging/setLevel, `_meta` logLevel), from debug (0)
// to emergency (7); -1 for anything else.
int log_severity(std::string_view level);
inline bool is_log_level(std::string_view level) {
  return log_severity(level) >= 0;
}

// A header value as 2026-07-28 carries it: plain when it is printable ASCII without leading or
// trailing space, else `=?base64?<base64 of the UTF-8 bytes>?=`.
std::string encode_header_value(std::string_view value);
// The inverse; nullopt when the `=?base64?…?=` form does not decode.
std::optional<std::string> decode_header_value(std::string_view value);

}  // namespace membrane::mcp
