// Progressive discovery: which of a catalogue's tools fit what the model says it wants to do. The
// model sees one search tool instead of every definition; what it finds is added to its list.
// Ranking is lexical and bounded (no model, no index to keep): the query's words against each
// tool's name, title, description and parameter names, each counted by how much it says.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::gateway {

// The indexes (into `tools`) of at most `limit` tools that match `query`, best first; tools that
// match no word of the query are not returned. Each tool is a definition as tools/list gives it.
std::vector<std::size_t> rank_tools(const std::vector<const mcp::Json*>& tools,
                                    std::string_view query, std::size_t limit);

}  // namespace membrane::gateway
