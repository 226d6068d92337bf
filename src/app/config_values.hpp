// The value parsers and checks behind the config file and the command-line flags. They know what
// is wrong with a value but not where it came from: they throw InvalidValue, and their callers
// rethrow it as a ConfigError naming the file position or the flag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/app/config.hpp"

namespace membrane::app::config_values {

// The source name of values given on the command line.
constexpr std::string_view kFlagsSource = "<flags>";
constexpr unsigned kMaxWorkerThreads = 1024;

inline SourceLocation flags_location() {
  return SourceLocation{std::string(kFlagsSource), 0, 0};
}

class InvalidValue : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string single_quoted(std::string_view text);
std::string join(const std::vector<std::string>& words, std::string_view separator);
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);
std::uint64_t parse_unsigned(std::string_view text);
std::size_t parse_size(std::string_view text);
// A positive duration; zero too when `allow_zero` (a delay that may be switched off).
Milliseconds parse_duration(std::string_view text, bool allow_zero = false);
std::uint16_t parse_port(std::string_view text);
// Returns the host to bind, without IPv6 brackets (what the listener's address parser expects).
std::string parse_listen_host(std::string_view text);
ListenerConfig parse_host_port(std::string_view text);
bool is_valid_upstream_name(std::string_view name);
void check_upstream_name(std::string_view name);
// Returns the URL with its scheme in lower case (schemes are case-insensitive, and the HTTP
// client downstream should only ever see "http" or "https"). `scheme_hint` tells the operator
// what to use instead of a wrong scheme, which differs between the YAML file (`command:`) and
// the --upstream flag (`stdio:`).
std::string normalized_http_url(std::string_view url, std::string_view scheme_hint);
// Splits `COMMAND ARGS…` the way a POSIX shell would for the common cases: whitespace separates
// words, '…' is literal, "…" allows \" and \\, and a backslash outside quotes escapes the next
// character. No expansion of any kind happens: the words go to execvp as they are.
std::vector<std::string> split_command_line(std::string_view text);
void check_log_level(std::string_view level);
// An Origin header value is `scheme://host[:port]` with nothing after it; the allow-list also
// accepts `:*` as a port wildcard.
void check_origin(std::string_view origin);
void check_allowed_host(std::string_view host);
void check_header_name(std::string_view name);
void check_header_value(std::string_view value);
void check_environment_name(std::string_view name);
// Why `path` cannot be read as a regular file, or nothing when it can.
std::optional<std::string> why_unreadable(const std::string& path);
std::optional<std::string> why_not_a_directory(const std::string& path);

}  // namespace membrane::app::config_values
