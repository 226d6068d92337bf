// The condition language's lexemes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "policy/expression.hpp"

namespace membrane::policy {

enum class Token {
  end,
  identifier,
  string,
  number,
  lparen,
  rparen,
  lbracket,
  rbracket,
  comma,
  dot,
  op
};

struct Lexeme {
  Token kind = Token::end;
  std::string text;  // identifier, operator spelling, or decoded string
  double number = 0;
  std::size_t offset = 0;
};

// Splits a condition into lexemes, one at a time. Throws PolicyError at the offending character.
class Lexer {
 public:
  Lexer(std::string_view text, const OffsetLocator& locate) : text_(text), locate_(locate) {}
  Lexeme next();

 private:
  [[noreturn]] void fail(std::size_t offset, const std::string& message) const;

  std::string_view text_;
  const OffsetLocator& locate_;
  std::size_t position_ = 0;
};

}  // namespace membrane::policy
