#include "gateway/filters/policy/tool_catalog.hpp"

#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"

namespace membrane::gateway {
namespace {

std::string dump(const mcp::Json& value) {
  return value.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

mcp::Json digest_json(const mcp::ToolDigest& digest) {
  mcp::Json parts = mcp::Json::object();
  for (const auto& [part, value] : digest.parts)
    parts[part] = value;
  return {{"digest", digest.digest}, {"parts", std::move(parts)}};
}

std::optional<mcp::ToolDigest> digest_from_json(std::string_view text) {
  const auto parsed = json::parse(text);
  if (!parsed.ok() || !parsed.value.is_object()) return std::nullopt;
  const auto digest = parsed.value.find("digest");
  if (digest == parsed.value.end() || !digest->is_string()) return std::nullopt;
  mcp::ToolDigest out;
  out.digest = digest->get<std::string>();
  if (const auto parts = parsed.value.find("parts");
      parts != parsed.value.end() && parts->is_object()) {
    for (const auto& [part, value] : parts->items()) {
      if (value.is_string()) out.parts[part] = value.get<std::string>();
    }
  }
  return out;
}

}  // namespace

void ToolCatalog::share_through(std::shared_ptr<cluster::RedisClient> redis, std::string key_prefix,
                                asio::any_io_executor executor) {
  std::lock_guard lock(mutex_);
  redis_ = std::move(redis);
  key_prefix_ = std::move(key_prefix);
  executor_ = std::move(executor);
}

void ToolCatalog::replace_file_pins(mcp::ToolPins pins) {
  std::lock_guard lock(mutex_);
  file_pins_ = std::move(pins);
  // Entries are judged again at their next listing; until then calls see the old verdict.
}

ToolCatalog::Learnt ToolCatalog::learn(const std::string& upstream, const mcp::Json& tool) {
  Learnt learnt;
  const auto name = tool.is_object() ? tool.find("name") : tool.end();
  if (!tool.is_object() || name == tool.end() || !name->is_string()) return learnt;
  const std::string& tool_name = name->get_ref<const std::string&>();
  if (tool_name.size() > max_name_bytes) return learnt;
  auto entry = std::make_shared<Entry>();
  entry->digest = mcp::digest_tool(tool);
  const std::size_t size = dump(tool).size();
  bool share_first_sight = false;
  {
    std::lock_guard lock(mutex_);
    auto& known = upstreams_[upstream];
    const auto previous = known.entries.find(tool_name);
    if (previous == known.entries.end() && known.entries.size() >= max_tools) return learnt;
    // A definition too large to keep, or past the upstream's budget, is still pinned; the views
    // then read its arguments by name and shape.
    const std::size_t replaced =
        previous == known.entries.end() ? 0 : previous->second->definition_bytes;
    if (size <= max_definition_bytes &&
        known.definition_bytes - replaced + size <= max_upstream_definition_bytes) {
      entry->definition = tool;
      entry->definition_bytes = size;
    }
    known.definition_bytes = known.definition_bytes - replaced + entry->definition_bytes;
    const mcp::ToolDigest* pinned = nullptr;
    if (const auto file = file_pins_.find(upstream); file != file_pins_.end()) {
      if (const auto pin = file->second.find(tool_name); pin != file->second.end())
        pinned = &pin->second;
    }
    if (!pinned) {
      auto [seen, fresh] = known.first_seen.try_emplace(tool_name, entry->digest);
      pinned = &seen->second;
      share_first_sight = fresh && redis_ != nullptr;
    }
    entry->pinned = *pinned;
    if (entry->pinned.digest != entry->digest.digest)
      entry->changes = mcp::changed_parts(entry->pinned, entry->digest);
    if (entry->changed()) {
      if (reported_.size() > 4 * max_tools) reported_.clear();
      learnt.newly_changed =
          reported_.insert(upstream + '\x1f' + tool_name + '\x1f' + entry->digest.digest).second;
    }
    known.entries[tool_name] = entry;
  }
  if (share_first_sight)
    asio::co_spawn(executor_, share(upstream, tool_name, entry->digest), asio::detached);
  learnt.entry = std::move(entry);
  return learnt;
}

std::shared_ptr<const ToolCatalog::Entry> ToolCatalog::find(const std::string& upstream,
                                                            std::string_view tool) const {
  std::lock_guard lock(mutex_);
  const auto known = upstreams_.find(upstream);
  if (known == upstreams_.end()) return nullptr;
  const auto entry = known->second.entries.find(tool);
  return entry == known->second.entries.end() ? nullptr : entry->second;
}

awaitable<void> ToolCatalog::share(std::string upstream, std::string tool, mcp::ToolDigest digest) {
  const std::string key = key_prefix_ + "pin:" + upstream + "/" + tool;
  std::vector<std::string> store = {"SET", key, dump(digest_json(digest)), "NX"};
  const auto stored = co_await redis_->command(std::move(store));
  if (!stored.ok() || stored.reply.kind == cluster::RedisReply::Kind::error) {
    log::warn("policy: could not share the pin of tool '", tool, "' of upstream '", upstream,
              "' with the other replicas (", stored.ok() ? stored.reply.text : stored.error, ")");
    co_return;
  }
  if (stored.reply.kind != cluster::RedisReply::Kind::nil) co_return;  // ours is the pin
  // Another replica saw the tool first: its pin is everyone's.
  std::vector<std::string> read = {"GET", key};
  const auto existing = co_await redis_->command(std::move(read));
  if (!existing.ok() || existing.reply.kind != cluster::RedisReply::Kind::bulk) co_return;
  if (auto pinned = digest_from_json(existing.reply.text))
    adopt(upstream, tool, std::move(*pinned));
}

void ToolCatalog::adopt(const std::string& upstream, const std::string& tool,
                        mcp::ToolDigest pinned) {
  std::lock_guard lock(mutex_);
  auto& known = upstreams_[upstream];
  known.first_seen[tool] = pinned;
  const auto current = known.entries.find(tool);
  if (current == known.entries.end()) return;
  auto entry = std::make_shared<Entry>(*current->second);  // same definition: same bytes
  entry->pinned = std::move(pinned);
  entry->changes = entry->pinned.digest == entry->digest.digest
                       ? std::string()
                       : mcp::changed_parts(entry->pinned, entry->digest);
  if (entry->changed()) {
    log::warn("policy: tool '", tool, "' of upstream '", upstream,
              "' differs from the pin another replica took first (", entry->changes, "): pinned ",
              entry->pinned.digest, ", listed ", entry->digest.digest);
  }
  current->second = std::move(entry);
}

}  // namespace membrane::gateway
