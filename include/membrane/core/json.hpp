// Reading JSON that came from outside the process (client requests, upstream messages, tokens,
// files) with a bound on nesting. dump(), copies, comparisons and every walk the gateway does
// recurse once per level: a body nested 100,000 levels deep would overflow the stack in any of
// them. Every untrusted document is therefore refused past the limit as it is read, so the rest
// of the code may treat a parsed document as shallow.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace membrane::json {

using Json = nlohmann::json;

inline constexpr std::size_t default_max_depth = 64;
// The largest limit an operator may configure: far below what recursion can survive.
inline constexpr std::size_t max_configurable_depth = 1024;

// The process-wide limit (limits.max_json_depth), set once at start-up before serving.
void set_max_depth(std::size_t depth);
std::size_t max_depth();

// The nesting depth of the arrays and objects in `text` (brackets inside strings do not count),
// without parsing it. Stops counting once the depth passes `stop_after`, so the answer is at most
// stop_after + 1. Malformed text gets a number too; the parser rejects it afterwards.
std::size_t nesting_depth(std::string_view text, std::size_t stop_after);

// "JSON nesting deeper than 64 levels": the reason given for a document over the limit.
std::string too_deep_message(std::size_t limit);

enum class ParseError { none, not_json, too_deep };

struct Parsed {
  Json value;  // discarded unless error == none
  ParseError error = ParseError::none;
  std::size_t limit = 0;  // the depth limit it was read with
  bool ok() const { return error == ParseError::none; }
  // A sentence for logs and error messages ("not valid JSON", "JSON nesting deeper than …").
  std::string reason() const;
};

// Whether `text` is one JSON value nested at most `limit` deep (at most max_configurable_depth),
// checked in one pass that builds nothing and allocates nothing: for text that is passed on as it
// is rather than read. Accepts exactly what parse() accepts; when the text is both too deep and
// malformed, whichever comes first is the answer.
ParseError check(std::string_view text, std::size_t limit);

// Parses untrusted text: refused when it nests deeper than `limit` (at most
// max_configurable_depth) or is not one JSON value. One pass that writes the tree as it reads,
// recursing once per level up to the limit; the tree is the one nlohmann's parser would build
// (unsigned and signed integers, doubles, a repeated member's last value).
Parsed parse(std::string_view text, std::size_t limit);
inline Parsed parse(std::string_view text) {
  return parse(text, max_depth());
}

// The same, as a value that is discarded (is_discarded()) when refused, for call sites that only
// need to know whether it worked.
inline Json parse_or_discarded(std::string_view text) {
  return parse(text).value;
}

// A string member of a JSON object from outside the process: "" when `object` is not an object, or
// the member is absent or not a string (data from outside is never trusted to have the right
// types). The view lives as long as `object`.
inline std::string_view string_member(const Json& object, std::string_view key) {
  if (!object.is_object()) return {};
  const auto found = object.find(key);
  return found != object.end() && found->is_string()
             ? std::string_view(found->get_ref<const std::string&>())
             : std::string_view();
}

// Decodes the JSON string literal whose opening quote is at text[at], appending its value to
// `out` (escapes and surrogate pairs decoded, as the parser decodes them); returns the position
// past its closing quote, or npos when it is not a well-formed string (raw control characters,
// invalid UTF-8, a lone surrogate, no closing quote).
std::size_t decode_string(std::string_view text, std::size_t at, std::string& out);

// Appends `text` as a JSON string literal, exactly as dump() with error_handler_t::replace
// writes it (invalid UTF-8 becomes U+FFFD): for encoders that write JSON text without building a
// tree first.
void append_string(std::string& out, std::string_view text);

}  // namespace membrane::json
