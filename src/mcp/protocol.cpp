#include "membrane/mcp/protocol.hpp"

#include <algorithm>

namespace membrane::mcp {

bool is_supported_protocol_version(std::string_view version) {
  return std::find(supported_protocol_versions.begin(), supported_protocol_versions.end(),
                   version) != supported_protocol_versions.end();
}

bool is_stateless_protocol_version(std::string_view version) {
  // Revisions are dates: a later date compares greater as text.
  return version.size() == 10 && version >= stateless_protocol_version;
}

std::string_view supported_protocol_versions_text() {
  return "2026-07-28, 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05";
}

namespace {
constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view encoded_prefix = "=?base64?";
constexpr std::string_view encoded_suffix = "?=";
}  // namespace

std::string encode_header_value(std::string_view value) {
  bool plain = value.empty() || (value.front() != ' ' && value.back() != ' ');
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7e) plain = false;
  }
  if (plain && value.substr(0, encoded_prefix.size()) != encoded_prefix) return std::string(value);
  std::string out(encoded_prefix);
  std::size_t i = 0;
  for (; i + 2 < value.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(value[i]) << 16) |
                       (static_cast<unsigned char>(value[i + 1]) << 8) |
                       static_cast<unsigned char>(value[i + 2]);
    out += base64_alphabet[(n >> 18) & 63];
    out += base64_alphabet[(n >> 12) & 63];
    out += base64_alphabet[(n >> 6) & 63];
    out += base64_alphabet[n & 63];
  }
  if (const std::size_t rest = value.size() - i; rest > 0) {
    unsigned n = static_cast<unsigned char>(value[i]) << 16;
    if (rest == 2) n |= static_cast<unsigned char>(value[i + 1]) << 8;
    out += base64_alphabet[(n >> 18) & 63];
    out += base64_alphabet[(n >> 12) & 63];
    out += rest == 2 ? base64_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  out += encoded_suffix;
  return out;
}

std::optional<std::string> decode_header_value(std::string_view value) {
  if (value.substr(0, encoded_prefix.size()) != encoded_prefix) return std::string(value);
  if (value.size() < encoded_prefix.size() + encoded_suffix.size() ||
      value.substr(value.size() - encoded_suffix.size()) != encoded_suffix)
    return std::nullopt;
  const auto text = value.substr(encoded_prefix.size(),
                                 value.size() - encoded_prefix.size() - encoded_suffix.size());
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  unsigned accumulator = 0;
  int bits = 0;
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '=') {
      if (i + 2 < text.size()) return std::nullopt;
      ++padding;
      continue;
    }
    if (padding > 0) return std::nullopt;
    const auto position = base64_alphabet.find(c);
    if (position == std::string_view::npos) return std::nullopt;
    accumulator = (accumulator << 6) | static_cast<unsigned>(position);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((accumulator >> bits) & 0xff);
    }
  }
  return out;
}

int log_severity(std::string_view level) {
  static constexpr std::array<std::string_view, 8> levels = {
      "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};
  const auto found = std::find(levels.begin(), levels.end(), level);
  return found == levels.end() ? -1 : static_cast<int>(found - levels.begin());
}

}  // namespace membrane::mcp
