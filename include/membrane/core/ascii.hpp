// ASCII text helpers for protocol and configuration words (header names, schemes, hosts, keys):
// locale-independent, bytes above 0x7F left as they are.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

namespace membrane::ascii {

inline std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace membrane::ascii
