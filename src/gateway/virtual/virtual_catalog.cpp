#include "gateway/virtual/virtual_catalog.hpp"

#include <algorithm>

#include "membrane/core/glob.hpp"
#include "membrane/core/json.hpp"
#include "membrane/mcp/sealed_session.hpp"

namespace membrane::gateway {

namespace {

// A tagged server-request id: "via:<upstream>:<the member's id as JSON>". Upstream names never
// hold ':', so the first ':' after the marker ends the name. (Not "membrane-…": those are the
// gateway's own questions, answered to the gateway itself.)
constexpr std::string_view kIdMarker = "via:";
// A cursor names at most this many members, each cursor at most this long: what a client sends
// back is bounded before it is decoded.
constexpr std::size_t kMaxCursorText = 64 * 1024;

bool any_glob(const std::vector<std::string>& globs, std::string_view name) {
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& glob) { return core::glob_match(glob, name); });
}

}  // namespace

// Tags read of one item, and tagged items remembered per catalogue, at most.
constexpr std::size_t kMaxTags = 64;
constexpr std::size_t kMaxTaggedItems = 100'000;

bool Selection::selects(std::string_view name) const {
  if (!everything && !any_glob(include, name)) return false;
  return !excludes(name);
}

bool Selection::excludes(std::string_view name) const {
  return any_glob(exclude, name);
}

std::vector<std::string> tags_of(const mcp::Json& item) {
  std::vector<std::string> tags;
  const auto take = [&tags](const mcp::Json& holder) {
    if (!holder.is_object()) return;
    const auto found = holder.find("tags");
    if (found == holder.end() || !found->is_array()) return;
    for (const auto& tag : *found) {
      if (tags.size() >= kMaxTags) return;
      if (tag.is_string()) tags.push_back(tag.get<std::string>());
    }
  };
  if (!item.is_object()) return tags;
  if (const auto meta = item.find("_meta"); meta != item.end() && meta->is_object()) {
    take(*meta);
    for (const auto& [key, value] : meta->items()) {
      (void)key;
      take(value);
    }
  }
  if (const auto annotations = item.find("annotations"); annotations != item.end())
    take(*annotations);
  return tags;
}

VirtualCatalog::VirtualCatalog(std::string name, std::string separator, std::string instructions,
                               std::vector<VirtualMember> members)
    : name_(std::move(name)),
      separator_(std::move(separator)),
      instructions_(std::move(instructions)),
      members_(std::move(members)) {
  for (std::size_t index = 0; index < members_.size(); ++index) {
    for (const auto& [own, published] : members_[index].renames)
      renamed_.emplace(published, PublishedOwner{index, own});
  }
}

std::optional<std::size_t> VirtualCatalog::member_index(std::string_view upstream) const {
  for (std::size_t index = 0; index < members_.size(); ++index) {
    if (members_[index].upstream == upstream) return index;
  }
  return std::nullopt;
}

std::optional<PublishedOwner> VirtualCatalog::owner_of(ItemKind kind,
                                                       std::string_view published) const {
  if (kind == ItemKind::tool) {
    if (const auto renamed = renamed_.find(published); renamed != renamed_.end()) {
      if (!selected(ItemKind::tool, renamed->second.member, renamed->second.name))
        return std::nullopt;
      return renamed->second;
    }
  }
  std::optional<std::size_t> unprefixed;
  for (std::size_t index = 0; index < members_.size(); ++index) {
    const auto& member = members_[index];
    if (member.prefix.empty()) {
      unprefixed = index;
      continue;
    }
    // A name that starts with a member's prefix is that member's, or nobody's.
    if (published.size() < member.prefix.size() + separator_.size() ||
        !published.starts_with(member.prefix) ||
        published.substr(member.prefix.size(), separator_.size()) != separator_)
      continue;
    std::string own(published.substr(member.prefix.size() + separator_.size()));
    if (own.empty()) return std::nullopt;
    // A renamed tool answers only to its new name.
    if (kind == ItemKind::tool && member.renames.contains(own)) return std::nullopt;
    if (!selected(kind, index, own)) return std::nullopt;
    return PublishedOwner{index, std::move(own)};
  }
  if (!unprefixed) return std::nullopt;
  const auto& member = members_[*unprefixed];
  std::string own(published);
  if (kind == ItemKind::tool && member.renames.contains(own)) return std::nullopt;
  if (!selected(kind, *unprefixed, own)) return std::nullopt;
  return PublishedOwner{*unprefixed, std::move(own)};
}

std::optional<std::string> VirtualCatalog::published_name(ItemKind kind, std::size_t member_index,
                                                          std::string_view own) const {
  if (member_index >= members_.size()) return std::nullopt;
  const auto& member = members_[member_index];
  std::string published;
  if (kind == ItemKind::tool) {
    if (!selected(kind, member_index, own)) return std::nullopt;
    if (const auto renamed = member.renames.find(std::string(own)); renamed != member.renames.end())
      published = renamed->second;
  } else if (!selected(kind, member_index, own)) {
    return std::nullopt;
  }
  if (published.empty()) {
    published =
        member.prefix.empty() ? std::string(own) : member.prefix + separator_ + std::string(own);
  }
  // The name must lead back here: an unprefixed item whose name another member claims (its
  // prefix, or a rename) is not published, since calling it would reach that member.
  const auto owner = owner_of(kind, published);
  if (!owner || owner->member != member_index || owner->name != own) return std::nullopt;
  return published;
}

