#include "membrane/http/origin_policy.hpp"

#include <algorithm>
#include <cctype>

#include "membrane/core/ascii.hpp"

namespace membrane::http {
namespace {

// Splits "host:port" / "[v6]:port" / "host" into host and port ("" when absent).
void split_host_port(std::string_view authority, std::string_view& host, std::string_view& port) {
  port = {};
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      host = authority;
      return;
    }
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
    return;
  }
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    host = authority;
    return;
  }
  host = authority.substr(0, colon);
  port = authority.substr(colon + 1);
}

// `pattern` and `value` are both "host[:port]"; a pattern port of "*" matches any port or none,
// and a pattern without a port matches only a value without a port.
bool authority_matches(std::string_view pattern, std::string_view value) {
  std::string_view pattern_host, pattern_port, host, port;
  split_host_port(pattern, pattern_host, pattern_port);
  split_host_port(value, host, port);
  if (pattern_host != host) return false;
  if (pattern_port == "*") return true;
  return pattern_port == port;
}

const std::vector<std::string> loopback_hosts = {"localhost:*", "127.0.0.1:*", "[::1]:*"};

}  // namespace

OriginPolicy::OriginPolicy(std::vector<std::string> allowed_origins,
                           std::vector<std::string> allowed_hosts, bool listening_on_loopback) {
  if (allowed_origins.empty()) {
    for (const auto& host : loopback_hosts) {
      origins_.push_back("http://" + host);
      origins_.push_back("https://" + host);
    }
  }
  for (const auto& origin : allowed_origins) {
    if (origin == "*") any_origin_ = true;
    origins_.push_back(ascii::lower(origin));
  }
  if (allowed_hosts.empty()) {
    if (listening_on_loopback)
      hosts_ = loopback_hosts;
    else
      any_host_ = true;
  }
  for (const auto& host : allowed_hosts) {
    if (host == "*") any_host_ = true;
    hosts_.push_back(ascii::lower(host));
  }
}

bool OriginPolicy::origin_allowed(std::string_view origin) const {
  if (origin.empty() || any_origin_) return true;
  const std::string value = ascii::lower(origin);
  const auto scheme_end = value.find("://");
  if (scheme_end == std::string::npos) return false;  // "null" and other opaque origins
  const std::string_view scheme = std::string_view(value).substr(0, scheme_end);
  const std::string_view authority = std::string_view(value).substr(scheme_end + 3);
  for (const auto& pattern : origins_) {
    const auto pattern_scheme_end = pattern.find("://");
    if (pattern_scheme_end == std::string::npos) continue;
    if (std::string_view(pattern).substr(0, pattern_scheme_end) != scheme) continue;
    std::string_view pattern_authority = std::string_view(pattern).substr(pattern_scheme_end + 3);
    if (!pattern_authority.empty() && pattern_authority.back() == '/')
      pattern_authority.remove_suffix(1);
    if (authority_matches(pattern_authority, authority)) return true;
  }
  return false;
}

bool OriginPolicy::host_allowed(std::string_view host) const {
  if (any_host_) return true;
  if (host.empty()) return false;  // HTTP/1.1 requires Host (RFC 9112 §3.2)
  const std::string value = ascii::lower(host);
  return std::any_of(hosts_.begin(), hosts_.end(),
                     [&](const std::string& pattern) { return authority_matches(pattern, value); });
}

}  // namespace membrane::http
