// Durations as operators write them in config files and on command lines: digits and one unit,
// ms, s, m or h ("15" alone is not a duration). Each caller words its own errors.
#pragma once

#include <chrono>
#include <string_view>

namespace membrane {

struct ParsedDuration {
  enum class Problem { none, no_digits, no_unit, unknown_unit, too_long };
  std::chrono::milliseconds value{0};
  Problem problem = Problem::none;
  bool ok() const { return problem == Problem::none; }
};

// `longest` bounds the value: anything longer is a typo, and a small bound rules out overflow
// when the value is added to a clock reading.
ParsedDuration parse_duration_text(std::string_view text, std::chrono::milliseconds longest);

}  // namespace membrane
