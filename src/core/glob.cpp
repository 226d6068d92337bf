#include "membrane/core/glob.hpp"

namespace membrane::core {

bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
      continue;
    }
    if (p < pattern.size() && pattern[p] == '[') {
      const auto close = pattern.find(']', p + 1);
      if (close != std::string_view::npos) {
        std::string_view set = pattern.substr(p + 1, close - p - 1);
        const bool negate = !set.empty() && (set.front() == '!' || set.front() == '^');
        if (negate) set.remove_prefix(1);
        bool hit = false;
        for (std::size_t i = 0; i < set.size(); ++i) {
          if (i + 2 < set.size() && set[i + 1] == '-') {
            hit = hit || (text[t] >= set[i] && text[t] <= set[i + 2]);
            i += 2;
          } else {
            hit = hit || text[t] == set[i];
          }
        }
        if (hit != negate) {
          p = close + 1;
          ++t;
          continue;
        }
      }
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
      continue;
    }
    if (star == std::string_view::npos) return false;
    p = star + 1;
    t = ++resume;
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

}  // namespace membrane::core
