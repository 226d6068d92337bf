// For tests comparing the gateway's JSON reader with nlohmann's parser (the unit tests and the
// jsonrpc fuzz target).
#pragma once

#include <cmath>

#include <nlohmann/json.hpp>

namespace membrane::test {

// Whether two trees are the same values of the same types all the way down: nlohmann's == takes
// 1 and 1.0, or an unsigned and a signed 1, as equal, and 0.0 as -0.0. Recursive: for trees read
// with a depth limit.
inline bool same_tree(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.type() != b.type()) return false;
  if (a.is_number_float()) {
    const double x = a.get<double>();
    const double y = b.get<double>();
    return x == y && std::signbit(x) == std::signbit(y);
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j)
      if (i.key() != j.key() || !same_tree(i.value(), j.value())) return false;
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!same_tree(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

}  // namespace membrane::test
