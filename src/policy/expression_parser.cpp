// The condition language's parser: lexemes to a checked tree (types from expression_types), with
// the depth bounds that keep every later walk of the tree off the end of the stack.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "policy/expression_lexer.hpp"
#include "policy/expression_tree.hpp"
#include "policy/expression_types.hpp"

namespace membrane::policy {

namespace {

// Bounds that keep every recursion over a condition (parsing, optimizing, evaluating, freeing)
// far from the end of the stack, whatever a policy file holds.
constexpr std::size_t max_condition_nesting = 64;
constexpr std::size_t max_condition_height = 256;

class Parser {
 public:
  Parser(std::string_view text, const Environment& environment, const OffsetLocator& locate)
      : lexer_(text, locate), environment_(environment), locate_(locate) {
    advance();
  }

  // One field reference alone (a limit's `by:` entry): no operators, no literals.
  NodePtr parse_field_only() {
    const Lexeme first = current_;
    if (first.kind != Token::identifier)
      fail(first.offset, "expected a field name such as identity.sub");
    advance();
    auto node = parse_field(first.text, first.offset);
    if (current_.kind != Token::end)
      fail(current_.offset, "unexpected '" + current_.text + "': 'by' takes one field per entry");
    return node;
  }

  NodePtr parse() {
    auto node = parse_or();
    if (current_.kind != Token::end)
      fail(current_.offset, "unexpected '" + current_.text + "' after the condition");
    if (!can_be_boolean(node->type)) {
      fail(0, "a condition must be true or false, but this is a " +
                  std::string(to_string(node->type)));
    }
    return node;
  }

 private:
  [[noreturn]] void fail(std::size_t offset, const std::string& message) const {
    throw PolicyError(locate_(offset) + ": " + message);
  }

  void advance() { current_ = lexer_.next(); }

  bool at_keyword(std::string_view word) const {
    return current_.kind == Token::identifier && current_.text == word;
  }

  void expect(Token kind, std::string_view what) {
    if (current_.kind != kind) {
      fail(current_.offset,
           "expected " + std::string(what) +
               (current_.kind == Token::end ? " at the end" : ", got '" + current_.text + "'"));
    }
    advance();
  }

  NodePtr make(Node node) const {
    std::size_t below = 0;
    for (const NodePtr* operand : {&node.left, &node.right})
      if (*operand) below = std::max(below, (*operand)->height);
    for (const NodePtr& child : node.children)
      below = std::max(below, child->height);
    node.height = below + 1;
    if (node.height > max_condition_height) {
      fail(current_.offset,
           "the condition is too deep: more than " + std::to_string(max_condition_height) +
               " levels of operators, counting the macros it uses (write long alternatives as "
               "'x in [\"a\", \"b\"]' or in a list)");
    }
    return std::make_shared<const Node>(std::move(node));
  }

  // Parentheses, `not` and function calls nest the parser's own recursion.
  class Nesting {
   public:
    Nesting(Parser& parser, std::size_t offset) : parser_(parser) {
      if (++parser_.nesting_ > max_condition_nesting) {
        parser_.fail(offset, "nesting deeper than " + std::to_string(max_condition_nesting) +
                                 " levels (parentheses, 'not' and function calls)");
      }
    }
    ~Nesting() { --parser_.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Parser& parser_;
  };

  // A linear scan beats hashing for a handful of items; past that, `in` looks up a set.
  static void index_items(Node& node) {
    if (node.items.size() > 8) node.item_set.insert(node.items.begin(), node.items.end());
  }

  void require_boolean(const NodePtr& node, std::size_t offset, std::string_view context) const {
    if (!can_be_boolean(node->type)) {
      fail(offset, std::string(context) + " needs a true/false operand, got a " +
                       std::string(to_string(node->type)));
    }
  }

  NodePtr parse_or() { return parse_logical("or", Op::or_, &Parser::parse_and); }
  NodePtr parse_and() { return parse_logical("and", Op::and_, &Parser::parse_not); }

  // A left-associative chain `operand KEYWORD operand ...` of true/false operands.
  NodePtr parse_logical(std::string_view keyword, Op op, NodePtr (Parser::*operand)()) {
    auto left = (this->*operand)();
    while (at_keyword(keyword)) {
      const auto offset = current_.offset;
      advance();
      auto right = (this->*operand)();
      const std::string context = "'" + std::string(keyword) + "'";
      require_boolean(left, offset, context);
      require_boolean(right, offset, context);
      Node node;
      node.op = op;
      node.left = std::move(left);
      node.right = std::move(right);
      left = make(std::move(node));
    }
    return left;
  }

  NodePtr parse_not() {
    if (at_keyword("not")) {
      const auto offset = current_.offset;
      const Nesting nested(*this, offset);
      advance();
      auto operand = parse_not();
      require_boolean(operand, offset, "'not'");
      Node node;
      node.op = Op::not_;
      node.left = std::move(operand);
      return make(std::move(node));
    }
    return parse_comparison();
  }

