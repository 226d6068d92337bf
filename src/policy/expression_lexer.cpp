#include "policy/expression_lexer.hpp"

#include <cctype>
#include <charconv>

#include "membrane/policy/policy.hpp"

namespace membrane::policy {

void Lexer::fail(std::size_t offset, const std::string& message) const {
  throw PolicyError(locate_(offset) + ": " + message);
}

Lexeme Lexer::next() {
  while (position_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[position_])))
    ++position_;
  Lexeme lexeme;
  lexeme.offset = position_;
  if (position_ >= text_.size()) return lexeme;
  const char c = text_[position_];
  const auto single = [&](Token kind) {
    lexeme.kind = kind;
    lexeme.text = std::string(1, c);
    ++position_;
    return lexeme;
  };
  if (c == '(') return single(Token::lparen);
  if (c == ')') return single(Token::rparen);
  if (c == '[') return single(Token::lbracket);
  if (c == ']') return single(Token::rbracket);
  if (c == ',') return single(Token::comma);
  if (c == '.') return single(Token::dot);
  if (c == '"' || c == '\'') {
    ++position_;
    lexeme.kind = Token::string;
    while (position_ < text_.size() && text_[position_] != c) {
      char ch = text_[position_++];
      if (ch == '\\' && position_ < text_.size()) {
        // \" \' \\ \n \t \r are escapes; any other backslash stays, so regular expressions
        // such as "\.env$" read as written.
        const char escaped = text_[position_];
        if (escaped == '"' || escaped == '\'' || escaped == '\\') {
          ch = escaped;
          ++position_;
        } else if (escaped == 'n' || escaped == 't' || escaped == 'r') {
          ch = escaped == 'n' ? '\n' : escaped == 't' ? '\t' : '\r';
          ++position_;
        }
      }
      lexeme.text.push_back(ch);
    }
    if (position_ >= text_.size()) fail(lexeme.offset, "unterminated string");
    ++position_;
    return lexeme;
  }
  if (std::isdigit(static_cast<unsigned char>(c)) ||
      (c == '-' && position_ + 1 < text_.size() &&
       std::isdigit(static_cast<unsigned char>(text_[position_ + 1])))) {
    std::size_t end = position_ + 1;
    while (end < text_.size() &&
           (std::isdigit(static_cast<unsigned char>(text_[end])) || text_[end] == '.'))
      ++end;
    const auto [stop, ec] =
        std::from_chars(text_.data() + position_, text_.data() + end, lexeme.number);
    if (ec != std::errc{} || stop != text_.data() + end) fail(position_, "invalid number");
    lexeme.kind = Token::number;
    lexeme.text = std::string(text_.substr(position_, end - position_));
    position_ = end;
    return lexeme;
  }
  if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
    std::size_t end = position_ + 1;
    while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) ||
                                  text_[end] == '_' || text_[end] == '-' || text_[end] == '/')) {
      ++end;
    }
    lexeme.kind = Token::identifier;
    lexeme.text = std::string(text_.substr(position_, end - position_));
    position_ = end;
    return lexeme;
  }
  for (std::string_view op : {"==", "!=", "<=", ">=", "<", ">", "="}) {
    if (text_.substr(position_, op.size()) == op) {
      lexeme.kind = Token::op;
      lexeme.text = std::string(op == "=" ? "==" : op);
      position_ += op.size();
      return lexeme;
    }
  }
  fail(position_, std::string("unexpected character '") + c + "'");
}

}  // namespace membrane::policy
