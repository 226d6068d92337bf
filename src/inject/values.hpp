// Checks of the values a pod annotation or the injector config may hold. Both sources go through
// the same checks, so a default from the config and an annotation mean the same thing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace membrane::inject {

// 1-65535, digits only.
std::optional<std::uint16_t> parse_port(std::string_view text);

struct HttpUrl {
  std::string host;        // as written; IPv6 in brackets
  std::uint16_t port = 0;  // explicit, or 80 / 443 from the scheme
};

// The rules `membrane serve --upstream NAME=URL` applies, so a pod is never given a sidecar that
// cannot start: http or https, a host, an optional port 1-65535, no credentials, no fragment,
// nothing that needs quoting. On failure `problem` says why ("is not an http:// ... URL").
std::optional<HttpUrl> parse_http_url(std::string_view url, std::string& problem);

// A path segment of /mcp/<name>: letters, digits, '.', '_' and '-'.
bool is_upstream_name(std::string_view name);

// RFC 1123 subdomain: what Kubernetes accepts as a ConfigMap or Secret name.
bool is_dns_subdomain(std::string_view name);

// Printable ASCII without spaces; the registry decides the rest.
bool is_image_reference(std::string_view image);

// A Kubernetes resource quantity such as 50m, 1, 0.5, 64Mi or 1G.
bool is_quantity(std::string_view text);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view from, std::string_view to);

}  // namespace membrane::inject
