// The value parsers and checks behind the config file and the command-line flags.
#include "app/config_values.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <utility>

#include "membrane/core/ascii.hpp"
#include "membrane/core/duration.hpp"

namespace membrane::app::config_values {

namespace {

bool is_all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Edit distance, used only to suggest the intended key when one is misspelt.
std::size_t edit_distance(std::string_view from, std::string_view to) {
  std::vector<std::size_t> previous(to.size() + 1);
  std::vector<std::size_t> current(to.size() + 1);
  for (std::size_t j = 0; j <= to.size(); ++j)
    previous[j] = j;
  for (std::size_t i = 1; i <= from.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= to.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (from[i - 1] == to[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[to.size()];
}

bool is_ipv4_literal(const std::string& text) {
  in_addr address{};
  return inet_pton(AF_INET, text.c_str(), &address) == 1;
}

bool is_ipv6_literal(const std::string& text) {
  in6_addr address{};
  return inet_pton(AF_INET6, text.c_str(), &address) == 1;
}

const std::vector<std::string>& log_levels() {
  static const std::vector<std::string> kLevels{"error", "warn", "info", "debug"};
  return kLevels;
}

}  // namespace

std::string single_quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

std::string join(const std::vector<std::string>& words, std::string_view separator) {
  std::string joined;
  for (const auto& word : words) {
    if (!joined.empty()) joined += separator;
    joined += word;
  }
  return joined;
}

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t distance = edit_distance(ascii::lower(word), candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::uint64_t parse_unsigned(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc::result_out_of_range)
    throw InvalidValue(single_quoted(text) + " is too large");
  if (error != std::errc() || end != text.data() + text.size() || !is_all_digits(text)) {
    throw InvalidValue("expected a whole number, got " + single_quoted(text));
  }
  return value;
}

std::size_t parse_size(std::string_view text) {
  static constexpr std::string_view kExpectation =
      "expected a size like 4MiB (a number of bytes, or a number with B, KiB, MiB, GiB, KB, MB "
      "or GB)";
  struct Unit {
    std::string_view suffix;
    std::uint64_t bytes;
  };
  static constexpr std::array<Unit, 7> kUnits{{{"B", 1},
                                               {"KiB", 1ull << 10},
                                               {"MiB", 1ull << 20},
                                               {"GiB", 1ull << 30},
                                               {"KB", 1'000},
                                               {"MB", 1'000'000},
                                               {"GB", 1'000'000'000}}};

  const std::size_t digits_end = std::min(text.find_first_not_of("0123456789"), text.size());
  const std::string_view number = text.substr(0, digits_end);
  std::string_view suffix = text.substr(digits_end);
  if (!suffix.empty() && suffix.front() == ' ') suffix.remove_prefix(1);
  if (number.empty())
    throw InvalidValue(std::string(kExpectation) + ", got " + single_quoted(text));

  std::uint64_t multiplier = 1;
  if (!suffix.empty()) {
    const auto unit = std::find_if(kUnits.begin(), kUnits.end(), [&](const Unit& candidate) {
      return candidate.suffix == suffix;
    });
    if (unit == kUnits.end()) {
      throw InvalidValue(std::string(kExpectation) + ", got " + single_quoted(text) +
                         " (units are case-sensitive)");
    }
    multiplier = unit->bytes;
  }
  const std::uint64_t count = parse_unsigned(number);
  if (count == 0) throw InvalidValue("must be greater than zero, got " + single_quoted(text));
  if (count > std::numeric_limits<std::size_t>::max() / multiplier) {
    throw InvalidValue(single_quoted(text) + " is too large");
  }
  return static_cast<std::size_t>(count * multiplier);
}

// A positive duration; zero too when `allow_zero` (a delay that may be switched off).
Milliseconds parse_duration(std::string_view text, bool allow_zero) {
  static constexpr std::string_view kUnitsHint = "ms, s, m or h";
  constexpr Milliseconds kOneYear{366LL * 24 * 3'600'000};
  const ParsedDuration parsed = parse_duration_text(text, kOneYear);
  switch (parsed.problem) {
    case ParsedDuration::Problem::none:
      break;
    case ParsedDuration::Problem::no_unit:
      throw InvalidValue("expected a duration like 15s, got " + single_quoted(text) +
                         ": add a unit (" + std::string(kUnitsHint) + ")");
    case ParsedDuration::Problem::too_long:
      throw InvalidValue(single_quoted(text) + " is too long (at most one year)");
    case ParsedDuration::Problem::no_digits:
    case ParsedDuration::Problem::unknown_unit:
      throw InvalidValue("expected a duration like 15s, got " + single_quoted(text) +
                         " (units: " + std::string(kUnitsHint) + ")");
  }
  if (parsed.value.count() == 0 && !allow_zero)
    throw InvalidValue("must be greater than zero, got " + single_quoted(text));
  return parsed.value;
}

std::uint16_t parse_port(std::string_view text) {
  if (!is_all_digits(text))
    throw InvalidValue("expected a port number 0-65535, got " + single_quoted(text));
  const std::uint64_t port = parse_unsigned(text.size() > 6 ? text.substr(0, 6) : text);
  if (text.size() > 5 || port > 65535) {
    throw InvalidValue("port " + single_quoted(text) + " is out of range (0-65535)");
  }
  return static_cast<std::uint16_t>(port);
}

// Returns the host to bind, without IPv6 brackets (what the listener's address parser expects).
std::string parse_listen_host(std::string_view text) {
  std::string host(text);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (is_ipv6_literal(host)) return host;
    throw InvalidValue(single_quoted(text) + " is not an IPv6 address");
  }
  if (host == "localhost" || is_ipv4_literal(host) || is_ipv6_literal(host)) return host;
  throw InvalidValue("listen host must be an IPv4 or IPv6 address or 'localhost', got " +
                     single_quoted(text) + " (use 0.0.0.0 or :: to listen on every interface)");
}

ListenerConfig parse_host_port(std::string_view text) {
  static constexpr std::string_view kForms = "HOST:PORT, [IPV6]:PORT or :PORT";
  ListenerConfig listener;
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw InvalidValue("expected " + std::string(kForms) + ", got " + single_quoted(text));
    }
    host = text.substr(0, close + 1);
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      throw InvalidValue("expected " + std::string(kForms) + ", got " + single_quoted(text));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      throw InvalidValue("put IPv6 addresses in brackets, e.g. [::1]:8080, got " +
                         single_quoted(text));
    }
  }
  if (!host.empty()) listener.host = parse_listen_host(host);  // ":PORT" keeps the loopback default
  listener.port = parse_port(port);
  return listener;
}

bool is_valid_upstream_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
  });
}

void check_upstream_name(std::string_view name) {
  if (name.empty()) throw InvalidValue("upstream name is empty");
  if (!is_valid_upstream_name(name)) {
    // The name becomes a URL path segment (/mcp/<name>), so it must not need escaping.
    throw InvalidValue("upstream name " + single_quoted(name) +
                       " may only contain letters, digits, '.', '_' and '-'");
  }
}

// Returns the URL with its scheme in lower case (schemes are case-insensitive, and the HTTP
// client downstream should only ever see "http" or "https"). `scheme_hint` tells the operator
// what to use instead of a wrong scheme, which differs between the YAML file (`command:`) and
// the --upstream flag (`stdio:`).
std::string normalized_http_url(std::string_view url, std::string_view scheme_hint) {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    throw InvalidValue("expected an http:// or https:// URL, got " + single_quoted(url));
  }
  const std::string scheme = ascii::lower(url.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") {
    throw InvalidValue("unsupported URL scheme " + single_quoted(scheme) + " (use " +
                       std::string(scheme_hint) + ")");
  }
  if (std::any_of(url.begin(), url.end(),
                  [](unsigned char c) { return std::isspace(c) || std::iscntrl(c); })) {
    throw InvalidValue("URL " + single_quoted(url) + " contains whitespace or control characters");
  }
  if (url.find('#') != std::string_view::npos) {
    throw InvalidValue("URL " + single_quoted(url) +
                       " has a fragment ('#...'), which is never sent");
  }
  const std::string_view rest = url.substr(scheme_end + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.find('@') != std::string_view::npos) {
    // Credentials in URLs end up in logs; headers are the supported way to authenticate.
    throw InvalidValue("URL " + single_quoted(url) +
                       " contains credentials; put them in 'headers' (e.g. Authorization) instead");
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos)
      throw InvalidValue("URL " + single_quoted(url) + " has an unclosed '['");
    host = authority.substr(0, close + 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        throw InvalidValue("URL " + single_quoted(url) + " has a malformed host");
      port = after.substr(1);
      if (port.empty()) throw InvalidValue("URL " + single_quoted(url) + " has an empty port");
    }
    if (!is_ipv6_literal(std::string(host.substr(1, host.size() - 2)))) {
      throw InvalidValue("URL " + single_quoted(url) + " has an invalid IPv6 address");
    }
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty()) throw InvalidValue("URL " + single_quoted(url) + " has an empty port");
  }
  if (host.empty()) throw InvalidValue("URL " + single_quoted(url) + " has no host");
  if (host.front() != '[' && !std::all_of(host.begin(), host.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '.' || c == '-' || c == '_';
      })) {
    throw InvalidValue("URL " + single_quoted(url) + " has an invalid host " + single_quoted(host));
  }
  if (!port.empty()) {
    const std::uint16_t number = parse_port(port);
    if (number == 0) throw InvalidValue("URL " + single_quoted(url) + " has port 0");
  }
  return scheme + std::string(url.substr(scheme_end));
}

