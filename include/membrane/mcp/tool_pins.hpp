// Tool pinning (the rug-pull defence): a digest of each tool's definition as a server lists it,
// so that a later change to what the model reads (description, input schema, annotations) is
// seen. Pins come from the file an operator commits (`membrane policy pin` writes it) or are
// taken the first time a tool is seen.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::mcp {

// "sha256:<hex>" of the whole definition, and of each part a change can be reported for.
struct ToolDigest {
  std::string digest;
  std::map<std::string, std::string> parts;  // name, title, description, inputSchema, …

  bool operator==(const ToolDigest& other) const { return digest == other.digest; }
};

// The parts of a definition that are pinned: what the model reads and what it may pass.
inline constexpr const char* pinned_tool_parts[] = {"name",        "title",        "description",
                                                    "inputSchema", "outputSchema", "annotations"};

// Canonical (keys sorted, compact) JSON of each part, hashed; an absent part hashes as absent.
ToolDigest digest_tool(const Json& tool);

// "description, inputSchema": the parts whose digests differ, in pinned_tool_parts order; every
// part when the pin has none recorded (a pin written with the whole digest only).
std::string changed_parts(const ToolDigest& pinned, const ToolDigest& now);

// Upstream name -> tool name -> pin.
using ToolPins = std::map<std::string, std::map<std::string, ToolDigest>>;

class PinsFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;  // what() = "file:line:col: message"
};

// Reads a pins file:
//   upstreams:
//     fs:
//       read_file: {digest: "sha256:…", description: "sha256:…", inputSchema: "sha256:…", …}
// A missing file is an error (the operator named it); bounded in size and depth.
ToolPins read_pins_file(const std::string& path);
// Writes `pins` to `path` (through a temporary file renamed over it), sorted, with a header.
void write_pins_file(const std::string& path, const ToolPins& pins);

}  // namespace membrane::mcp
