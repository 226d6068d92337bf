#include "membrane/core/duration.hpp"

#include <algorithm>
#include <cstdint>

namespace membrane {

ParsedDuration parse_duration_text(std::string_view text, std::chrono::milliseconds longest) {
  ParsedDuration parsed;
  const std::size_t digits_end = std::min(text.find_first_not_of("0123456789"), text.size());
  const std::string_view digits = text.substr(0, digits_end);
  const std::string_view unit = text.substr(digits_end);
  if (digits.empty()) {
    parsed.problem = ParsedDuration::Problem::no_digits;
    return parsed;
  }
  if (unit.empty()) {
    parsed.problem = ParsedDuration::Problem::no_unit;
    return parsed;
  }
  std::int64_t unit_ms = 0;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s") {
    unit_ms = 1'000;
  } else if (unit == "m") {
    unit_ms = 60'000;
  } else if (unit == "h") {
    unit_ms = 3'600'000;
  } else {
    parsed.problem = ParsedDuration::Problem::unknown_unit;
    return parsed;
  }
  // Digit by digit, stopping as soon as the bound is passed: no overflow whatever the length.
  const std::int64_t longest_count = longest.count() / unit_ms;
  std::int64_t count = 0;
  for (const char digit : digits) {
    count = count * 10 + (digit - '0');
    if (count > longest_count) {
      parsed.problem = ParsedDuration::Problem::too_long;
      return parsed;
    }
  }
  parsed.value = std::chrono::milliseconds(count * unit_ms);
  return parsed;
}

}  // namespace membrane
