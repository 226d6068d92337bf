// A bound on how deeply a YAML text nests, found without parsing it. yaml-cpp's parser and
// every walk over its nodes recurse once per level, so an operator file (config, policy, policy
// test cases) nested a few thousand levels deep would overflow the stack while loading. Files
// are measured first and refused past the limit with the line where it was crossed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace membrane::yaml_nesting {

// Generous for hand-written files (their structures are a handful of levels deep), small enough
// that yaml-cpp's recursion stays far from the stack's end.
inline constexpr std::size_t default_limit = 64;

struct Crossing {
  std::size_t line = 0;  // 1-based line where the bound first passed the limit
  std::size_t depth = 0;
};

// The first line where the nesting bound passes `limit`, or nothing when the text stays within
// it. The bound counts block indentation levels, compact "- " entries and flow brackets outside
// quoted scalars, comments and block scalars; it may over-estimate odd layouts, never
// under-estimate what the parser will recurse into.
std::optional<Crossing> first_crossing(std::string_view text, std::size_t limit = default_limit);

// "nesting deeper than 64 levels …", for the caller to prefix with file:line.
std::string describe(const Crossing& crossing, std::size_t limit = default_limit);

}  // namespace membrane::yaml_nesting
