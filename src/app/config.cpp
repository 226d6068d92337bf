// Loading and validating the gateway configuration. Every problem is reported as a ConfigError
// that names where the value came from (`file:line:col`, or the command-line flag), because the
// operator reading it has only the message to go on.
#include "membrane/app/config.hpp"

#include "membrane/core/json.hpp"
#include "membrane/core/yaml_documents.hpp"
#include "membrane/core/yaml_nesting.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "cluster/redis_client.hpp"
#include "membrane/core/duration.hpp"

namespace membrane::app {

std::string SourceLocation::to_string() const {
  std::string text = file.empty() ? std::string("<config>") : file;
  if (line > 0) {
    text += ':' + std::to_string(line);
    if (column > 0) text += ':' + std::to_string(column);
  }
  return text;
}

ConfigError::ConfigError(const SourceLocation& where, const std::string& message)
    : std::runtime_error(where.to_string() + ": " + message), where_(where) {}

namespace {

constexpr std::string_view kFlagsSource = "<flags>";
constexpr unsigned kMaxWorkerThreads = 1024;

SourceLocation flags_location() {
  return SourceLocation{std::string(kFlagsSource), 0, 0};
}

// Thrown by the value parsers below. They know what is wrong with a value but not where it came
// from; their callers rethrow it as a ConfigError naming the file position or the flag.
class InvalidValue : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

bool is_all_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string to_lower(std::string_view text) {
  std::string lowered(text);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lowered;
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

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t distance = edit_distance(to_lower(word), candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

// ---- Value parsers (throw InvalidValue) ----------------------------------------------------

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
Milliseconds parse_duration(std::string_view text, bool allow_zero = false) {
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

bool is_ipv4_literal(const std::string& text) {
  in_addr address{};
  return inet_pton(AF_INET, text.c_str(), &address) == 1;
}

bool is_ipv6_literal(const std::string& text) {
  in6_addr address{};
  return inet_pton(AF_INET6, text.c_str(), &address) == 1;
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
  const std::string scheme = to_lower(url.substr(0, scheme_end));
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

const std::vector<std::string>& log_levels() {
  static const std::vector<std::string> kLevels{"error", "warn", "info", "debug"};
  return kLevels;
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

bool is_header_name_char(unsigned char c) {
  static constexpr std::string_view kTokenSymbols = "!#$%&'*+-.^_`|~";
  return std::isalnum(c) || kTokenSymbols.find(static_cast<char>(c)) != std::string_view::npos;
}

void check_header_name(std::string_view name) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), is_header_name_char)) {
    throw InvalidValue("invalid header name " + single_quoted(name));
  }
  // The gateway frames and routes requests itself; letting configuration override these would
  // corrupt the exchange rather than customise it.
  static const std::set<std::string> kManagedHeaders{
      "host",    "content-length", "transfer-encoding", "connection",
      "upgrade", "mcp-session-id", "content-type",      "accept"};
  if (kManagedHeaders.contains(to_lower(name))) {
    throw InvalidValue("header " + single_quoted(name) +
                       " is set by the gateway and cannot be configured");
  }
}

void check_header_value(std::string_view value) {
  if (value.find_first_of("\r\n") != std::string_view::npos ||
      value.find('\0') != std::string_view::npos) {
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

// ---- YAML reading ---------------------------------------------------------------------------

// Where each value from a config file was found, keyed by its dotted path
// ("listen.tls.certificate"), so checks made after parsing can still point at the line.
using LocationTable = std::map<std::string, SourceLocation>;

struct Field {
  YAML::Node node;
  std::string path;                  // dotted path, e.g. "timeouts.upstream_connect"
  SourceLocation where;              // the value's position, or its key's when the value is empty
  SourceLocation key_where = where;  // the key's position, for errors about the key itself
};

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return single_quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

[[noreturn]] void fail(const Field& field, const std::string& message) {
  throw ConfigError(field.where, field.path.empty() ? message : field.path + ": " + message);
}

class ConfigReader {
 public:
  explicit ConfigReader(std::string source_name) : file_(std::move(source_name)) {}

  Config read(const YAML::Node& root);
  const LocationTable& locations() const { return locations_; }

 private:
  // The entries of one YAML map, checked for unknown and duplicate keys up front.
  struct Entry {
    std::string key;
    Field value;
  };

  SourceLocation locate(const YAML::Node& node, const SourceLocation& fallback) const {
    const YAML::Mark mark = node.Mark();
    if (mark.line < 0 || node.IsNull()) return fallback;  // null values point past their key
    return SourceLocation{file_, mark.line + 1, mark.column + 1};
  }

  // `allowed_keys` empty = any key (maps of names: upstreams, headers, env).
  std::vector<Entry> entries_of(const Field& map_field,
                                const std::vector<std::string>& allowed_keys,
                                std::string_view key_kind = "key");
  static const Field* find(const std::vector<Entry>& entries, std::string_view key);

  Field& remember(Field& field) {
    locations_[field.path] = field.where;
    return field;
  }

  void expect_map(const Field& field, std::string_view what) const {
    if (!field.node.IsMap())
      fail(field, "expected " + std::string(what) + ", got " + describe(field.node));
  }
  std::string read_scalar(const Field& field, std::string_view what) const;
  std::string read_string(const Field& field) const { return read_scalar(field, "a string"); }
  std::string read_nonempty_string(const Field& field) const;
  std::uint64_t read_unsigned(const Field& field, std::string_view what) const;
  bool read_bool(const Field& field) const;
  std::vector<std::string> read_string_list(const Field& field, std::string_view what);
  // A map of names to text values (headers, env); each key and value is checked separately so a
  // problem points at the one that has it.
  std::map<std::string, std::string> read_string_map(
      const Field& field, std::string_view key_kind,
      const std::function<void(std::string_view)>& check_key,
      const std::function<void(std::string_view)>& check_value);

  template <typename Parser>
  auto parse_scalar(const Field& field, std::string_view what, Parser&& parser) const {
    const std::string text = read_scalar(field, what);
    try {
      return parser(text);
    } catch (const InvalidValue& problem) {
      fail(field, problem.what());
    }
  }

  ListenerConfig read_listen(Field& field);
  void read_limits(Field& field, LimitsConfig& limits);
  void read_timeouts(Field& field, TimeoutsConfig& timeouts);
  void read_security(Field& field, SecurityConfig& security);
  void read_session(Field& field, SessionConfig& session);
  void read_cluster(Field& field, ClusterConfig& cluster);
  void read_auth(Field& field, AuthConfig& auth);
  void read_txn(Field& field, TxnConfig& txn);
  UpstreamCredentialsConfig read_credentials(Field& field);
  std::vector<UpstreamConfig> read_upstreams(Field& field);
  UpstreamConfig read_upstream(const std::string& name, Field& definition);

  std::string file_;
  LocationTable locations_;
};

std::vector<ConfigReader::Entry> ConfigReader::entries_of(
    const Field& map_field, const std::vector<std::string>& allowed_keys,
    std::string_view key_kind) {
  std::vector<Entry> entries;
  for (const auto& pair : map_field.node) {
    const SourceLocation key_where = locate(pair.first, map_field.where);
    const Field key_field{pair.first, map_field.path, key_where};
    if (!pair.first.IsScalar())
      fail(key_field, "map keys must be plain names, got " + describe(pair.first));
    const std::string key = pair.first.Scalar();
    const std::string path = child_path(map_field.path, key);

    if (!allowed_keys.empty() &&
        std::find(allowed_keys.begin(), allowed_keys.end(), key) == allowed_keys.end()) {
      std::string message = "unknown key " + single_quoted(key);
      if (!map_field.path.empty()) message += " in '" + map_field.path + "'";
      if (const auto suggestion = closest_match(key, allowed_keys)) {
        message += " (did you mean " + single_quoted(*suggestion) + "?)";
      }
      message += "; allowed keys: " + join(allowed_keys, ", ");
      throw ConfigError(key_where, message);
    }
    if (const Field* earlier = find(entries, key)) {
      throw ConfigError(key_where,
                        "duplicate " + std::string(key_kind) + " " + single_quoted(key) +
                            (map_field.path.empty() ? "" : " in '" + map_field.path + "'") +
                            " (first defined at line " + std::to_string(earlier->key_where.line) +
                            ")");
    }
    entries.push_back(
        Entry{key, Field{pair.second, path, locate(pair.second, key_where), key_where}});
  }
  return entries;
}

const Field* ConfigReader::find(const std::vector<Entry>& entries, std::string_view key) {
  const auto entry =
      std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.key == key; });
  return entry == entries.end() ? nullptr : &entry->value;
}

std::string ConfigReader::read_scalar(const Field& field, std::string_view what) const {
  if (!field.node.IsScalar())
    fail(field, "expected " + std::string(what) + ", got " + describe(field.node));
  return field.node.Scalar();
}

std::string ConfigReader::read_nonempty_string(const Field& field) const {
  std::string text = read_string(field);
  if (text.empty()) fail(field, "must not be empty");
  return text;
}

std::uint64_t ConfigReader::read_unsigned(const Field& field, std::string_view what) const {
  const std::string text = read_scalar(field, what);
  // A quoted "2" is a string to every other YAML reader (and to the JSON schema); refusing it
  // here keeps the two in agreement.
  if (field.node.Tag() == "!")
    fail(field, "expected " + std::string(what) + ", got the quoted string " + single_quoted(text) +
                    " (remove the quotes)");
  try {
    return parse_unsigned(text);
  } catch (const InvalidValue&) {
    fail(field, "expected " + std::string(what) + ", got " + single_quoted(text));
  }
}

bool ConfigReader::read_bool(const Field& field) const {
  const std::string text = read_scalar(field, "true or false");
  // YAML 1.2 booleans only: yes/no/on/off are strings there, and a typo should not flip TLS off.
  if (field.node.Tag() != "!") {
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  fail(field, "expected true or false, got " + single_quoted(text));
}

std::vector<std::string> ConfigReader::read_string_list(const Field& field, std::string_view what) {
  if (!field.node.IsSequence())
    fail(field, "expected a list of " + std::string(what) + ", got " + describe(field.node));
  std::vector<std::string> items;
  std::size_t index = 0;
  for (const auto& item : field.node) {
    Field item_field{item, field.path + "[" + std::to_string(index++) + "]",
                     locate(item, field.where)};
    items.push_back(read_scalar(remember(item_field), what));
  }
  return items;
}

std::map<std::string, std::string> ConfigReader::read_string_map(
    const Field& field, std::string_view key_kind,
    const std::function<void(std::string_view)>& check_key,
    const std::function<void(std::string_view)>& check_value) {
  expect_map(field, "a map of " + std::string(key_kind) + " to value");
  std::map<std::string, std::string> values;
  for (auto& [key, value] : entries_of(field, {}, key_kind)) {
    try {
      check_key(key);
    } catch (const InvalidValue& problem) {
      throw ConfigError(value.key_where, value.path + ": " + problem.what());
    }
    const std::string text = read_scalar(remember(value), "a string");
    try {
      check_value(text);
    } catch (const InvalidValue& problem) {
      fail(value, problem.what());
    }
    values.emplace(key, text);
  }
  return values;
}

Config ConfigReader::read(const YAML::Node& root) {
  Config config;
  config.source = file_;
  Field root_field{root, "", SourceLocation{file_, 1, 1}};
  if (!root.IsDefined() || root.IsNull()) {
    fail(root_field,
         "the configuration is empty; it needs at least an 'upstreams' map (see "
         "examples/membrane.yaml)");
  }
  root_field.where = locate(root, root_field.where);
  expect_map(root_field, "a map of settings (listen, upstreams, ...) at the top level");

  const auto entries = entries_of(
      root_field, {"listen", "workers", "log_level", "limits", "timeouts", "security", "session",
                   "policy", "auth", "txn", "audit", "cluster", "admin", "otel", "upstreams"});
  for (auto entry : entries) {
    Field& field = remember(entry.value);
    if (entry.key == "listen") {
      config.listen = read_listen(field);
    } else if (entry.key == "workers") {
      const std::uint64_t workers = read_unsigned(field, "a number of worker threads");
      if (workers > kMaxWorkerThreads) {
        fail(field, "at most " + std::to_string(kMaxWorkerThreads) +
                        " worker threads (0 = one per CPU core), got " + std::to_string(workers));
      }
      config.worker_threads = static_cast<unsigned>(workers);
    } else if (entry.key == "log_level") {
      config.log_level = parse_scalar(field, "a log level", [](const std::string& text) {
        check_log_level(text);
        return text;
      });
    } else if (entry.key == "limits") {
      read_limits(field, config.limits);
    } else if (entry.key == "timeouts") {
      read_timeouts(field, config.timeouts);
    } else if (entry.key == "security") {
      read_security(field, config.security);
    } else if (entry.key == "session") {
      read_session(field, config.session);
    } else if (entry.key == "cluster") {
      read_cluster(field, config.cluster);
    } else if (entry.key == "policy") {
      expect_map(field,
                 "a map with paths, mode, default_verdict, approval_timeout and allow_empty");
      for (auto& [key, value] : entries_of(
               field, {"paths", "mode", "default_verdict", "approval_timeout", "allow_empty"})) {
        remember(value);
        if (key == "allow_empty") {
          config.policy.allow_empty = read_bool(value);
        } else if (key == "paths") {
          config.policy.paths = value.node.IsScalar()
                                    ? std::vector<std::string>{read_nonempty_string(value)}
                                    : read_string_list(value, "policy files or directories");
        } else if (key == "mode") {
          const std::string mode = read_nonempty_string(value);
          if (mode != "enforce" && mode != "shadow")
            fail(value, "expected enforce or shadow, got " + single_quoted(mode));
          config.policy.shadow = mode == "shadow";
        } else if (key == "approval_timeout") {
          config.policy.approval_timeout =
              parse_scalar(value, "a duration like 2m",
                           [](const std::string& text) { return parse_duration(text); });
        } else {
          const std::string verdict = read_nonempty_string(value);
          if (verdict != "allow" && verdict != "deny")
            fail(value, "expected allow or deny, got " + single_quoted(verdict));
          config.policy.default_verdict = verdict;
        }
      }
    } else if (entry.key == "auth") {
      read_auth(field, config.auth);
    } else if (entry.key == "otel") {
      expect_map(field, "a map with endpoint, headers, service_name, capture and queue");
      auto otel_entries =
          entries_of(field, {"endpoint", "headers", "service_name", "capture", "queue"});
      for (auto& [key, value] : otel_entries) {
        remember(value);
        if (key == "endpoint") {
          config.otel.endpoint = parse_scalar(value, "a URL", [](const std::string& text) {
            return normalized_http_url(text, "http or https");
          });
        } else if (key == "headers") {
          config.otel.headers =
              read_string_map(value, "header name", check_header_name, check_header_value);
        } else if (key == "capture") {
          for (const auto& item : read_string_list(value, "arguments and/or results")) {
            if (item == "arguments") {
              config.otel.capture_arguments = true;
            } else if (item == "results") {
              config.otel.capture_results = true;
            } else {
              fail(value, "capture lists arguments and/or results, got " + single_quoted(item));
            }
          }
        } else if (key == "queue") {
          config.otel.queue = read_unsigned(value, "a number of spans");
          if (config.otel.queue == 0 || config.otel.queue > 1'000'000)
            fail(value, "must be between 1 and 1000000 spans");
        } else {
          config.otel.service_name = read_nonempty_string(value);
        }
      }
      if (!find(otel_entries, "endpoint")) fail(field, "otel needs 'endpoint' (the collector URL)");
    } else if (entry.key == "admin") {
      config.admin = read_listen(field);
      if (config.admin->tls) fail(field, "the admin listener serves plain HTTP: no tls");
    } else if (entry.key == "txn") {
      read_txn(field, config.txn);
    } else if (entry.key == "audit") {
      expect_map(field, "a map with file, fsync, rotate, key_file, checkpoint_every and on_error");
      auto audit_entries = entries_of(
          field, {"file", "fsync", "rotate", "key_file", "checkpoint_every", "on_error"});
      for (auto& [key, value] : audit_entries) {
        remember(value);
        if (key == "file") {
          config.audit.file = read_nonempty_string(value);
        } else if (key == "rotate") {
          config.audit.rotate_bytes =
              parse_scalar(value, "a size like 100MiB",
                           [](const std::string& text) { return parse_size(text); });
        } else if (key == "key_file") {
          config.audit.key_file = read_nonempty_string(value);
        } else if (key == "checkpoint_every") {
          config.audit.checkpoint_every = read_unsigned(value, "a number of records");
          if (config.audit.checkpoint_every == 0) fail(value, "must be at least 1");
        } else if (key == "on_error") {
          const std::string choice = read_nonempty_string(value);
          if (choice != "refuse" && choice != "log")
            fail(value, "expected refuse or log, got " + single_quoted(choice));
          config.audit.refuse_on_error = choice == "refuse";
        } else {
          const std::string policy = read_nonempty_string(value);
          if (policy != "every" && policy != "none")
            fail(value, "expected every or none, got " + single_quoted(policy));
          config.audit.fsync_every_record = policy == "every";
        }
      }
      if (!find(audit_entries, "file")) fail(field, "audit needs 'file'");
    } else if (entry.key == "upstreams") {
      config.upstreams = read_upstreams(field);
    }
  }
  if (!find(entries, "upstreams")) {
    fail(root_field,
         "missing required key 'upstreams' (a map of upstream name to its 'url' or "
         "'command')");
  }
  return config;
}

ListenerConfig ConfigReader::read_listen(Field& field) {
  if (field.node.IsScalar()) {
    return parse_scalar(field, "HOST:PORT",
                        [](const std::string& text) { return parse_host_port(text); });
  }
  expect_map(field, "HOST:PORT or a map with host, port and tls");
  ListenerConfig listener;
  for (auto& [key, value] : entries_of(field, {"host", "port", "tls"})) {
    remember(value);
    if (key == "host") {
      listener.host = parse_scalar(value, "a host",
                                   [](const std::string& text) { return parse_listen_host(text); });
    } else if (key == "port") {
      const std::uint64_t port = read_unsigned(value, "a port number 0-65535");
      if (port > 65535) fail(value, "port " + std::to_string(port) + " is out of range (0-65535)");
      listener.port = static_cast<std::uint16_t>(port);
    } else if (key == "tls") {
      expect_map(value, "a map with certificate and private_key");
      const auto tls_entries = entries_of(value, {"certificate", "private_key"});
      TlsListenerConfig tls;
      for (auto tls_entry : tls_entries) {
        const std::string path = read_nonempty_string(remember(tls_entry.value));
        (tls_entry.key == "certificate" ? tls.certificate_file : tls.private_key_file) = path;
      }
      for (const char* required : {"certificate", "private_key"}) {
        if (!find(tls_entries, required))
          fail(value, "missing required key " + single_quoted(required));
      }
      listener.tls = std::move(tls);
    }
  }
  return listener;
}

void ConfigReader::read_limits(Field& field, LimitsConfig& limits) {
  expect_map(field, "a map of limits");
  const std::vector<std::pair<std::string, std::size_t*>> sizes{
      {"max_request_body", &limits.max_request_body_bytes},
      {"max_request_header", &limits.max_request_header_bytes},
      {"max_upstream_message", &limits.max_upstream_message_bytes},
      {"max_stream_buffer", &limits.max_stream_buffer_bytes},
      {"max_buffered_bytes", &limits.max_buffered_bytes}};
  const std::vector<std::pair<std::string, std::size_t*>> counts{
      {"max_buffered_messages", &limits.max_buffered_messages},
      {"max_connections", &limits.max_connections},
      {"max_streams", &limits.max_streams},
      {"max_sessions", &limits.max_sessions},
      {"max_sessions_per_caller", &limits.max_sessions_per_caller}};
  const std::vector<std::pair<std::string, Milliseconds*>> durations{
      {"session_idle", &limits.session_idle}, {"retry_after", &limits.retry_after}};
  std::vector<std::string> allowed;
  for (const auto& entry : sizes)
    allowed.push_back(entry.first);
  for (const auto& entry : counts)
    allowed.push_back(entry.first);
  for (const auto& entry : durations)
    allowed.push_back(entry.first);
  allowed.push_back("max_json_depth");
  const auto lookup = [](const auto& table, const std::string& key) {
    const auto found =
        std::find_if(table.begin(), table.end(), [&](const auto& t) { return t.first == key; });
    return found == table.end() ? nullptr : found->second;
  };
  auto entries = entries_of(field, allowed);
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "max_json_depth") {
      const std::uint64_t depth = read_unsigned(value, "a number of nesting levels");
      if (depth < 8 || depth > json::max_configurable_depth) {
        fail(value, "must be between 8 and " + std::to_string(json::max_configurable_depth) +
                        " (MCP messages need a few levels; deep recursion is what this bounds)");
      }
      limits.max_json_depth = static_cast<std::size_t>(depth);
    } else if (auto* count = lookup(counts, key)) {
      const std::uint64_t number = read_unsigned(
          value, key == "max_buffered_messages" ? "a number of messages" : "a whole number");
      if (number == 0) fail(value, "must be greater than zero");
      if (number > std::numeric_limits<std::uint32_t>::max()) {
        fail(value, "is too large (at most " +
                        std::to_string(std::numeric_limits<std::uint32_t>::max()) + ")");
      }
      *count = static_cast<std::size_t>(number);
    } else if (auto* duration = lookup(durations, key)) {
      *duration = parse_scalar(value, "a duration like 30m",
                               [](const std::string& text) { return parse_duration(text); });
      // Retry-After is a number of seconds.
      if (key == "retry_after" && duration->count() % 1000 != 0)
        fail(value, "must be a whole number of seconds (Retry-After counts in seconds)");
    } else {
      *lookup(sizes, key) = parse_scalar(value, "a size like 4MiB",
                                         [](const std::string& text) { return parse_size(text); });
    }
  }
  // Relations between the keys, reported at the key that breaks them.
  if (const Field* stream_buffer = find(entries, "max_stream_buffer");
      stream_buffer && limits.max_stream_buffer_bytes > limits.max_buffered_bytes) {
    fail(*stream_buffer, "must not exceed limits.max_buffered_bytes (" +
                             std::to_string(limits.max_buffered_bytes) + " bytes)");
  } else if (const Field* total = find(entries, "max_buffered_bytes");
             total && limits.max_stream_buffer_bytes > limits.max_buffered_bytes) {
    fail(*total, "must be at least limits.max_stream_buffer (" +
                     std::to_string(limits.max_stream_buffer_bytes) + " bytes)");
  }
  if (const Field* per_caller = find(entries, "max_sessions_per_caller");
      per_caller && limits.max_sessions_per_caller > limits.max_sessions) {
    fail(*per_caller,
         "must not exceed limits.max_sessions (" + std::to_string(limits.max_sessions) + ")");
  } else if (const Field* sessions = find(entries, "max_sessions");
             sessions && limits.max_sessions_per_caller > limits.max_sessions) {
    fail(*sessions, "must be at least limits.max_sessions_per_caller (" +
                        std::to_string(limits.max_sessions_per_caller) + ")");
  }
}

void ConfigReader::read_timeouts(Field& field, TimeoutsConfig& timeouts) {
  expect_map(field, "a map of timeouts");
  const std::vector<std::pair<std::string, Milliseconds*>> durations{
      {"request_header_read", &timeouts.request_header_read},
      {"request_body_read", &timeouts.request_body_read},
      {"keep_alive_idle", &timeouts.keep_alive_idle},
      {"upstream_connect", &timeouts.upstream_connect},
      {"upstream_response", &timeouts.upstream_response},
      {"sse_keep_alive", &timeouts.sse_keep_alive},
      {"shutdown_delay", &timeouts.shutdown_delay},
      {"shutdown_drain", &timeouts.shutdown_drain},
      {"stdio_restart_backoff_initial", &timeouts.stdio_restart_backoff_initial},
      {"stdio_restart_backoff_max", &timeouts.stdio_restart_backoff_max},
      {"stdio_shutdown_grace", &timeouts.stdio_shutdown_grace},
      {"stdio_session_idle", &timeouts.stdio_session_idle}};
  std::vector<std::string> allowed;
  for (const auto& duration : durations)
    allowed.push_back(duration.first);
  for (auto& [key, value] : entries_of(field, allowed)) {
    remember(value);
    const auto target = std::find_if(durations.begin(), durations.end(),
                                     [&name = key](const auto& d) { return d.first == name; });
    const bool allow_zero = key == "shutdown_delay";  // 0s: stop accepting at once
    *target->second = parse_scalar(
        value, "a duration like 15s",
        [allow_zero](const std::string& text) { return parse_duration(text, allow_zero); });
  }
}

void ConfigReader::read_security(Field& field, SecurityConfig& security) {
  expect_map(field, "a map with allowed_origins and allowed_hosts");
  for (auto& [key, value] : entries_of(field, {"allowed_origins", "allowed_hosts"})) {
    remember(value);
    const bool origins = key == "allowed_origins";
    auto& list = origins ? security.allowed_origins : security.allowed_hosts;
    list = read_string_list(value, origins ? "origins" : "host names");
    for (std::size_t index = 0; index < list.size(); ++index) {
      try {
        origins ? check_origin(list[index]) : check_allowed_host(list[index]);
      } catch (const InvalidValue& problem) {
        const std::string item_path = value.path + "[" + std::to_string(index) + "]";
        throw ConfigError(locations_[item_path], item_path + ": " + problem.what());
      }
    }
  }
}

void ConfigReader::read_session(Field& field, SessionConfig& session) {
  expect_map(field, "a map with key_file, key_env, max_age and ended_file");
  for (auto& [key, value] : entries_of(field, {"key_file", "key_env", "max_age", "ended_file"})) {
    remember(value);
    if (key == "key_file") {
      session.key_file = read_nonempty_string(value);
    } else if (key == "ended_file") {
      session.ended_file = read_nonempty_string(value);
    } else if (key == "key_env") {
      session.key_env = read_nonempty_string(value);
      try {
        check_environment_name(session.key_env);
      } catch (const InvalidValue& problem) {
        fail(value, problem.what());
      }
    } else if (key == "max_age") {
      const Milliseconds age =
          parse_scalar(value, "a duration like 24h",
                       [](const std::string& text) { return parse_duration(text); });
      if (age.count() % 1000 != 0)
        fail(value, "must be a whole number of seconds, got " + single_quoted(value.node.Scalar()));
      session.max_age = std::chrono::duration_cast<std::chrono::seconds>(age);
    }
  }
}

void ConfigReader::read_cluster(Field& field, ClusterConfig& cluster) {
  expect_map(field, "a map with redis");
  for (auto& [key, redis_field] : entries_of(field, {"redis"})) {
    Field& redis = remember(redis_field);
    expect_map(redis,
               "a map with url, password_env, password_file, key_prefix, timeout and on_error");
    auto entries = entries_of(
        redis, {"url", "password_env", "password_file", "key_prefix", "timeout", "on_error"});
    for (auto& [name, value] : entries) {
      remember(value);
      if (name == "url") {
        cluster.redis_url = read_nonempty_string(value);
        std::string error;
        const auto url = cluster::RedisUrl::parse(cluster.redis_url, error);
        if (!url) fail(value, error);
        if (!url->password.empty()) {
          fail(value,
               "the URL holds a password; name it with password_env or password_file instead "
               "(secrets stay out of the config)");
        }
      } else if (name == "password_env") {
        cluster.redis_password_env = read_nonempty_string(value);
        try {
          check_environment_name(cluster.redis_password_env);
        } catch (const InvalidValue& problem) {
          fail(value, problem.what());
        }
      } else if (name == "password_file") {
        cluster.redis_password_file = read_nonempty_string(value);
      } else if (name == "key_prefix") {
        cluster.key_prefix = read_nonempty_string(value);
      } else if (name == "timeout") {
        cluster.redis_timeout =
            parse_scalar(value, "a duration like 250ms",
                         [](const std::string& text) { return parse_duration(text); });
        if (cluster.redis_timeout.count() <= 0) fail(value, "must be longer than 0");
      } else {
        const std::string choice = read_nonempty_string(value);
        if (choice != "allow" && choice != "deny")
          fail(value, "expected allow or deny, got " + single_quoted(choice));
        cluster.deny_when_redis_down = choice == "deny";
      }
    }
    if (!find(entries, "url")) fail(redis, "needs 'url' (redis://HOST:PORT)");
  }
}

void ConfigReader::read_auth(Field& field, AuthConfig& auth) {
  expect_map(field,
             "a map with issuer, audience, jwks, leeway, scopes and public_url (and, for a "
             "JWKS URL, jwks_refresh_interval and jwks_ca_file)");
  auto entries = entries_of(field, {"issuer", "audience", "jwks", "jwks_refresh_interval",
                                    "jwks_ca_file", "leeway", "scopes", "public_url"});
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "issuer") {
      auth.issuer = read_nonempty_string(value);
    } else if (key == "audience") {
      auth.audiences = value.node.IsScalar() ? std::vector<std::string>{read_nonempty_string(value)}
                                             : read_string_list(value, "accepted audiences");
    } else if (key == "jwks") {
      auth.jwks = read_nonempty_string(value);
    } else if (key == "jwks_refresh_interval") {
      auth.jwks_refresh_interval =
          parse_scalar(value, "a duration like 30s",
                       [](const std::string& text) { return parse_duration(text); });
    } else if (key == "jwks_ca_file") {
      auth.jwks_ca_file = read_nonempty_string(value);
    } else if (key == "leeway") {
      auth.leeway = parse_scalar(value, "a duration like 60s",
                                 [](const std::string& text) { return parse_duration(text); });
    } else if (key == "scopes") {
      auth.scopes = read_string_list(value, "scopes");
    } else if (key == "public_url") {
      auth.public_url = parse_scalar(value, "a URL", [](const std::string& text) {
        std::string url = normalized_http_url(text, "http or https");
        while (!url.empty() && url.back() == '/')
          url.pop_back();
        return url;
      });
    }
  }
  for (const char* required : {"issuer", "audience", "jwks"}) {
    if (!find(entries, required)) {
      fail(field, std::string("auth needs '") + required +
                      "' (issuer, audience and jwks together turn authorization on)");
    }
  }
}

