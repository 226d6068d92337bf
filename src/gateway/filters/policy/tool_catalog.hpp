// What each upstream's tools look like, learnt from the tools/list results the policy filter
// relays: the definition a call's views read argument roles from, and its pin. A tool whose
// definition no longer matches its pin (from the operator's pins file, or taken the first time
// the tool was seen) is `tool.changed` to the policy: a rug pull. With Redis, the first-seen
// pins are shared by every replica (the first replica to see a tool pins it for all).
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "cluster/redis_client.hpp"
#include "membrane/mcp/tool_pins.hpp"

namespace membrane::gateway {

class ToolCatalog {
 public:
  static constexpr std::size_t max_tools = 4096;  // per upstream
  static constexpr std::size_t max_name_bytes = 256;
  static constexpr std::size_t max_definition_bytes = 256 * 1024;
  static constexpr std::size_t max_upstream_definition_bytes = 16 * 1024 * 1024;

  struct Entry {
    mcp::Json definition;  // as last listed (null when it was not kept: too large)
    std::size_t definition_bytes = 0;
    mcp::ToolDigest digest;
    mcp::ToolDigest pinned;
    std::string changes;  // "description, inputSchema"; empty when the pin holds
    bool changed() const { return !changes.empty(); }
  };

  struct Learnt {
    std::shared_ptr<const Entry> entry;  // null when the tool is beyond the bounds
    bool newly_changed = false;          // first listing with this changed definition
  };

  explicit ToolCatalog(mcp::ToolPins pins = {}) : file_pins_(std::move(pins)) {}

  // Shares first-seen pins through Redis (keys <prefix>pin:<upstream>/<tool>).
  void share_through(std::shared_ptr<cluster::RedisClient> redis, std::string key_prefix,
                     asio::any_io_executor executor);
  // The operator's pins changed (membrane policy pin, then a reload): they apply from now on.
  void replace_file_pins(mcp::ToolPins pins);

  // One tool as listed by `upstream`.
  Learnt learn(const std::string& upstream, const mcp::Json& tool);
  std::shared_ptr<const Entry> find(const std::string& upstream, std::string_view tool) const;

 private:
  struct Upstream {
    std::map<std::string, std::shared_ptr<const Entry>, std::less<>> entries;
    std::map<std::string, mcp::ToolDigest, std::less<>> first_seen;
    std::size_t definition_bytes = 0;  // the kept definitions together
  };
  // Pins a first-seen tool in Redis, or adopts the pin another replica set first.
  awaitable<void> share(std::string upstream, std::string tool, mcp::ToolDigest digest);
  void adopt(const std::string& upstream, const std::string& tool, mcp::ToolDigest pinned);

  mutable std::mutex mutex_;
  mcp::ToolPins file_pins_;
  std::map<std::string, Upstream, std::less<>> upstreams_;
  std::set<std::string> reported_;  // upstream \x1f tool \x1f digest, alerted once
  std::shared_ptr<cluster::RedisClient> redis_;
  std::string key_prefix_;
  asio::any_io_executor executor_;
};

}  // namespace membrane::gateway
