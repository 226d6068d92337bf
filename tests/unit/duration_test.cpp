#include <catch2/catch.hpp>

#include "membrane/core/duration.hpp"

using membrane::parse_duration_text;
using membrane::ParsedDuration;
using namespace std::chrono_literals;

TEST_CASE("durations are digits and one unit, bounded") {
  CHECK(parse_duration_text("250ms", 1h).value == 250ms);
  CHECK(parse_duration_text("15s", 1h).value == 15s);
  CHECK(parse_duration_text("2m", 1h).value == 2min);
  CHECK(parse_duration_text("1h", 1h).value == 1h);
  CHECK(parse_duration_text("0s", 1h).ok());
  CHECK(parse_duration_text("", 1h).problem == ParsedDuration::Problem::no_digits);
  CHECK(parse_duration_text("s", 1h).problem == ParsedDuration::Problem::no_digits);
  CHECK(parse_duration_text("15", 1h).problem == ParsedDuration::Problem::no_unit);
  CHECK(parse_duration_text("15 s", 1h).problem == ParsedDuration::Problem::unknown_unit);
  CHECK(parse_duration_text("3d", 1h).problem == ParsedDuration::Problem::unknown_unit);
  CHECK(parse_duration_text("61m", 1h).problem == ParsedDuration::Problem::too_long);
  // However many digits: no overflow, just too long.
  CHECK(parse_duration_text("99999999999999999999999999h", 1h).problem ==
        ParsedDuration::Problem::too_long);
}
