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

// The value of a hexadecimal digit (either case), or -1 for any other character.
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace membrane::ascii
