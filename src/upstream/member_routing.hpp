// An upstream that publishes several others as one (a virtual server) says where each message it
// is given goes, so that what judges and records a call (policy, transaction tokens, spans, audit)
// names the real upstream and the name the item has there, not only the published ones. Kept free
// of Asio: the exchange carries it to every filter.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::upstream {

// A member upstream and an item's own name there.
struct MemberTarget {
  std::string upstream;
  std::string name;
};

class MemberRouting {
 public:
  virtual ~MemberRouting() = default;
  // The virtual server's own name (the one in /mcp/<name>).
  virtual const std::string& published_name() const = 0;
  // The member a message acts on, and the message's tool / prompt name (or resource URI) there;
  // nullopt for a message the virtual server answers or sends to every member (initialize,
  // listings, notifications), or one no member publishes.
  virtual std::optional<MemberTarget> route(const mcp::Message& message) const = 0;
  // For listings: the member and own name behind a published tool name.
  virtual std::optional<MemberTarget> tool_owner(std::string_view published) const = 0;
};

}  // namespace membrane::upstream
