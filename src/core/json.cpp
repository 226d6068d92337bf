#include "membrane/core/json.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "membrane/core/ascii.hpp"

namespace membrane::json {
namespace {
std::atomic<std::size_t> configured_depth{default_max_depth};
}  // namespace

void set_max_depth(std::size_t depth) {
  configured_depth.store(std::clamp<std::size_t>(depth, 1, max_configurable_depth),
                         std::memory_order_relaxed);
}

std::size_t max_depth() {
  return configured_depth.load(std::memory_order_relaxed);
}

std::size_t nesting_depth(std::string_view text, std::size_t stop_after) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stop_after) return deepest;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

std::string too_deep_message(std::size_t limit) {
  return "JSON nesting deeper than " + std::to_string(limit) + " levels";
}

std::string Parsed::reason() const {
  switch (error) {
    case ParseError::none:
      return {};
    case ParseError::too_deep:
      return too_deep_message(limit);
    case ParseError::not_json:
      break;
  }
  return "not valid JSON";
}

namespace {

// The length of the well-formed UTF-8 sequence that starts at text[i] (a non-ASCII lead byte), or
// 0 when it is not one: overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto lead = static_cast<unsigned char>(text[i]);
  std::size_t length = 0;
  std::uint32_t code_point = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code_point = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code_point = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (next & 0x3F);
  }
  if ((length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000) ||
      (code_point >= 0xD800 && code_point <= 0xDFFF) || code_point > 0x10FFFF)
    return 0;
  return length;
}

constexpr std::uint64_t every_byte(unsigned char byte) {
  return 0x0101010101010101ULL * byte;
}

// Nonzero when a byte of `word` is one a JSON string cannot hold as it is (a control character
// below 0x20, a quote, a backslash) or starts a UTF-8 sequence to check (0x80 and above). Eight
// bytes at a time: most strings a gateway writes (ids, names, times, hashes) have none of these.
constexpr std::uint64_t needs_a_look(std::uint64_t word) {
  const auto some_byte_zero = [](std::uint64_t x) {
    return (x - every_byte(1)) & ~x & every_byte(0x80);
  };
  const std::uint64_t below_space = (word - every_byte(0x20)) & ~word & every_byte(0x80);
  return below_space | some_byte_zero(word ^ every_byte('"')) |
         some_byte_zero(word ^ every_byte('\\')) | (word & every_byte(0x80));
}

void append_escape(std::string& out, unsigned char c) {
  static constexpr char hex[] = "0123456789abcdef";
  switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      out += "\\u00";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
  }
}

// Where a string's value goes as it is read: into a std::string, or nowhere when only its form is
// checked (the check builds nothing and allocates nothing).
struct Discard {
  void push_back(char) {}
  void append(const char*, std::size_t) {}
};

template <class Sink>
void append_utf8(Sink& out, std::uint32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// The escape after a backslash, at text[at] (read past), its value appended to `out`; false when
// it is not one JSON allows (a lone surrogate included).
template <class Sink>
bool read_escape(std::string_view text, std::size_t& at, Sink& out) {
  static constexpr std::string_view escaped = "\"\\/bfnrt";
  static constexpr std::string_view stands_for = "\"\\/\b\f\n\r\t";
  if (at == text.size()) return false;
  const char c = text[at++];
  if (const auto found = escaped.find(c); found != std::string_view::npos) {
    out.push_back(stands_for[found]);
    return true;
  }
  if (c != 'u') return false;
  const int unit = ascii::hex4_value(text, at);
  if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF)) return false;
  at += 4;
  if (unit < 0xD800 || unit > 0xDBFF) {
    append_utf8(out, static_cast<std::uint32_t>(unit));
    return true;
  }
  // A high surrogate stands only with a low one after it.
  if (text.substr(at, 2) != "\\u") return false;
  const int low = ascii::hex4_value(text, at + 2);
  if (low < 0xDC00 || low > 0xDFFF) return false;
  at += 6;
  append_utf8(out, 0x10000 + ((static_cast<std::uint32_t>(unit) - 0xD800) << 10) +
                       (static_cast<std::uint32_t>(low) - 0xDC00));
  return true;
}

