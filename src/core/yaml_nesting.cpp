#include "membrane/core/yaml_nesting.hpp"

#include <vector>

namespace membrane::yaml_nesting {
namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// Characters after which a quote or bracket opens a node rather than sitting inside a plain
// scalar (`it's`, `see [docs]` are text).
bool opens_scalar_context(char previous) {
  return previous == '\0' || previous == ':' || previous == '-' || previous == '[' ||
         previous == '{' || previous == ',' || previous == '?' || previous == '!' ||
         previous == '&';
}

// A line's content ends with a block scalar indicator (`|`, `>`, with optional chomping and
// indentation indicators): the more indented lines after it are text, not structure.
bool ends_with_block_scalar(std::string_view content) {
  while (!content.empty() && is_blank(content.back()))
    content.remove_suffix(1);
  std::size_t i = content.size();
  while (i > 0 && (content[i - 1] == '-' || content[i - 1] == '+' ||
                   (content[i - 1] >= '1' && content[i - 1] <= '9')))
    --i;
  if (i == 0 || (content[i - 1] != '|' && content[i - 1] != '>')) return false;
  return i == 1 || is_blank(content[i - 2]) || content[i - 2] == ':' || content[i - 2] == '-';
}

}  // namespace

std::optional<Crossing> first_crossing(std::string_view text, std::size_t limit) {
  std::vector<std::size_t> indents;  // open block levels, by indentation
  std::size_t flow_depth = 0;
  std::size_t block_depth = 0;  // of the line a flow collection began on
  char quote = '\0';            // inside a quoted scalar that may span lines
  std::size_t block_scalar_indent = std::string_view::npos;
  std::size_t line_number = 0;
  std::size_t position = 0;
  while (position <= text.size()) {
    const std::size_t end = std::min(text.find('\n', position), text.size());
    std::string_view line = text.substr(position, end - position);
    position = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    std::size_t indent = 0;
    while (indent < line.size() && line[indent] == ' ')
      ++indent;
    const bool blank = indent == line.size() || line[indent] == '#' || line[indent] == '\t';
    if (block_scalar_indent != std::string_view::npos) {
      if (blank || indent > block_scalar_indent) continue;
      block_scalar_indent = std::string_view::npos;
    }

    std::size_t column = 0;
    if (quote == '\0' && flow_depth == 0 && !blank) {
      while (!indents.empty() && indents.back() > indent)
        indents.pop_back();
      if (indents.empty() || indents.back() < indent) indents.push_back(indent);
      column = indent;
      block_depth = indents.size() + 1;
      // Compact nested sequences ("- - - x") and a mapping opened inside an entry.
      while (column + 1 < line.size() && (line[column] == '-' || line[column] == '?') &&
             is_blank(line[column + 1])) {
        ++block_depth;
        column += 2;
        while (column < line.size() && is_blank(line[column]))
          ++column;
      }
      if (block_depth > limit) return Crossing{line_number, block_depth};
    }

    char previous = '\0';
    for (std::size_t i = column; i < line.size(); ++i) {
      const char c = line[i];
      if (quote != '\0') {
        if (quote == '"' && c == '\\')
          ++i;
        else if (c == quote)
          quote = '\0';
        previous = c;
        continue;
      }
      if (c == '#' && (i == 0 || is_blank(line[i - 1]))) break;
      if ((c == '"' || c == '\'') && opens_scalar_context(previous)) {
        quote = c;
      } else if ((c == '[' || c == '{') && opens_scalar_context(previous)) {
        if (block_depth + ++flow_depth > limit)
          return Crossing{line_number, block_depth + flow_depth};
      } else if ((c == ']' || c == '}') && flow_depth > 0) {
        --flow_depth;
      }
      if (!is_blank(c)) previous = c;
    }
    if (quote == '\0' && flow_depth == 0 && !blank && ends_with_block_scalar(line))
      block_scalar_indent = indent;
    if (end == text.size()) break;
  }
  return std::nullopt;
}

std::string describe(const Crossing& crossing, std::size_t limit) {
  return "nesting deeper than " + std::to_string(limit) + " levels (" +
         std::to_string(crossing.depth) + " by line " + std::to_string(crossing.line) +
         "); structures this deep are refused";
}

}  // namespace membrane::yaml_nesting
