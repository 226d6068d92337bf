#include "membrane/mcp/param_headers.hpp"

#include "membrane/core/ascii.hpp"
#include "membrane/mcp/protocol.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace membrane::mcp {
namespace {

constexpr std::string_view declaration_key = "x-mcp-header";
constexpr std::string_view header_prefix = "Mcp-Param-";
constexpr std::string_view sentinel_prefix = "=?base64?";
constexpr std::string_view sentinel_suffix = "?=";

void collect(const Json& schema, std::vector<std::string>& path, std::vector<ParamHeader>& out) {
  if (!schema.is_object() || path.size() > max_param_header_depth ||
      out.size() >= max_param_headers)
    return;
  if (const auto declared = schema.find(declaration_key);
      declared != schema.end() && !path.empty() && declared->is_string()) {
    const std::string name = declared->get<std::string>();
    const std::string type = schema.value("type", std::string());
    const bool primitive =
        type == "string" || type == "integer" || type == "number" || type == "boolean";
    if (ascii::is_http_token(name) && primitive)
      out.push_back({path, name, type == "integer" || type == "number"});
  }
  const auto properties = schema.find("properties");
  if (properties == schema.end() || !properties->is_object()) return;
  for (const auto& [key, child] : properties->items()) {
    path.push_back(key);
    collect(child, path, out);
    path.pop_back();
  }
}

const Json* value_at(const Json& root, const std::vector<std::string>& path) {
  const Json* node = &root;
  for (const auto& key : path) {
    if (!node->is_object()) return nullptr;
    const auto child = node->find(key);
    if (child == node->end()) return nullptr;
    node = &*child;
  }
  return node;
}

// The argument as its header carries it; nullopt for what no header can (objects, arrays,
// numbers beyond what a client can write exactly).
std::optional<std::string> header_form(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_integer() || value.is_number_unsigned()) {
    constexpr double exact = 9007199254740991.0;  // 2^53 - 1
    const double number = value.get<double>();
    if (std::fabs(number) > exact) return std::nullopt;
    return value.dump();
  }
  if (value.is_number_float()) {
    const double number = value.get<double>();
    if (!std::isfinite(number)) return std::nullopt;
    return value.dump();
  }
  return std::nullopt;
}

bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = byte < 0x80           ? 1
                         : (byte >> 5) == 0x6  ? 2
                         : (byte >> 4) == 0xe  ? 3
                         : (byte >> 3) == 0x1e ? 4
                                               : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k)
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) return false;
    i += length;
  }
  return true;
}

bool canonical_decimal(std::string_view text) {
  std::size_t i = text.starts_with('-') ? 1 : 0;
  const std::size_t digits_start = i;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])))
    ++i;
  if (i == digits_start) return false;
  if (i == text.size()) return true;
  if (text[i] != '.') return false;
  const std::size_t fraction_start = ++i;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])))
    ++i;
  return i == text.size() && i > fraction_start;
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

std::string joined(const std::vector<std::string>& path) {
  std::string out;
  for (const auto& key : path)
    out += (out.empty() ? "" : ".") + key;
  return out;
}

}  // namespace

std::vector<ParamHeader> param_headers_of(const Json& input_schema) {
  std::vector<ParamHeader> out;
  std::vector<std::string> path;
  collect(input_schema, path, out);
  // A name declared twice (without regard to case) names no one argument: neither is checked.
  std::vector<std::string> names;
  for (const auto& declared : out)
    names.push_back(ascii::lower(declared.name));
  std::erase_if(out, [&names](const ParamHeader& declared) {
    return std::count(names.begin(), names.end(), ascii::lower(declared.name)) > 1;
  });
  return out;
}

std::optional<Json> param_header_mismatch(const std::vector<ParamHeader>& declared,
                                          const Json& arguments, const HeaderLookup& header) {
  for (const auto& parameter : declared) {
    const std::string name = std::string(header_prefix) + parameter.name;
    const Json* value = value_at(arguments, parameter.path);
    if (!value || value->is_null()) continue;
    const auto expected = header_form(*value);
    if (!expected) continue;
    const auto mismatch = [&](std::string why) {
      return Json{{"header", name}, {"body", std::move(why)}};
    };
    const auto sent = header(name);
    if (!sent)
      return mismatch("the body carries " + joined(parameter.path) + "=" + value->dump() +
                      " but the " + name + " header is absent");
    const std::string_view text = trimmed(*sent);
    std::optional<std::string> decoded = std::string(text);
    // Only a value with both ends of the form is decoded (Mcp-Name decodes one with the prefix
    // alone), and what it carries must be UTF-8 text.
    if (text.size() >= sentinel_prefix.size() + sentinel_suffix.size() &&
        text.starts_with(sentinel_prefix) && text.ends_with(sentinel_suffix)) {
      decoded = decode_header_value(text);
      if (!decoded || !valid_utf8(*decoded))
        return mismatch("the " + name + " header carries an invalid Base64 value");
    }
    const bool equal = parameter.numeric && value->is_number() && canonical_decimal(*decoded)
                           ? std::strtod(decoded->c_str(), nullptr) == value->get<double>()
                           : *decoded == *expected;
    if (!equal)
      return mismatch("the " + name + " header says " + Json(*decoded).dump() +
                      " but the body carries " + joined(parameter.path) + "=" + value->dump());
  }
  return std::nullopt;
}

}  // namespace membrane::mcp
