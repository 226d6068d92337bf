// A virtual server: several configured upstreams served as one MCP server at /mcp/<name>. To the
// gateway's transports it is one more session-era upstream, so every client revision reaches it
// the way it reaches any other (sessions, 2026-07-28 through the gateway's bridge, legacy SSE).
// Behind it, each member upstream has a session of its own, sealed into the client's session id;
// initialize and listings go to every member at once and are merged, everything else goes to the
// one member that owns it (virtual_catalog.hpp), and what a member sends the client comes back
// tagged so that the client's answers find their way to that member.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "gateway/virtual/virtual_catalog.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway {

struct VirtualServerOptions {
  // How long one member may take over its part of a merged answer (initialize, a listing, a
  // broadcast): a member that is slower is left out of that answer, the others are not held up.
  std::chrono::milliseconds member_timeout{10'000};
  // URIs remembered per virtual server from resource listings, to route reads to their owner.
  std::size_t max_known_resources = 100'000;
  // Progressive discovery: tools/list gives a search tool (and what searches have found in this
  // session) instead of every tool.
  bool search_discovery = false;
  // Sessions whose found tools are remembered on this replica (the oldest are forgotten).
  std::size_t max_searching_sessions = 10'000;
};

// The search tool of a virtual server with progressive discovery.
inline constexpr std::string_view kSearchToolName = "search_tools";

// `members` are upstreams the gateway owns (they outlive the virtual server), in the catalogue's
// member order.
std::unique_ptr<upstream::Upstream> make_virtual_server(
    std::shared_ptr<const VirtualCatalog> catalog, std::vector<upstream::Upstream*> members,
    VirtualServerOptions options);

}  // namespace membrane::gateway