namespace {

std::string tagged_key(ItemKind kind, std::size_t member, std::string_view own) {
  std::string key = kind == ItemKind::tool ? "t" : "p";
  key += std::to_string(member);
  key.push_back('\n');
  key.append(own);
  return key;
}

}  // namespace

bool VirtualCatalog::selected(ItemKind kind, std::size_t member, std::string_view own) const {
  const auto& selection =
      kind == ItemKind::tool ? members_[member].tools : members_[member].prompts;
  if (selection.selects(own)) return true;
  if (selection.tags.empty() || selection.excludes(own)) return false;
  std::lock_guard lock(tagged_mutex_);
  return tagged_.contains(tagged_key(kind, member, own));
}

void VirtualCatalog::learn_tagged(ItemKind kind, std::size_t member, std::string_view own) const {
  std::lock_guard lock(tagged_mutex_);
  if (tagged_.size() < kMaxTaggedItems) tagged_.insert(tagged_key(kind, member, own));
}

bool VirtualCatalog::publishes_resource(std::size_t member, std::string_view uri) const {
  return member < members_.size() && members_[member].resources.selects(uri);
}

bool VirtualCatalog::publish(ItemKind kind, std::size_t member_index, mcp::Json& item) const {
  if (!item.is_object()) return false;
  const auto name = item.find("name");
  if (name == item.end() || !name->is_string()) return false;
  const std::string own = name->get<std::string>();
  if (member_index >= members_.size()) return false;
  const auto& selection =
      kind == ItemKind::tool ? members_[member_index].tools : members_[member_index].prompts;
  if (!selection.tags.empty() && !selection.selects(own) && !selection.excludes(own)) {
    const auto carried = tags_of(item);
    const bool tagged = std::any_of(carried.begin(), carried.end(), [&](const std::string& tag) {
      return std::find(selection.tags.begin(), selection.tags.end(), tag) != selection.tags.end();
    });
    if (tagged) learn_tagged(kind, member_index, own);
  }
  auto published = published_name(kind, member_index, own);
  if (!published) return false;
  *name = std::move(*published);
  if (kind != ItemKind::tool) return true;
  const auto& member = members_[member_index];
  if (const auto description = member.descriptions.find(own);
      description != member.descriptions.end())
    item["description"] = description->second;
  if (const auto annotations = member.annotations.find(own);
      annotations != member.annotations.end()) {
    auto& target = item["annotations"];
    if (!target.is_object()) target = mcp::Json::object();
    for (const auto& [key, value] : annotations->second.items())
      target[key] = value;
  }
  return true;
}

std::string VirtualCatalog::encode_cursor(const std::map<std::string, std::string>& cursors) {
  mcp::Json object = mcp::Json::object();
  for (const auto& [upstream, cursor] : cursors)
    object[upstream] = cursor;
  return mcp::base64url_encode(object.dump());
}

std::optional<std::map<std::string, std::string>> VirtualCatalog::decode_cursor(
    std::string_view cursor) const {
  if (cursor.empty() || cursor.size() > kMaxCursorText) return std::nullopt;
  const auto text = mcp::base64url_decode(cursor);
  if (!text) return std::nullopt;
  const auto parsed = json::parse(*text, 2);
  if (!parsed.ok() || !parsed.value.is_object() || parsed.value.empty()) return std::nullopt;
  std::map<std::string, std::string> cursors;
  for (const auto& [upstream, value] : parsed.value.items()) {
    if (!value.is_string() || !member_index(upstream)) return std::nullopt;
    cursors.emplace(upstream, value.get<std::string>());
  }
  return cursors;
}

mcp::Json VirtualCatalog::tag_request_id(std::string_view upstream, const mcp::Json& id) {
  std::string tagged(kIdMarker);
  tagged.append(upstream);
  tagged.push_back(':');
  tagged.append(id.dump());
  return tagged;
}

std::optional<VirtualCatalog::TaggedId> VirtualCatalog::untag_request_id(const mcp::Json& id) {
  if (!id.is_string()) return std::nullopt;
  std::string_view text = id.get_ref<const std::string&>();
  if (!text.starts_with(kIdMarker)) return std::nullopt;
  text.remove_prefix(kIdMarker.size());
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  // A JSON-RPC id is a string or a number: nothing deeper.
  auto parsed = json::parse(text.substr(colon + 1), 1);
  if (!parsed.ok() || !(parsed.value.is_string() || parsed.value.is_number())) return std::nullopt;
  return TaggedId{std::string(text.substr(0, colon)), std::move(parsed.value)};
}

}  // namespace membrane::gateway