void ConfigReader::read_txn(Field& field, TxnConfig& txn) {
  expect_map(field,
             "a map with key_file, trust_domain, workload, lifetime, per, context and "
             "trusted_jwks");
  auto entries = entries_of(field, {"key_file", "trust_domain", "workload", "lifetime", "per",
                                    "context", "trusted_jwks", "exchange_clients"});
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "key_file") {
      txn.key_file = read_nonempty_string(value);
    } else if (key == "trust_domain") {
      txn.trust_domain = read_nonempty_string(value);
    } else if (key == "workload") {
      txn.workload = read_nonempty_string(value);
    } else if (key == "lifetime") {
      txn.lifetime = parse_scalar(value, "a duration like 5m",
                                  [](const std::string& text) { return parse_duration(text); });
      // The draft: minutes or less. A long-lived transaction token is a bearer credential.
      if (txn.lifetime > Milliseconds(15 * 60'000))
        fail(value, "transaction tokens live minutes at most: use 15m or less");
      if (txn.lifetime < Milliseconds(10'000)) fail(value, "use at least 10s");
    } else if (key == "per") {
      const std::string per = read_nonempty_string(value);
      if (per != "call" && per != "session")
        fail(value, "expected call or session, got " + single_quoted(per));
      txn.per_session = per == "session";
    } else if (key == "context") {
      txn.context = read_string_list(value, "argument names");
    } else if (key == "trusted_jwks") {
      txn.trusted_jwks = read_nonempty_string(value);
    } else if (key == "exchange_clients") {
      txn.exchange_clients = read_nonempty_string(value);
    }
  }
  if (!find(entries, "key_file")) {
    fail(field, "txn needs 'key_file' (the signing key; it is created when missing)");
  }
}

UpstreamCredentialsConfig ConfigReader::read_credentials(Field& field) {
  expect_map(field,
             "a map with env or file (a static value), or token_url, client_id and "
             "client_secret_env / client_secret_file (OAuth client credentials)");
  UpstreamCredentialsConfig credentials;
  auto entries =
      entries_of(field, {"header", "scheme", "env", "file", "token_url", "client_id",
                         "client_secret_env", "client_secret_file", "scope", "audience"});
  for (auto& [key, value] : entries) {
    remember(value);
    std::string text = read_nonempty_string(value);
    if (key == "env" || key == "client_secret_env") {
      try {
        check_environment_name(text);
      } catch (const InvalidValue& problem) {
        fail(value, problem.what());
      }
    }
    if (key == "header") {
      try {
        check_header_name(text);
      } catch (const InvalidValue& problem) {
        fail(value, problem.what());
      }
      credentials.header = std::move(text);
    } else if (key == "scheme") {
      credentials.scheme = std::move(text);
    } else if (key == "env") {
      credentials.env = std::move(text);
    } else if (key == "file") {
      credentials.file = std::move(text);
    } else if (key == "token_url") {
      credentials.token_url = parse_scalar(value, "a URL", [](const std::string& url) {
        return normalized_http_url(url, "http or https");
      });
    } else if (key == "client_id") {
      credentials.client_id = std::move(text);
    } else if (key == "client_secret_env") {
      credentials.client_secret_env = std::move(text);
    } else if (key == "client_secret_file") {
      credentials.client_secret_file = std::move(text);
    } else if (key == "scope") {
      credentials.scope = std::move(text);
    } else if (key == "audience") {
      credentials.audience = std::move(text);
    }
  }
  const bool is_static = !credentials.env.empty() || !credentials.file.empty();
  const bool is_oauth = !credentials.token_url.empty();
  if (is_static == is_oauth) {
    fail(field,
         "give either env or file (a static value), or token_url (OAuth client "
         "credentials)");
  }
  if (is_static && !credentials.env.empty() && !credentials.file.empty())
    fail(field, "give env or file, not both");
  if (is_oauth) {
    if (credentials.client_id.empty()) fail(field, "token_url needs client_id");
    if (credentials.client_secret_env.empty() == credentials.client_secret_file.empty())
      fail(field, "token_url needs one of client_secret_env or client_secret_file");
  }
  return credentials;
}

std::vector<UpstreamConfig> ConfigReader::read_upstreams(Field& field) {
  expect_map(field, "a map of upstream name to its definition");
  std::vector<UpstreamConfig> upstreams;
  for (auto& [name, definition] : entries_of(field, {}, "upstream name")) {
    upstreams.push_back(read_upstream(name, remember(definition)));
  }
  if (upstreams.empty()) fail(field, "at least one upstream is required");
  return upstreams;
}

UpstreamConfig ConfigReader::read_upstream(const std::string& name, Field& definition) {
  // Problems with the upstream as a whole point at its name: that is what the operator chose and
  // searches for.
  const Field name_field{definition.node, definition.path, definition.key_where};
  try {
    check_upstream_name(name);
  } catch (const InvalidValue& problem) {
    fail(name_field, problem.what());
  }
  expect_map(definition, "a map with 'url' (HTTP upstream) or 'command' (stdio upstream)");

  static const std::vector<std::string> kHttpKeys{"url",     "ca_file",     "verify_tls",
                                                  "headers", "credentials", "protocol"};
  static const std::vector<std::string> kStdioKeys{
      "command", "args", "env", "working_directory", "max_processes", "max_processes_per_caller"};
  static const std::vector<std::string> kCommonKeys{"scopes"};
  std::vector<std::string> allowed = kHttpKeys;
  allowed.insert(allowed.end(), kStdioKeys.begin(), kStdioKeys.end());
  allowed.insert(allowed.end(), kCommonKeys.begin(), kCommonKeys.end());
  auto entries = entries_of(definition, allowed);

  const bool is_http = find(entries, "url") != nullptr;
  const bool is_stdio = find(entries, "command") != nullptr;
  if (is_http && is_stdio) {
    fail(name_field, "give either 'url' (HTTP upstream) or 'command' (stdio upstream), not both");
  }
  if (!is_http && !is_stdio) {
    fail(name_field, "needs 'url' (HTTP upstream) or 'command' (stdio upstream)");
  }

  UpstreamConfig upstream;
  upstream.name = name;
  upstream.where = definition.key_where;
  HttpUpstreamConfig http;
  StdioUpstreamConfig stdio;
  const auto& own_keys = is_http ? kHttpKeys : kStdioKeys;
  for (auto& [key, value] : entries) {
    remember(value);
    if (key == "scopes") {
      upstream.scopes = read_string_list(value, "scopes");
      continue;
    }
    if (std::find(own_keys.begin(), own_keys.end(), key) == own_keys.end()) {
      fail(value,
           is_http ? single_quoted(key) + " only applies to stdio upstreams (those with 'command')"
                   : single_quoted(key) + " only applies to HTTP upstreams (those with 'url')");
    }
    if (key == "url") {
      http.url = parse_scalar(value, "a URL", [](const std::string& text) {
        return normalized_http_url(text, "http or https; for a local process use 'command'");
      });
    } else if (key == "ca_file") {
      http.ca_file = read_nonempty_string(value);
    } else if (key == "verify_tls") {
      http.verify_tls = read_bool(value);
    } else if (key == "headers") {
      http.headers = read_string_map(value, "header name", check_header_name, check_header_value);
    } else if (key == "credentials") {
      http.credentials = read_credentials(value);
    } else if (key == "protocol") {
      http.protocol =
          parse_scalar(value, "auto, 2026-07-28 or 2025-11-25", [](const std::string& text) {
            if (text == "auto") return std::string();
            if (text == "2026-07-28" || text == "2025-11-25") return text;
            throw InvalidValue(
                "'" + text +
                "' is not a revision the gateway speaks to an upstream (auto, 2026-07-28 "
                "or 2025-11-25)");
          });
    } else if (key == "command") {
      stdio.command = read_nonempty_string(value);
    } else if (key == "args") {
      stdio.args = read_string_list(value, "arguments");
    } else if (key == "env") {
      stdio.env =
          read_string_map(value, "variable name", check_environment_name, [](std::string_view) {});
    } else if (key == "working_directory") {
      stdio.working_directory = read_nonempty_string(value);
    } else if (key == "max_processes" || key == "max_processes_per_caller") {
      const std::uint64_t count = read_unsigned(value, "a number of processes");
      if (count == 0 || count > 100'000) fail(value, "must be between 1 and 100000");
      (key == "max_processes" ? stdio.max_processes : stdio.max_processes_per_caller) =
          static_cast<std::size_t>(count);
    }
  }
  if (is_http) {
    upstream.transport = std::move(http);
  } else {
    upstream.transport = std::move(stdio);
  }
  return upstream;
}

// ---- Cross-field validation -----------------------------------------------------------------

// Names the field a problem is in: its file position when the config came from YAML, the flag
// when it came from the command line, or at least the file and the key path otherwise.
class Validator {
 public:
  Validator(const Config& config, const LocationTable* locations)
      : config_(config), locations_(locations) {}

  void run() const;

 private:
  [[noreturn]] void fail(const std::string& yaml_path, std::string_view flag,
                         std::string_view flag_value, const std::string& message) const {
    if (locations_) {
      if (const auto found = locations_->find(yaml_path); found != locations_->end()) {
        throw ConfigError(found->second, yaml_path + ": " + message);
      }
    }
    if (config_.source == kFlagsSource && !flag.empty()) {
      const std::string named_flag = flag_value.empty()
                                         ? std::string(flag)
                                         : std::string(flag) + " " + single_quoted(flag_value);
      throw ConfigError(flags_location(), named_flag + ": " + message);
    }
    throw ConfigError(SourceLocation{config_.source, 0, 0}, yaml_path + ": " + message);
  }

  [[noreturn]] void fail_upstream(const UpstreamConfig& upstream,
                                  const std::string& message) const {
    if (upstream.where.file == kFlagsSource) {
      throw ConfigError(upstream.where,
                        "--upstream " + single_quoted(upstream.name) + ": " + message);
    }
    throw ConfigError(
        upstream.where.file.empty() ? SourceLocation{config_.source, 0, 0} : upstream.where,
        "upstreams." + upstream.name + ": " + message);
  }

  void check_readable(const std::string& yaml_path, std::string_view flag, const std::string& file,
                      std::string_view what) const {
    if (const auto problem = why_unreadable(file)) {
      fail(yaml_path, flag, file,
           "cannot read " + std::string(what) + " " + single_quoted(file) + ": " + *problem);
    }
  }

  void check_upstreams() const;
  void check_listener() const;
  void check_security() const;
  void check_session_and_timeouts() const;

  const Config& config_;
  const LocationTable* locations_;
};

void Validator::run() const {
  check_upstreams();
  check_listener();
  check_security();
  check_session_and_timeouts();
  try {
    check_log_level(config_.log_level);
  } catch (const InvalidValue& problem) {
    fail("log_level", "--log-level", config_.log_level, problem.what());
  }
  if (config_.worker_threads > kMaxWorkerThreads) {
    fail("workers", "--workers", std::to_string(config_.worker_threads),
         "at most " + std::to_string(kMaxWorkerThreads) + " worker threads");
  }
}

void Validator::check_upstreams() const {
  if (config_.upstreams.empty()) {
    fail("upstreams", "--upstream", "",
         "at least one upstream is required (--upstream NAME=URL, or an 'upstreams' map in the "
         "config file)");
  }
  std::map<std::string, const UpstreamConfig*> seen;
  for (const auto& upstream : config_.upstreams) {
    if (!is_valid_upstream_name(upstream.name)) {
      fail_upstream(upstream, "upstream name may only contain letters, digits, '.', '_' and '-'");
    }
    if (const auto [earlier, inserted] = seen.emplace(upstream.name, &upstream); !inserted) {
      const std::string first =
          earlier->second->where.line > 0
              ? " (first defined at " + earlier->second->where.to_string() + ")"
              : "";
      fail_upstream(upstream, "duplicate upstream name " + single_quoted(upstream.name) + first);
    }
    const std::string path = "upstreams." + upstream.name;
    if (const auto* http = std::get_if<HttpUpstreamConfig>(&upstream.transport)) {
      try {
        normalized_http_url(http->url, "http or https");
      } catch (const InvalidValue& problem) {
        fail_upstream(upstream, problem.what());
      }
      if (!http->ca_file.empty()) {
        if (const auto problem = why_unreadable(http->ca_file)) {
          const std::string message =
              "cannot read CA file " + single_quoted(http->ca_file) + ": " + *problem;
          if (locations_ && locations_->contains(path + ".ca_file"))
            fail(path + ".ca_file", "", "", message);
          fail_upstream(upstream, message);
        }
      }
    } else {
      const auto& stdio = std::get<StdioUpstreamConfig>(upstream.transport);
      if (stdio.command.empty()) fail_upstream(upstream, "the stdio command is empty");
      if (!stdio.working_directory.empty()) {
        if (const auto problem = why_not_a_directory(stdio.working_directory)) {
          const std::string message =
              "working directory " + single_quoted(stdio.working_directory) + ": " + *problem;
          if (locations_ && locations_->contains(path + ".working_directory")) {
            fail(path + ".working_directory", "", "", message);
          }
          fail_upstream(upstream, message);
        }
      }
    }
  }
}

void Validator::check_listener() const {
  try {
    parse_listen_host(config_.listen.host);
  } catch (const InvalidValue& problem) {
    fail("listen", "--listen", config_.listen.host, problem.what());
  }
  if (const auto& tls = config_.listen.tls) {
    if (tls->certificate_file.empty() || tls->private_key_file.empty()) {
      fail("listen.tls", "--tls-cert", "", "TLS needs both a certificate and a private key");
    }
    check_readable("listen.tls.certificate", "--tls-cert", tls->certificate_file,
                   "TLS certificate");
    check_readable("listen.tls.private_key", "--tls-key", tls->private_key_file, "TLS private key");
  }
}

void Validator::check_security() const {
  const auto& security = config_.security;
  for (std::size_t index = 0; index < security.allowed_origins.size(); ++index) {
    try {
      check_origin(security.allowed_origins[index]);
    } catch (const InvalidValue& problem) {
      fail("security.allowed_origins[" + std::to_string(index) + "]", "--allow-origin",
           security.allowed_origins[index], problem.what());
    }
  }
  for (std::size_t index = 0; index < security.allowed_hosts.size(); ++index) {
    try {
      check_allowed_host(security.allowed_hosts[index]);
    } catch (const InvalidValue& problem) {
      fail("security.allowed_hosts[" + std::to_string(index) + "]", "--allow-host",
           security.allowed_hosts[index], problem.what());
    }
  }
}

void Validator::check_session_and_timeouts() const {
  const auto& session = config_.session;
  if (!session.key_file.empty()) {
    check_readable("session.key_file", "--session-key-file", session.key_file, "session key file");
  }
  if (session.max_age.count() <= 0) fail("session.max_age", "", "", "must be greater than zero");

  const auto& timeouts = config_.timeouts;
  if (timeouts.stdio_restart_backoff_initial > timeouts.stdio_restart_backoff_max) {
    fail("timeouts.stdio_restart_backoff_initial", "", "",
         "must not exceed timeouts.stdio_restart_backoff_max (" +
             std::to_string(timeouts.stdio_restart_backoff_max.count()) + "ms)");
  }
}

void validate_with_locations(const Config& config, const LocationTable* locations) {
  Validator(config, locations).run();
}

}  // namespace

Config load_config_text(const std::string& yaml_text, const std::string& source_name) {
  if (const auto crossing = yaml_nesting::first_crossing(yaml_text)) {
    throw ConfigError(SourceLocation{source_name, static_cast<int>(crossing->line), 1},
                      yaml_nesting::describe(*crossing));
  }
  yaml_documents::SingleDocument document;
  try {
    document = yaml_documents::load_first(yaml_text);
  } catch (const YAML::Exception& error) {
    const SourceLocation where =
        error.mark.line < 0
            ? SourceLocation{source_name, 0, 0}
            : SourceLocation{source_name, error.mark.line + 1, error.mark.column + 1};
    throw ConfigError(where, "YAML syntax error: " + error.msg);
  }
  if (const auto& extra = document.extra_document) {
    throw ConfigError(SourceLocation{source_name, std::max(extra->line, 0) + 1, 1},
                      "only one YAML document is allowed; remove the extra '---' section");
  }
  ConfigReader reader(source_name);
  Config config = reader.read(document.root);
  validate_with_locations(config, &reader.locations());
  return config;
}

Config load_config_file(const std::string& path) {
  const SourceLocation file_itself{path, 0, 0};
  if (const auto problem = why_unreadable(path)) {
    throw ConfigError(file_itself, "cannot read config file: " + *problem);
  }
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad())
    throw ConfigError(file_itself, "cannot read config file: " + std::string(std::strerror(errno)));
  return load_config_text(text.str(), path);
}

UpstreamConfig parse_upstream_flag(const std::string& value) {
  const auto fail = [&](const std::string& message) -> ConfigError {
    return ConfigError(flags_location(), "--upstream " + single_quoted(value) + ": " + message);
  };
  const std::size_t equals = value.find('=');
  if (equals == std::string::npos) {
    throw fail("expected NAME=URL or NAME=stdio:COMMAND ARGS...");
  }
  UpstreamConfig upstream;
  upstream.name = value.substr(0, equals);
  upstream.where = flags_location();
  const std::string target = value.substr(equals + 1);
  try {
    check_upstream_name(upstream.name);
    static constexpr std::string_view kStdioPrefix = "stdio:";
    if (target.starts_with(kStdioPrefix)) {
      std::vector<std::string> words = split_command_line(target.substr(kStdioPrefix.size()));
      if (words.empty()) throw InvalidValue("stdio: needs a command, e.g. stdio:node server.js");
      StdioUpstreamConfig stdio;
      stdio.command = std::move(words.front());
      stdio.args.assign(std::make_move_iterator(words.begin() + 1),
                        std::make_move_iterator(words.end()));
      upstream.transport = std::move(stdio);
    } else {
      if (target.empty()) throw InvalidValue("expected a URL or stdio:COMMAND after '='");
      HttpUpstreamConfig http;
      http.url = normalized_http_url(target, "http, https or stdio:");
      upstream.transport = std::move(http);
    }
  } catch (const InvalidValue& problem) {
    throw fail(problem.what());
  }
  return upstream;
}

ListenerConfig parse_listen_flag(const std::string& value) {
  try {
    return parse_host_port(value);
  } catch (const InvalidValue& problem) {
    throw ConfigError(flags_location(), "--listen " + single_quoted(value) + ": " + problem.what());
  }
}

void validate(const Config& config) {
  validate_with_locations(config, nullptr);
}

Milliseconds parse_duration_flag(std::string_view flag, const std::string& text) {
  try {
    return parse_duration(text, true);
  } catch (const InvalidValue& problem) {
    throw ConfigError(SourceLocation{"<flags>", 0, 0}, std::string(flag) + ": " + problem.what());
  }
}

void set_redis_url_flag(const std::string& text, ClusterConfig& cluster) {
  std::string error;
  const auto url = cluster::RedisUrl::parse(text, error);
  if (!url) throw ConfigError(SourceLocation{"<flags>", 0, 0}, "--redis: " + error);
  if (!url->password.empty()) {
    throw ConfigError(SourceLocation{"<flags>", 0, 0},
                      "--redis: the URL holds a password; set $" + cluster.redis_password_env +
                          " instead (command lines are visible to every local user)");
  }
  cluster.redis_url = text;
}

}  // namespace membrane::app