  NodePtr parse_comparison() {
    auto left = parse_primary();
    static const std::map<std::string, Op, std::less<>> operators = {
        {"==", Op::equal},
        {"!=", Op::not_equal},
        {"<", Op::less},
        {"<=", Op::less_equal},
        {">", Op::greater},
        {">=", Op::greater_equal},
        {"in", Op::in},
        {"contains", Op::contains},
        {"startswith", Op::starts_with},
        {"endswith", Op::ends_with},
        {"glob", Op::glob},
        {"matches", Op::matches}};
    if (current_.kind != Token::op && current_.kind != Token::identifier) return left;
    const auto found = operators.find(current_.text);
    if (found == operators.end()) return left;
    const std::string spelling = current_.text;
    const std::size_t offset = current_.offset;
    advance();
    const std::size_t right_offset = current_.offset;
    auto right = parse_primary();

    Node node;
    node.op = found->second;
    if (const auto error = comparison_type_error(node.op, spelling, left->type, right->type);
        !error.empty()) {
      fail(offset, error);
    }
    if (node.op == Op::glob || node.op == Op::matches) {
      const auto* pattern =
          right->op == Op::literal ? std::get_if<std::string>(&right->constant) : nullptr;
      if (!pattern)
        fail(right_offset,
             "'" + spelling + "' needs a literal pattern string (it is compiled at load time)");
      node.pattern = *pattern;
      if (node.op == Op::matches) {
        auto regex = std::make_shared<re2::RE2>(*pattern, re2::RE2::Quiet);
        if (!regex->ok()) fail(right_offset, "invalid regular expression: " + regex->error());
        node.regex = std::move(regex);
      }
    }
    node.type = Type::boolean;
    node.left = std::move(left);
    node.right = std::move(right);
    return make(std::move(node));
  }

  NodePtr parse_list() {
    Node node;
    node.op = Op::list;
    node.type = Type::list;
    advance();  // '['
    while (current_.kind != Token::rbracket) {
      if (current_.kind == Token::string || current_.kind == Token::number) {
        node.items.push_back(current_.text);
        advance();
      } else {
        fail(current_.offset, "a list holds only literal strings and numbers");
      }
      if (current_.kind == Token::comma) {
        advance();
      } else if (current_.kind != Token::rbracket) {
        fail(current_.offset, "expected ',' or ']' in the list");
      }
    }
    advance();  // ']'
    index_items(node);
    return make(std::move(node));
  }

  NodePtr parse_function(const std::string& name, std::size_t offset) {
    const Nesting nested(*this, offset);
    advance();  // '('
    const std::size_t argument_offset = current_.offset;
    auto argument = parse_or();
    Node node;
    node.left = argument;
    if (name == "exists") {
      if (argument->op != Op::field)
        fail(argument_offset, "exists() takes a field, e.g. exists(args.path)");
      node.op = Op::exists;
      node.type = Type::boolean;
    } else if (name == "size") {
      if (!is_sizable(argument->type))
        fail(argument_offset, "size() takes a string, a list or a JSON array/object field");
      node.op = Op::size;
      node.type = Type::number;
    } else if (name == "path_within") {
      if (!compatible(argument->type, Type::string) && argument->type != Type::strings)
        fail(argument_offset, "path_within() takes a path string or a view of paths first");
      expect(Token::comma, "',' and the directory");
      if (current_.kind != Token::string)
        fail(current_.offset, "path_within() needs a literal directory, e.g. \"/workspace\"");
      node.pattern = current_.text;
      if (node.pattern.empty() || (node.pattern.front() != '/' && node.pattern.front() != '~')) {
        fail(current_.offset, "path_within() needs an absolute directory (starting with / or ~)");
      }
      advance();
      node.op = Op::path_within;
      node.type = Type::boolean;
    } else {
      fail(offset, "unknown function '" + name + "' (known: exists, size, path_within)");
    }
    expect(Token::rparen, "')'");
    return make(std::move(node));
  }

