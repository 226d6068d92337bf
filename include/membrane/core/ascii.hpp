// ASCII text helpers for protocol and configuration words (header names, schemes, hosts, keys):
// locale-independent, bytes above 0x7F left as they are.
#pragma once

#include <cctype>
#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

namespace membrane::ascii {

// Appends `number` in decimal, without a temporary string (a 19-digit time does not fit a short
// one).
inline void append_decimal(std::string& out, std::integral auto number) {
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, number).ptr);
}

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

// The value of the four hexadecimal digits at `at` in `text` (a JSON \u escape's code unit), or
// -1 when there are not four there.
inline int hex4_value(std::string_view text, std::size_t at) {
  if (at > text.size() || text.size() - at < 4) return -1;
  int value = 0;
  for (std::size_t i = at; i < at + 4; ++i) {
    const int digit = hex_value(text[i]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
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

// Where the first CR or LF of `text` is, or npos. `find_first_of` with a set calls memchr on the
// set once per byte of the text, which on a long message or token was the slowest part of the
// check; this scans for each character with memchr over windows that double in size, so that the
// bytes read are at most about twice those before the break: a caller looking for every line
// break (lines ended by CR alone, say) stays linear in the text.
inline std::size_t find_line_break(std::string_view text) {
  std::size_t window = 64;
  for (std::size_t at = 0; at < text.size(); at += window, window *= 2) {
    const std::string_view piece = text.substr(at, window);
    const std::size_t line_feed = piece.find('\n');
    const std::size_t carriage_return = piece.substr(0, line_feed).find('\r');
    if (carriage_return != std::string_view::npos) return at + carriage_return;
    if (line_feed != std::string_view::npos) return at + line_feed;
  }
  return std::string_view::npos;
}

// A header value that stays on its line: no CR, LF or NUL, which would end it early and let
// what follows be read as header lines of its own.
inline bool is_header_value(std::string_view value) {
  return find_line_break(value) == std::string_view::npos &&
         value.find('\0') == std::string_view::npos;
}

}  // namespace membrane::ascii
