#include "membrane/mcp/protocol.hpp"

#include <algorithm>

namespace membrane::mcp {

bool is_supported_protocol_version(std::string_view version) {
  return std::find(supported_protocol_versions.begin(), supported_protocol_versions.end(),
                   version) != supported_protocol_versions.end();
}

std::string_view supported_protocol_versions_text() {
  return "2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05";
}

}  // namespace membrane::mcp