// Splits `COMMAND ARGS…` the way a POSIX shell would for the common cases: whitespace separates
// words, '…' is literal, "…" allows \" and \\, and a backslash outside quotes escapes the next
// character. No expansion of any kind happens: the words go to execvp as they are.
std::vector<std::string> split_command_line(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::exchange(word, {}));
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      const std::size_t close = text.find('\'', i + 1);
      if (close == std::string_view::npos) throw InvalidValue("unterminated single quote");
      word.append(text.substr(i + 1, close - i - 1));
      i = close;
    } else if (c == '"') {
      bool closed = false;
      for (++i; i < text.size(); ++i) {
        if (text[i] == '"') {
          closed = true;
          break;
        }
        if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) {
          ++i;
        }
        word += text[i];
      }
      if (!closed) throw InvalidValue("unterminated double quote");
    } else if (c == '\\') {
      if (i + 1 >= text.size()) throw InvalidValue("ends with a lone backslash");
      word += text[++i];
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

void check_log_level(std::string_view level) {
  const auto& levels = log_levels();
  if (std::find(levels.begin(), levels.end(), level) == levels.end()) {
    throw InvalidValue("unknown log level " + single_quoted(level) + " (use " + join(levels, ", ") +
                       ")");
  }
}

// An Origin header value is `scheme://host[:port]` with nothing after it; the allow-list also
// accepts `:*` as a port wildcard.
void check_origin(std::string_view origin) {
  const std::size_t scheme_end = origin.find("://");
  const bool scheme_ok =
      scheme_end != std::string_view::npos && scheme_end > 0 &&
      std::isalpha(static_cast<unsigned char>(origin.front())) &&
      std::all_of(
          origin.begin(), origin.begin() + static_cast<std::ptrdiff_t>(scheme_end),
          [](unsigned char c) { return std::isalnum(c) || c == '+' || c == '-' || c == '.'; });
  if (!scheme_ok) {
    throw InvalidValue("expected an origin like https://app.example.com, got " +
                       single_quoted(origin));
  }
  const std::string_view authority = origin.substr(scheme_end + 3);
  if (authority.empty()) throw InvalidValue("origin " + single_quoted(origin) + " has no host");
  if (authority.find_first_of("/?#") != std::string_view::npos) {
    throw InvalidValue("origin " + single_quoted(origin) +
                       " has a path; an Origin is only scheme://host[:port] (no trailing '/')");
  }
  if (std::any_of(authority.begin(), authority.end(),
                  [](unsigned char c) { return std::isspace(c) || c == '@'; })) {
    throw InvalidValue("origin " + single_quoted(origin) + " contains invalid characters");
  }
}

void check_allowed_host(std::string_view host) {
  if (host.empty()) throw InvalidValue("allowed host is empty");
  if (host.find("://") != std::string_view::npos) {
    throw InvalidValue(
        "expected a Host header value like example.com or example.com:8443 (no "
        "scheme), got " +
        single_quoted(host));
  }
  if (std::any_of(host.begin(), host.end(), [](unsigned char c) {
        return std::isspace(c) || c == '/' || c == '@' || c == '?' || c == '#';
      })) {
    throw InvalidValue("expected a Host header value like example.com or example.com:8443, got " +
                       single_quoted(host));
  }
}

void check_header_name(std::string_view name) {
  if (!ascii::is_http_token(name)) {
    throw InvalidValue("invalid header name " + single_quoted(name));
  }
  // The gateway frames and routes requests itself; letting configuration override these would
  // corrupt the exchange rather than customise it.
  static const std::set<std::string> kManagedHeaders{
      "host",    "content-length", "transfer-encoding", "connection",
      "upgrade", "mcp-session-id", "content-type",      "accept"};
  if (kManagedHeaders.contains(ascii::lower(name))) {
    throw InvalidValue("header " + single_quoted(name) +
                       " is set by the gateway and cannot be configured");
  }
}

void check_header_value(std::string_view value) {
  if (!ascii::is_header_value(value)) {
    throw InvalidValue("header values must not contain line breaks");
  }
}

void check_environment_name(std::string_view name) {
  if (name.empty() || name.find('=') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    throw InvalidValue("invalid environment variable name " + single_quoted(name));
  }
}

// Why `path` cannot be read as a regular file, or nothing when it can.
std::optional<std::string> why_unreadable(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) return "no such file";
  if (std::filesystem::is_directory(status)) return "it is a directory";
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::string(std::strerror(errno));
  return std::nullopt;
}

std::optional<std::string> why_not_a_directory(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) return "no such directory";
  if (!std::filesystem::is_directory(status)) return "not a directory";
  return std::nullopt;
}

}  // namespace membrane::app::config_values
