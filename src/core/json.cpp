#include "membrane/core/json.hpp"

#include <algorithm>
#include <atomic>

namespace membrane::json {
namespace {
std::atomic<std::size_t> configured_depth{default_max_depth};
}  // namespace

void set_max_depth(std::size_t depth) {
  configured_depth.store(std::clamp<std::size_t>(depth, 1, max_configurable_depth),
                         std::memory_order_relaxed);
}

std::size_t max_depth() {
  return configured_depth.load(std::memory_order_relaxed);
}

std::size_t nesting_depth(std::string_view text, std::size_t stop_after) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stop_after) return deepest;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

std::string too_deep_message(std::size_t limit) {
  return "JSON nesting deeper than " + std::to_string(limit) + " levels";
}

std::string Parsed::reason() const {
  switch (error) {
    case ParseError::none:
      return {};
    case ParseError::too_deep:
      return too_deep_message(limit);
    case ParseError::not_json:
      break;
  }
  return "not valid JSON";
}

Parsed parse(std::string_view text, std::size_t limit) {
  Parsed parsed;
  parsed.limit = limit;
  if (nesting_depth(text, limit) > limit) {
    parsed.value = Json(Json::value_t::discarded);
    parsed.error = ParseError::too_deep;
    return parsed;
  }
  parsed.value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.value.is_discarded()) parsed.error = ParseError::not_json;
  return parsed;
}

namespace {

// True when every multi-byte sequence of `text` is well-formed UTF-8 (what dump() accepts as is).
bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code_point = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
      code_point = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      code_point = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if ((length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000) ||
        (code_point >= 0xD800 && code_point <= 0xDFFF) || code_point > 0x10FFFF)
      return false;
    i += length;
  }
  return true;
}

}  // namespace

void append_string(std::string& out, std::string_view text) {
  if (!valid_utf8(text)) {
    out += Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
    return;
  }
  static constexpr char hex[] = "0123456789abcdef";
  const auto needs_escape = [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  };
  out.push_back('"');
  std::size_t plain_from = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!needs_escape(c)) continue;
    // Plain characters go in one append: most strings have nothing to escape.
    out.append(text.data() + plain_from, i - plain_from);
    plain_from = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(hex[static_cast<unsigned char>(c) >> 4]);
        out.push_back(hex[static_cast<unsigned char>(c) & 15]);
    }
  }
  out.append(text.data() + plain_from, text.size() - plain_from);
  out.push_back('"');
}

}  // namespace membrane::json
