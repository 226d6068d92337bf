// What a virtual server publishes of its members, and where each published name leads: the pure
// part of a virtual server (no I/O), shared by its routing, its merged listings and the filters
// that must see a call's real upstream and name.
//
// A published tool or prompt name leads to exactly one member: its rename, else the member whose
// prefix (plus the separator) it starts with, else the one member published without a prefix.
// The configuration refuses anything that could make two members claim one name, so routing never
// depends on what an upstream happens to list. An item that is not published (excluded, or its
// name belongs to another member) cannot be called through the virtual server either.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::gateway {

struct Selection {
  std::vector<std::string> include;  // empty with `everything` = all
  std::vector<std::string> exclude;
  // Items carrying one of these tags are published too (tools and prompts). MCP has no tags field:
  // they are read where servers put them, `_meta.tags`, `_meta.<namespace>.tags` (FastMCP's
  // `_meta._fastmcp.tags`) or `annotations.tags`.
  std::vector<std::string> tags;
  bool everything = true;  // neither an include list nor tags were given
  // By name alone: `everything`, or an include glob; never an excluded name.
  bool selects(std::string_view name) const;
  bool excludes(std::string_view name) const;
};

// The tags an item carries, as `Selection::tags` reads them (at most 64).
std::vector<std::string> tags_of(const mcp::Json& item);

struct VirtualMember {
  std::string upstream;
  std::string prefix;  // "" = names published as they are
  Selection tools;
  Selection prompts;
  Selection resources;                              // by URI
  std::map<std::string, std::string> renames;       // own tool name -> published name
  std::map<std::string, std::string> descriptions;  // own tool name -> description
  std::map<std::string, mcp::Json> annotations;     // own tool name -> members that replace its own
};

enum class ItemKind { tool, prompt };

// A published name's owner: the member (index into members()) and the item's own name there.
struct PublishedOwner {
  std::size_t member = 0;
  std::string name;
};

class VirtualCatalog {
 public:
  VirtualCatalog(std::string name, std::string separator, std::string instructions,
                 std::vector<VirtualMember> members);

  const std::string& name() const { return name_; }
  const std::string& instructions() const { return instructions_; }
  const std::vector<VirtualMember>& members() const { return members_; }
  std::optional<std::size_t> member_index(std::string_view upstream) const;

  // Where a published tool / prompt name leads; nullopt when no member publishes it.
  std::optional<PublishedOwner> owner_of(ItemKind kind, std::string_view published) const;
  // The name one member's item is published under; nullopt when it is not published.
  std::optional<std::string> published_name(ItemKind kind, std::size_t member,
                                            std::string_view own) const;
  bool publishes_resource(std::size_t member, std::string_view uri) const;

  // One member's listed tool (or prompt) rewritten as published: its name, and for tools the
  // description and annotations the operator set. False when it is not published: it is left out.
  bool publish(ItemKind kind, std::size_t member, mcp::Json& item) const;

  // A listing's cursor that carries each member's own cursor (members absent from it are done).
  // Opaque to clients: base64url of {"<upstream>": "<cursor>"}.
  static std::string encode_cursor(const std::map<std::string, std::string>& cursors);
  // nullopt when the text is not a cursor this catalogue wrote (or names no member of it).
  std::optional<std::map<std::string, std::string>> decode_cursor(std::string_view cursor) const;

  // Requests a member's server sends the client get ids that say which member asked, so that
  // the client's answer finds its way back (two members may both ask with id 0).
  static mcp::Json tag_request_id(std::string_view upstream, const mcp::Json& id);
  // The member and its own id of a tagged id; nullopt when the id was not tagged by a virtual
  // server.
  struct TaggedId {
    std::string upstream;
    mcp::Json id;
  };
  static std::optional<TaggedId> untag_request_id(const mcp::Json& id);

 private:
  // Whether a member's item is published: by its selection's name rules, or because a listing on
  // this replica showed it with one of the selection's tags. A tagged item not yet listed here is
  // not reachable: refusing it is the safe side.
  bool selected(ItemKind kind, std::size_t member, std::string_view own) const;
  void learn_tagged(ItemKind kind, std::size_t member, std::string_view own) const;

  std::string name_;
  std::string separator_;
  std::string instructions_;
  std::vector<VirtualMember> members_;
  // published name -> (member, own name), for renamed tools
  std::map<std::string, PublishedOwner, std::less<>> renamed_;
  mutable std::mutex tagged_mutex_;
  mutable std::set<std::string, std::less<>> tagged_;  // "<kind><member>\n<own name>"
};

}  // namespace membrane::gateway