// The string literal whose opening quote is at text[at], its value appended to `out`: the
// position past its closing quote, or npos when it is not well-formed (raw control characters,
// invalid UTF-8, a bad escape, no closing quote).
template <class Sink>
std::size_t read_string(std::string_view text, std::size_t at, Sink& out) {
  if (at >= text.size() || text[at] != '"') return std::string_view::npos;
  std::size_t plain_from = ++at;
  while (at < text.size()) {
    const auto c = static_cast<unsigned char>(text[at]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++at;
      continue;
    }
    // Characters that stand for themselves go in one append.
    out.append(text.data() + plain_from, at - plain_from);
    if (c == '"') return at + 1;
    if (c == '\\') {
      ++at;
      if (!read_escape(text, at, out)) return std::string_view::npos;
    } else if (c < 0x20) {
      return std::string_view::npos;
    } else {
      const std::size_t length = utf8_sequence_length(text, at);
      if (length == 0) return std::string_view::npos;
      out.append(text.data() + at, length);
      at += length;
    }
    plain_from = at;
  }
  return std::string_view::npos;
}

// What the Checker and the Builder share: a position in the text and the JSON grammar's tokens.
class Scanner {
 protected:
  explicit Scanner(std::string_view text) : text_(text) {}

  // Past a UTF-8 byte order mark, which nlohmann's parser skips.
  void skip_byte_order_mark() {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") at_ = 3;
  }

