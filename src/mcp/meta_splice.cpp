#include "membrane/mcp/meta_splice.hpp"

#include <algorithm>

#include "membrane/core/json.hpp"

namespace membrane::mcp {
namespace {

constexpr std::size_t npos = std::string_view::npos;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::size_t skip_space(std::string_view text, std::size_t at) {
  while (at < text.size() && is_space(text[at]))
    ++at;
  return at;
}

// From the opening quote of a string to just past its closing one (npos when unterminated).
std::size_t skip_string(std::string_view text, std::size_t at) {
  for (++at; at < text.size(); ++at) {
    if (text[at] == '\\') {
      ++at;
    } else if (text[at] == '"') {
      return at + 1;
    }
  }
  return npos;
}

// From the first character of a value to just past it (npos when the text ends first). Nesting
// is counted, not recursed into: the depth of a message costs nothing here.
std::size_t skip_value(std::string_view text, std::size_t at) {
  std::size_t depth = 0;
  while (at < text.size()) {
    const char c = text[at];
    if (c == '"') {
      at = skip_string(text, at);
      if (at == npos) return npos;
      if (depth == 0) return at;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return at;  // the end of the enclosing object: a scalar ended before it
      if (--depth == 0) return at + 1;
    } else if (depth == 0 && (c == ',' || is_space(c))) {
      return at;  // a scalar ended
    }
    ++at;
  }
  return depth == 0 ? at : npos;
}

struct Member {
  bool ok = false;           // the object could be read without doubt
  bool empty = false;        // it has no members
  std::size_t value = npos;  // where the wanted member's value starts (npos: absent)
};

// Reads the object whose '{' is at `open`, looking for `name`. Doubt (an escaped key, `name`
// twice, a key in `taken`) makes it not ok.
Member find_member(std::string_view text, std::size_t open, std::string_view name,
                   const MetaMembers* taken = nullptr) {
  Member found;
  std::size_t at = skip_space(text, open + 1);
  if (at < text.size() && text[at] == '}') {
    found.ok = found.empty = true;
    return found;
  }
  while (at < text.size()) {
    if (text[at] != '"') return found;
    const std::size_t key_end = skip_string(text, at);
    if (key_end == npos) return found;
    const std::string_view key = text.substr(at + 1, key_end - at - 2);
    if (key.find('\\') != npos) return found;
    if (key == name) {
      if (found.value != npos) return found;
    }
    if (taken && std::any_of(taken->begin(), taken->end(),
                             [key](const auto& member) { return member.first == key; }))
      return found;
    at = skip_space(text, key_end);
    if (at >= text.size() || text[at] != ':') return found;
    at = skip_space(text, at + 1);
    if (key == name) found.value = at;
    at = skip_value(text, at);
    if (at == npos) return found;
    at = skip_space(text, at);
    if (at >= text.size()) return found;
    if (text[at] == '}') {
      found.ok = true;
      return found;
    }
    if (text[at] != ',') return found;
    at = skip_space(text, at + 1);
  }
  return found;
}

std::string members_text(const MetaMembers& members) {
  std::string text;
  for (const auto& [name, value] : members) {
    if (!text.empty()) text.push_back(',');
    json::append_string(text, name);
    text.push_back(':');
    json::append_string(text, value);
  }
  return text;
}

// Inserts `inner` as the first member(s) of the object whose '{' is at `open`.
void insert_first(std::string& message, std::size_t open, bool empty, const std::string& inner) {
  message.insert(open + 1, empty ? inner : inner + ",");
}

}  // namespace

bool splice_meta(std::string& message, const MetaMembers& members) {
  if (members.empty()) return true;
  const std::string_view text = message;
  const std::size_t open = skip_space(text, 0);
  if (open >= text.size() || text[open] != '{') return false;
  const auto params = find_member(text, open, "params");
  if (!params.ok) return false;
  if (params.value == npos) {
    insert_first(message, open, params.empty,
                 "\"params\":{\"_meta\":{" + members_text(members) + "}}");
    return true;
  }
  if (text[params.value] != '{') return false;
  const auto meta = find_member(text, params.value, "_meta");
  if (!meta.ok) return false;
  if (meta.value == npos) {
    insert_first(message, params.value, meta.empty, "\"_meta\":{" + members_text(members) + "}");
    return true;
  }
  if (text[meta.value] != '{') return false;
  const auto existing = find_member(text, meta.value, {}, &members);
  if (!existing.ok) return false;
  insert_first(message, meta.value, existing.empty, members_text(members));
  return true;
}

bool replace_string_at(std::string& message, std::initializer_list<std::string_view> path,
                       std::string_view value) {
  const std::string_view text = message;
  std::size_t open = skip_space(text, 0);
  if (open >= text.size() || text[open] != '{' || path.size() == 0) return false;
  std::size_t depth = 0;
  for (const auto key : path) {
    const auto member = find_member(text, open, key);
    if (!member.ok || member.value == npos) return false;
    if (++depth < path.size()) {
      if (text[member.value] != '{') return false;
      open = member.value;
      continue;
    }
    if (text[member.value] != '"') return false;
    const std::size_t end = skip_string(text, member.value);
    if (end == npos) return false;
    std::string replacement;
    json::append_string(replacement, value);
    message.replace(member.value, end - member.value, replacement);
    return true;
  }
  return false;
}

}  // namespace membrane::mcp
