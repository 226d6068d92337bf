// MCP protocol revisions the gateway understands, and the HTTP header names they use.
#pragma once

#include <array>
#include <string_view>

namespace membrane::mcp {

// Newest first. 2024-11-05 is the legacy HTTP+SSE transport (served at /sse/<name>).
inline constexpr std::array<std::string_view, 4> supported_protocol_versions = {
    "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

// MCP transports §protocol-version-header: absent means the client speaks 2025-03-26.
inline constexpr std::string_view default_protocol_version = "2025-03-26";

bool is_supported_protocol_version(std::string_view version);
// "2025-11-25, 2025-06-18, …" for error messages.
std::string_view supported_protocol_versions_text();

namespace header {
inline constexpr std::string_view session_id = "Mcp-Session-Id";
inline constexpr std::string_view protocol_version = "MCP-Protocol-Version";
inline constexpr std::string_view last_event_id = "Last-Event-ID";
}  // namespace header

}  // namespace membrane::mcp