  void skip_space() {
    while (at_ < text_.size()) {
      const char c = text_[at_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++at_;
    }
  }

  bool at(char c) const { return at_ < text_.size() && text_[at_] == c; }

  bool literal(std::string_view word) {
    if (text_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  bool digits() {
    const std::size_t from = at_;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9')
      ++at_;
    return at_ > from;
  }

  struct NumberShape {
    std::size_t from = 0;            // where the number starts (its sign, if any)
    std::size_t integer_from = 0;    // where its integer part starts
    std::size_t integer_digits = 0;  // digits in its integer part
    bool integer = true;             // neither fraction nor exponent
    bool has_exponent = false;
  };

  // The number at at_ (read past), or nullopt when the text there is not one.
  std::optional<NumberShape> scan_number() {
    NumberShape shape;
    shape.from = at_;
    if (at('-')) ++at_;
    if (at_ == text_.size()) return std::nullopt;
    shape.integer_from = at_;
    if (at('0')) {
      ++at_;
    } else if (!digits()) {
      return std::nullopt;
    }
    shape.integer_digits = at_ - shape.integer_from;
    if (at('.')) {
      shape.integer = false;
      ++at_;
      if (!digits()) return std::nullopt;
    }
    if (at('e') || at('E')) {
      shape.integer = false;
      shape.has_exponent = true;
      ++at_;
      if (at('+') || at('-')) ++at_;
      if (!digits()) return std::nullopt;
    }
    return shape;
  }

  // The string at at_ (its opening quote), read past, its value appended to `out`.
  template <class Sink>
  bool string(Sink& out) {
    const std::size_t end = read_string(text_, at_, out);
    if (end == std::string_view::npos) return false;
    at_ = end;
    return true;
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

// One pass over a JSON text that builds nothing: the grammar of RFC 8259 as nlohmann's parser
// reads it (an optional UTF-8 byte order mark first; strings in well-formed UTF-8; an escaped high
// surrogate followed by an escaped low surrogate), with the depth of nesting bounded. The
// open containers are a stack of bits (1: object), so memory stays fixed whatever the input.
class Checker : Scanner {
 public:
  Checker(std::string_view text, std::size_t limit)
      : Scanner(text), limit_(std::min(limit, max_configurable_depth)) {}

  ParseError run() {
    skip_byte_order_mark();
    skip_space();
    for (;;) {
      if (!value()) return failure_;
      // After a value: close containers, or move to the next member or element.
      for (;;) {
        skip_space();
        if (depth_ == 0) return at_ == text_.size() ? ParseError::none : ParseError::not_json;
        if (at_ == text_.size()) return ParseError::not_json;
        const char c = text_[at_];
        const bool in_object = open_is_object();
        if (c == (in_object ? '}' : ']')) {
          ++at_;
          --depth_;
          continue;
        }
        if (c != ',') return ParseError::not_json;
        ++at_;
        skip_space();
        if (in_object && !member_name()) return ParseError::not_json;
        break;
      }
    }
  }

 private:
  static constexpr std::size_t word_bits = 64;

  bool open_is_object() const {
    const std::size_t level = depth_ - 1;
    return (open_[level / word_bits] >> (level % word_bits)) & 1U;
  }

  bool open(bool object) {
    if (depth_ >= limit_) {
      failure_ = ParseError::too_deep;
      return false;
    }
    const std::uint64_t bit = std::uint64_t{1} << (depth_ % word_bits);
    auto& word = open_[depth_ / word_bits];
    word = object ? (word | bit) : (word & ~bit);
    ++depth_;
    return true;
  }

  // A value at at_ (whitespace before it skipped); a container's first member or element, or its
  // end, is read here too so that "[]" and "{}" need no special state.
  bool value() {
    failure_ = ParseError::not_json;
    for (;;) {
      if (at_ == text_.size()) return false;
      const char c = text_[at_];
      if (c == '[' || c == '{') {
        if (!open(c == '{')) return false;
        ++at_;
        skip_space();
        if (at_ < text_.size() && text_[at_] == (c == '{' ? '}' : ']')) {
          ++at_;
          --depth_;
          return true;
        }
        if (c == '{' && !member_name()) return false;
        continue;
      }
      if (c == '"') return string(nowhere_);
      if (c == 't') return literal("true");
      if (c == 'f') return literal("false");
      if (c == 'n') return literal("null");
      return number();
    }
  }

  // `"name"`, whitespace and a colon, then whitespace: what precedes a member's value.
  bool member_name() {
    if (at_ == text_.size() || text_[at_] != '"' || !string(nowhere_)) return false;
    skip_space();
    if (at_ == text_.size() || text_[at_] != ':') return false;
    ++at_;
    skip_space();
    return true;
  }

  bool number() {
    const auto shape = scan_number();
    if (!shape) return false;
    // The parser refuses a number too large for a double (1e999): only one with an exponent or
    // hundreds of digits can be, so only those are converted.
    if (!shape->has_exponent && shape->integer_digits < 300) return true;
    return !overflows_double(text_.substr(shape->from, at_ - shape->from),
                             shape->integer_from - shape->from, shape->integer_digits);
  }

  // Whether the number (valid syntax) is finite as a double no longer. from_chars reports both
  // overflow and underflow as out of range; the parser takes an underflow (as zero), so the
  // magnitude's decimal exponent tells them apart.
  static bool overflows_double(std::string_view number, std::size_t integer_from,
                               std::size_t integer_digits) {
    double value = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
    (void)end;
    if (error != std::errc::result_out_of_range) return false;
    long magnitude = static_cast<long>(integer_digits) - 1;
    if (integer_digits == 1 && number[integer_from] == '0') {
      // 0.000ddd: the leading zeros of the fraction count down.
      magnitude = -1;
      for (std::size_t k = integer_from + 2; k < number.size() && number[k] == '0'; ++k)
        --magnitude;
    }
    const auto exponent_at = number.find_first_of("eE");
    if (exponent_at != std::string_view::npos) {
      long exponent = 0;
      std::size_t k = exponent_at + 1;
      const bool negative = number[k] == '-';
      if (number[k] == '+' || number[k] == '-') ++k;
      for (; k < number.size(); ++k) {
        exponent = std::min<long>(exponent * 10 + (number[k] - '0'), 1'000'000'000);
      }
      magnitude += negative ? -exponent : exponent;
    }
    return magnitude > 0;
  }

  Discard nowhere_;  // the check reads strings only for their form
  std::size_t limit_;
  std::size_t depth_ = 0;
  std::uint64_t open_[(max_configurable_depth + word_bits - 1) / word_bits] = {};
  ParseError failure_ = ParseError::not_json;
};

// Reads a JSON text into a tree in one pass, accepting exactly what the Checker accepts (the
// grammar as nlohmann's parser reads it) and building what nlohmann's parser builds: a
// non-negative integer is unsigned, a negative one signed, one out of their range or with a
// fraction or exponent a double (refused when not finite); a member named twice keeps its last
// value. nlohmann's lexer copies every character into a token buffer and builds through a SAX
// stack; this writes strings and containers where they go. Recursion is one level per container,
// bounded by the depth limit (at most max_configurable_depth).
class Builder : Scanner {
 public:
  Builder(std::string_view text, std::size_t limit)
      : Scanner(text), limit_(std::min(limit, max_configurable_depth)) {}

  ParseError run(Json& document) {
    skip_byte_order_mark();
    skip_space();
    if (!value(document, 0)) return failure_;
    skip_space();
    return at_ == text_.size() ? ParseError::none : ParseError::not_json;
  }

 private:
  // `depth`: the containers open around this value.
  bool value(Json& out, std::size_t depth) {
    failure_ = ParseError::not_json;
    if (at_ == text_.size()) return false;
    switch (text_[at_]) {
      case '{':
        return object(out, depth + 1);
      case '[':
        return array(out, depth + 1);
      case '"': {
        std::string text;
        if (!string(text)) return false;
        out = std::move(text);
        return true;
      }
      case 't':
        out = true;
        return literal("true");
      case 'f':
        out = false;
        return literal("false");
      case 'n':
        out = nullptr;
        return literal("null");
      default:
        return number(out);
    }
  }

  bool deeper_than_allowed(std::size_t depth) {
    if (depth <= limit_) return false;
    failure_ = ParseError::too_deep;
    return true;
  }

  bool object(Json& out, std::size_t depth) {
    if (deeper_than_allowed(depth)) return false;
    ++at_;
    out = Json::object();
    auto& members = out.get_ref<Json::object_t&>();
    skip_space();
    if (at('}')) {
      ++at_;
      return true;
    }
    std::string name;
    for (;;) {
      name.clear();
      if (!at('"') || !string(name)) return false;
      skip_space();
      if (!at(':')) return false;
      ++at_;
      skip_space();
      // A name seen before: its value is replaced, as nlohmann's parser does.
      if (!value(members[name], depth)) return false;
      skip_space();
      if (at(',')) {
        ++at_;
        skip_space();
        continue;
      }
      if (!at('}')) return false;
      ++at_;
      return true;
    }
  }

  bool array(Json& out, std::size_t depth) {
    if (deeper_than_allowed(depth)) return false;
    ++at_;
    out = Json::array();
    auto& items = out.get_ref<Json::array_t&>();
    skip_space();
    if (at(']')) {
      ++at_;
      return true;
    }
    for (;;) {
      if (!value(items.emplace_back(), depth)) return false;
      skip_space();
      if (at(',')) {
        ++at_;
        skip_space();
        continue;
      }
      if (!at(']')) return false;
      ++at_;
      return true;
    }
  }

  bool number(Json& out) {
    const auto shape = scan_number();
    if (!shape) return false;
    const bool negative = text_[shape->from] == '-';
    const char* first = text_.data() + shape->from;
    const char* last = text_.data() + at_;
    if (shape->integer && negative) {
      std::int64_t signed_value = 0;
      if (std::from_chars(first, last, signed_value).ec == std::errc()) {
        out = signed_value;
        return true;
      }
    } else if (shape->integer) {
      std::uint64_t unsigned_value = 0;
      if (std::from_chars(first, last, unsigned_value).ec == std::errc()) {
        out = unsigned_value;
        return true;
      }
    }
    // What nlohmann's parser does with the token: strtod (in the "C" locale the gateway runs in),
    // an underflow taken as what strtod gives, a result that is not finite refused.
    const std::string token(first, last);
    const double real = std::strtod(token.c_str(), nullptr);
    if (!std::isfinite(real)) return false;
    out = real;
    return true;
  }

  std::size_t limit_;
  ParseError failure_ = ParseError::not_json;
};

}  // namespace

ParseError check(std::string_view text, std::size_t limit) {
  return Checker(text, limit).run();
}

std::size_t decode_string(std::string_view text, std::size_t at, std::string& out) {
  return read_string(text, at, out);
}

Parsed parse(std::string_view text, std::size_t limit) {
  Parsed parsed;
  parsed.limit = limit;
  parsed.error = Builder(text, limit).run(parsed.value);
  // Text that is malformed and also nests too deep is refused for its depth, wherever the
  // malformation is: the answer does not depend on which one a reader meets first.
  if (parsed.error == ParseError::not_json && nesting_depth(text, limit) > limit)
    parsed.error = ParseError::too_deep;
  if (!parsed.ok()) parsed.value = Json(Json::value_t::discarded);
  return parsed;
}

void append_string(std::string& out, std::string_view text) {
  const std::size_t written_before = out.size();
  out.push_back('"');
  std::size_t plain_from = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text.size() - i >= sizeof(std::uint64_t)) {
      std::uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof word);
      if (!needs_a_look(word)) {
        i += sizeof word;
        continue;
      }
    }
    // Byte by byte to the end of this word (a UTF-8 sequence may run past it).
    const std::size_t word_end = std::min(text.size(), i + sizeof(std::uint64_t));
    while (i < word_end) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c >= 0x80) {
        const std::size_t length = utf8_sequence_length(text, i);
        if (length == 0) {
          // Not UTF-8: written as dump() writes it, each bad byte replaced by U+FFFD.
          out.resize(written_before);
          out += Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
          return;
        }
        i += length;
        continue;
      }
      if (c >= 0x20 && c != '"' && c != '\\') {
        ++i;
        continue;
      }
      // Plain characters go in one append.
      out.append(text.data() + plain_from, i - plain_from);
      append_escape(out, c);
      plain_from = ++i;
    }
  }
  out.append(text.data() + plain_from, text.size() - plain_from);
  out.push_back('"');
}

}  // namespace membrane::json
