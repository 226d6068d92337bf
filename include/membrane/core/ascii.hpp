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

// An HTTP token (RFC 9110 §5.6.2), what a header name is made of: not empty, letters, digits and
// !#$%&'*+-.^_`|~ only.
inline bool is_http_token(std::string_view text) {
  static constexpr std::string_view symbols = "!#$%&'*+-.^_`|~";
  if (text.empty()) return false;
  for (const char c : text) {
    const bool alphanumeric =
        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alphanumeric && symbols.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// Where the first CR or LF of `text` is, or npos. Two memchr scans: `find_first_of` with a set
// calls memchr on the set once per byte of the text, which on a long message or token is the
// slowest part of the check.
inline std::size_t find_line_break(std::string_view text) {
  const std::size_t line_feed = text.find('\n');
  const std::size_t carriage_return = text.substr(0, line_feed).find('\r');
  return carriage_return != std::string_view::npos ? carriage_return : line_feed;
}

// A header value that stays on its line: no CR, LF or NUL, which would end it early and let
// what follows be read as header lines of its own.
inline bool is_header_value(std::string_view value) {
  return find_line_break(value) == std::string_view::npos &&
         value.find('\0') == std::string_view::npos;
}

}  // namespace membrane::ascii
