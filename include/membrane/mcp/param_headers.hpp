// SEP-2243 `Mcp-Param-*` headers (MCP 2026-07-28): the tool arguments a server declares with
// `x-mcp-header`, and the check that a request's headers repeat the arguments they name. A server
// reached over HTTP checks them itself; the gateway checks them for one that cannot see headers
// (stdio).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::mcp {

struct ParamHeader {
  std::vector<std::string> path;  // property names from the arguments object down
  std::string name;               // the header is Mcp-Param-<name>
  bool numeric = false;           // integer or number: compared as numbers
};

// A tool's declarations in its inputSchema: `x-mcp-header` on a property reached through
// `properties` alone, of type string, integer, number or boolean, named by an RFC 9110 token.
// A declaration that breaks a rule is left out, and so are all declarations of a name given twice
// (without regard to case). Bounded: a schema is untrusted input; what lies deeper than
// max_param_header_depth, or beyond max_param_headers declarations, is not read.
inline constexpr std::size_t max_param_header_depth = 16;
inline constexpr std::size_t max_param_headers = 64;
std::vector<ParamHeader> param_headers_of(const Json& input_schema);

// Finds a request header by name (without regard to case); nullopt when absent.
using HeaderLookup = std::function<std::optional<std::string_view>(std::string_view name)>;

// nullopt when every declared argument that `arguments` carries (not null) is repeated by its
// header: literally, or as `=?base64?<canonical Base64 of UTF-8>?=`, numbers compared as numbers.
// Otherwise what differs, for the -32020 answer: {"header": …, "body": …}.
std::optional<Json> param_header_mismatch(const std::vector<ParamHeader>& declared,
                                          const Json& arguments, const HeaderLookup& header);

}  // namespace membrane::mcp
