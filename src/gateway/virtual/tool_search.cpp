#include "gateway/virtual/tool_search.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "membrane/core/json.hpp"

namespace membrane::gateway {

namespace {

// What is read of one tool: a description or schema can be long, and every search reads every
// tool.
constexpr std::size_t kMaxFieldText = 4096;
constexpr std::size_t kMaxProperties = 64;
constexpr std::size_t kMaxQueryWords = 32;

// Words as people and tool names write them: lower case, split at anything that is not a letter
// or digit and between a lower-case letter and an upper-case one (readFile -> read, file).
std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  const auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  text = text.substr(0, kMaxFieldText);
  char previous = 0;
  for (const char c : text) {
    const bool lower = c >= 'a' && c <= 'z';
    const bool upper = c >= 'A' && c <= 'Z';
    const bool digit = c >= '0' && c <= '9';
    if (!lower && !upper && !digit) {
      flush();
    } else {
      if (upper && previous >= 'a' && previous <= 'z') flush();
      word.push_back(upper ? static_cast<char>(c - 'A' + 'a') : c);
    }
    previous = c;
  }
  flush();
  return words;
}

bool is_stop_word(std::string_view word) {
  static constexpr std::array<std::string_view, 24> kStopWords = {
      "a", "an", "and", "the", "to",   "of", "for", "in",   "on",   "with", "my",   "me",
      "i", "is", "it",  "at",  "that", "by", "or",  "this", "from", "some", "what", "how"};
  return std::find(kStopWords.begin(), kStopWords.end(), word) != kStopWords.end();
}

// How well `term` matches `word`: the same word, or one is the other's start ("file" and
// "files", "read" and "reading") when the shorter has at least four letters.
double match(std::string_view term, std::string_view word) {
  if (term == word) return 1.0;
  const std::string_view shorter = term.size() < word.size() ? term : word;
  const std::string_view longer = term.size() < word.size() ? word : term;
  if (shorter.size() >= 4 && longer.starts_with(shorter)) return 0.6;
  return 0.0;
}

struct Field {
  std::vector<std::string> words;
  double weight = 0;
};

std::vector<Field> fields_of(const mcp::Json& tool) {
  std::vector<Field> fields;
  if (!tool.is_object()) return fields;
  fields.push_back({words_of(json::string_member(tool, "name")), 3.0});
  fields.push_back({words_of(json::string_member(tool, "title")), 2.0});
  fields.push_back({words_of(json::string_member(tool, "description")), 1.0});
  const auto schema = tool.find("inputSchema");
  if (schema == tool.end() || !schema->is_object()) return fields;
  const auto properties = schema->find("properties");
  if (properties == schema->end() || !properties->is_object()) return fields;
  Field names{{}, 1.5};
  Field descriptions{{}, 0.5};
  std::size_t seen = 0;
  for (const auto& [name, property] : properties->items()) {
    if (++seen > kMaxProperties) break;
    for (auto& word : words_of(name))
      names.words.push_back(std::move(word));
    if (property.is_object()) {
      for (auto& word : words_of(json::string_member(property, "description")))
        descriptions.words.push_back(std::move(word));
    }
  }
  fields.push_back(std::move(names));
  fields.push_back(std::move(descriptions));
  return fields;
}

}  // namespace

std::vector<std::size_t> rank_tools(const std::vector<const mcp::Json*>& tools,
                                    std::string_view query, std::size_t limit) {
  std::vector<std::string> terms;
  for (auto& word : words_of(query)) {
    if (is_stop_word(word) || std::find(terms.begin(), terms.end(), word) != terms.end()) continue;
    terms.push_back(std::move(word));
    if (terms.size() == kMaxQueryWords) break;
  }
  std::vector<std::pair<double, std::size_t>> scored;
  if (terms.empty() || limit == 0) return {};
  for (std::size_t index = 0; index < tools.size(); ++index) {
    if (!tools[index]) continue;
    const auto fields = fields_of(*tools[index]);
    double score = 0;
    for (const auto& term : terms) {
      double best = 0;
      for (const auto& field : fields) {
        for (const auto& word : field.words)
          best = std::max(best, field.weight * match(term, word));
      }
      score += best;
    }
    if (score > 0) scored.emplace_back(score, index);
  }
  // Best first; equal scores keep the catalogue's order.
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::size_t> ranked;
  for (std::size_t i = 0; i < scored.size() && i < limit; ++i)
    ranked.push_back(scored[i].second);
  return ranked;
}

}  // namespace membrane::gateway