  NodePtr parse_field(const std::string& first, std::size_t offset) {
    // Dotted path: root names are fixed; below args/claims/annotations/txn/headers, anything.
    std::vector<std::string> names = {first};
    std::vector<PathStep> below;
    auto read_steps = [&](bool dynamic_tail) {
      while (current_.kind == Token::dot || current_.kind == Token::lbracket) {
        if (current_.kind == Token::dot) {
          advance();
          if (current_.kind != Token::identifier)
            fail(current_.offset, "expected a field name after '.'");
          if (dynamic_tail)
            below.push_back({current_.text, -1});
          else
            names.push_back(current_.text);
          advance();
        } else {
          if (!dynamic_tail)
            fail(current_.offset,
                 "'[' is only allowed inside args, claims, annotations, txn and headers");
          advance();
          if (current_.kind == Token::number) {
            // Checked before the conversion: an out-of-range double-to-integer cast is undefined.
            const double index = current_.number;
            if (!(index >= 0 && index <= 1'000'000) || index != std::floor(index)) {
              fail(current_.offset, "an array index must be a whole number from 0 to 1000000");
            }
            below.push_back({"", static_cast<long>(index)});
          } else if (current_.kind == Token::string)
            below.push_back({current_.text, -1});
          else
            fail(current_.offset, "expected an index or a quoted key in '[…]'");
          advance();
          expect(Token::rbracket, "']'");
        }
        if (!dynamic_tail) return;
      }
    };
    Node node;
    node.op = Op::field;
    const auto fixed = [&](FieldRoot root, Type type) {
      node.root = root;
      node.type = type;
    };
    // Single-name roots (args, txn) take any path below; two-name fields are looked up whole.
    const bool single = first == "args" || first == "txn";
    if (!single) read_steps(false);
    if (first == "call" && current_.kind == Token::dot) read_steps(false);  // call.urls.host
    std::string path = first;
    if (!single) {
      for (std::size_t i = 1; i < names.size(); ++i)
        path += "." + names[i];
    }
    const KnownField* field = find_known_field(path);
    if (!field) {
      fail(offset, "unknown field or name '" + path + "' (fields: " + known_field_list() +
                       "; or a list or macro defined before this rule)");
    }
    fixed(field->root, field->type);
    // Dynamic fields (JSON) go on: args.path, identity.claims.org, request.headers.x-agent.
    if (field->type == Type::dynamic) read_steps(true);
    if (node.root == FieldRoot::request_headers) {
      for (auto& step : below) {
        for (auto& c : step.key)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    node.path = std::move(below);
    return make(std::move(node));
  }

  NodePtr parse_primary() {
    const Lexeme lexeme = current_;
    switch (lexeme.kind) {
      case Token::lparen: {
        const Nesting nested(*this, lexeme.offset);
        advance();
        auto inner = parse_or();
        if (current_.kind == Token::comma) {
          fail(current_.offset,
               "expected ')', got ','; a list is written in square brackets: "
               "[\"a\", \"b\"]");
        }
        expect(Token::rparen, "')'");
        return inner;
      }
      case Token::lbracket:
        return parse_list();
      case Token::string: {
        advance();
        Node node;
        node.op = Op::literal;
        node.type = Type::string;
        node.constant = lexeme.text;
        return make(std::move(node));
      }
      case Token::number: {
        advance();
        Node node;
        node.op = Op::literal;
        node.type = Type::number;
        node.constant = lexeme.number;
        return make(std::move(node));
      }
      case Token::identifier: {
        advance();
        if (lexeme.text == "true" || lexeme.text == "false") {
          Node node;
          node.op = Op::literal;
          node.type = Type::boolean;
          node.constant = lexeme.text == "true";
          return make(std::move(node));
        }
        if (current_.kind == Token::lparen) return parse_function(lexeme.text, lexeme.offset);
        if (current_.kind != Token::dot && current_.kind != Token::lbracket) {
          if (const auto list = environment_.lists.find(lexeme.text);
              list != environment_.lists.end()) {
            Node node;
            node.op = Op::list;
            node.type = Type::list;
            node.items = list->second;
            index_items(node);
            return make(std::move(node));
          }
          if (const auto macro = environment_.macros.find(lexeme.text);
              macro != environment_.macros.end()) {
            Node node;
            node.op = Op::macro;
            node.type = Type::boolean;
            node.left = macro->second;
            return make(std::move(node));
          }
          if (lexeme.text != "args" && lexeme.text != "txn") {
            fail(lexeme.offset,
                 "unknown name '" + lexeme.text +
                     "': not a field, list or macro (lists and macros must be defined before use)");
          }
        }
        return parse_field(lexeme.text, lexeme.offset);
      }
      case Token::end:
        fail(lexeme.offset, "the condition ends where a value was expected");
      default:
        fail(lexeme.offset, "unexpected '" + lexeme.text + "' where a value was expected");
    }
  }

  Lexer lexer_;
  const Environment& environment_;
  const OffsetLocator& locate_;
  Lexeme current_;
  std::size_t nesting_ = 0;
};

}  // namespace

NodePtr compile_condition(std::string_view text, const Environment& environment,
                          const OffsetLocator& locate) {
  Parser parser(text, environment, locate);
  return parser.parse();
}

NodePtr compile_field(std::string_view text, const OffsetLocator& locate) {
  const Environment no_names;
  Parser parser(text, no_names, locate);
  return parser.parse_field_only();
}

}  // namespace membrane::policy
