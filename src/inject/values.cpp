#include "inject/values.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <vector>

namespace membrane::inject {

namespace {

bool is_ipv6_literal(std::string_view text) {
  in6_addr address{};
  return inet_pton(AF_INET6, std::string(text).c_str(), &address) == 1;
}

bool is_printable_ascii_word(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isspace(c) || std::iscntrl(c) || c >= 0x80;
  });
}

}  // namespace

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value < 1 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

std::optional<HttpUrl> parse_http_url(std::string_view url, std::string& problem) {
  const std::size_t scheme_end = url.find("://");
  std::string scheme(url.substr(0, scheme_end == std::string_view::npos ? 0 : scheme_end));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "http" && scheme != "https") {
    problem = "is not an http:// or https:// URL";
    return std::nullopt;
  }
  if (!is_printable_ascii_word(url)) {
    problem = "contains whitespace, control or non-ASCII characters";
    return std::nullopt;
  }
  if (url.find('#') != std::string_view::npos) {
    problem = "has a fragment ('#...'), which is never sent";
    return std::nullopt;
  }
  const std::string_view rest = url.substr(scheme_end + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.find('@') != std::string_view::npos) {
    problem = "contains credentials; a URL ends up in logs and in the pod spec";
    return std::nullopt;
  }
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos || !is_ipv6_literal(authority.substr(1, close - 1))) {
      problem = "has an invalid IPv6 address";
      return std::nullopt;
    }
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      problem = "has a malformed host";
      return std::nullopt;
    }
    if (!after.empty()) port = after.substr(1);
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() ||
      (host.front() != '[' && !std::all_of(host.begin(), host.end(), [](unsigned char c) {
         return std::isalnum(c) || c == '.' || c == '-' || c == '_';
       }))) {
    problem = "has no valid host";
    return std::nullopt;
  }
  HttpUrl parsed{std::string(host), static_cast<std::uint16_t>(scheme == "https" ? 443 : 80)};
  if (port) {
    const auto number = parse_port(*port);
    if (!number) {
      problem = "has an invalid port (1-65535)";
      return std::nullopt;
    }
    parsed.port = *number;
  }
  return parsed;
}

bool is_upstream_name(std::string_view name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool is_dns_subdomain(std::string_view name) {
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return !name.empty() && name.size() <= 253 && alnum(name.front()) && alnum(name.back()) &&
         std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

bool is_image_reference(std::string_view image) {
  return !image.empty() && image.size() <= 1024 && is_printable_ascii_word(image);
}

std::size_t edit_distance(std::string_view from, std::string_view to) {
  std::vector<std::size_t> previous(to.size() + 1), current(to.size() + 1);
  for (std::size_t j = 0; j <= to.size(); ++j)
    previous[j] = j;
  for (std::size_t i = 1; i <= from.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= to.size(); ++j) {
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1,
                             previous[j - 1] + (from[i - 1] == to[j - 1] ? 0 : 1)});
    }
    std::swap(previous, current);
  }
  return previous[to.size()];
}

bool is_quantity(std::string_view text) {
  // <digits>[.<digits>]<suffix>: the forms operators write (the API also takes exponents).
  static constexpr std::array<std::string_view, 14> kSuffixes{
      "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  const auto digits_end = [&](std::size_t from) {
    std::size_t end = from;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])))
      ++end;
    return end;
  };
  std::size_t position = digits_end(0);
  if (position == 0) return false;
  if (position < text.size() && text[position] == '.') {
    const std::size_t fraction_end = digits_end(position + 1);
    if (fraction_end == position + 1) return false;
    position = fraction_end;
  }
  return std::find(kSuffixes.begin(), kSuffixes.end(), text.substr(position)) != kSuffixes.end();
}

}  // namespace membrane::inject
