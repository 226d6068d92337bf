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

}  // namespace membrane::json
