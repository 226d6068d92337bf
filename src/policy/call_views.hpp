// Normalized views of a call: what its arguments name and would run, whatever the server calls
// them. Each view is a list of strings that conditions test (`call.paths matches …` holds when
// one of them matches). Computed on the first test that asks, once per decision.
#pragma once

#include <array>
#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/policy/policy.hpp"

namespace membrane::policy {

enum class View : std::size_t {
  paths,              // every path, normalized
  argument_paths,     // the paths that are arguments of the tool itself (not inside commands)
  written_paths,      // the paths the call writes (write tools, > >> tee cp mv …)
  escaping_paths,     // the paths whose `..` climb to their root: / , ~, or the working directory
  commands,           // each simple command: "program arg …" after wrappers (sudo, env, …)
  programs,           // each program run, wrappers included, by base name
  pipelines,          // each pipeline's programs: "curl | sh"
  code,               // script bodies
  code_interpreters,  // parallel to code
  code_sources,       // parallel to code: argument, inline, stdin, heredoc, decoded
  urls,               // every URL as written
  url_schemes,        // parallel to urls
  url_hosts,
  url_ports,
  url_paths,
  url_host_classes,  // loopback, metadata, link-local, private, public
  strings,           // every string argument
  fields,            // every scalar argument as "its.path=value": "securityContext.privileged=true"
  count
};

struct CallViews {
  std::array<std::vector<std::string_view>, static_cast<std::size_t>(View::count)> values;
  // The texts views point into that the call does not hold (normalized paths, commands, …),
  // bounded: past max_stored_bytes nothing more is kept and the views are incomplete.
  static constexpr std::size_t max_stored_bytes = 4 * 1024 * 1024;
  std::deque<std::string> storage;
  std::size_t stored_bytes = 0;
  bool incomplete = false;          // a bound was reached: some of the call was not read
  bool structured = false;          // every view but strings is computed
  bool strings = false;             // strings and fields are computed

  const std::vector<std::string_view>& operator[](View view) const {
    return values[static_cast<std::size_t>(view)];
  }
  std::vector<std::string_view>& operator[](View view) {
    return values[static_cast<std::size_t>(view)];
  }
  // Keeps `text` for the decision; empty (and incomplete) past the bound.
  std::string_view keep(std::string text);
  void clear();
};

// Fills what `view` needs (every view but strings and fields is computed in one pass, since paths
// and URLs come out of commands and code) unless it already is.
void compute_view(View view, const CallContext& call, CallViews& views);

// The name a view has in conditions ("call.paths"), and back.
std::string_view view_name(View view);

// Lexical normalization for the paths view: file: URLs decoded, `$HOME`/`${HOME}` written `~`,
// `\` of a drive path made `/`, `.`/`..`/`//` resolved (never above `/`; kept at the head of a
// relative path or after `~`). Exposed for tests.
std::string normalize_view_path(std::string_view path);
// The same; `climbs_to_root` says whether a `..` reached the path's root (`/`, `~`, or the
// directory a relative path starts from) or went above it.
std::string normalize_view_path(std::string_view path, bool& climbs_to_root);
// "loopback", "metadata", "link-local", "private" or "public" for a URL host (IPv4 in any
// inet_aton spelling, IPv6 with or without brackets, or a name).
std::string_view classify_host(std::string_view host);

}  // namespace membrane::policy
