// The `x-mcp-header` declarations of each upstream's tools (SEP-2243), learnt from the tools/list
// results the gateway relays, so that it can check a tools/call's Mcp-Param-* headers for an
// upstream that cannot see headers (stdio). Bounded: tools with declarations only, at most
// max_tools per upstream.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "membrane/mcp/param_headers.hpp"

namespace membrane::gateway {

class ToolParamHeaders {
 public:
  static constexpr std::size_t max_tools = 4096;

  // A tools/list result (one page): each tool listed is learnt again.
  void learn(const std::string& upstream, const mcp::Json& list_result) {
    const auto tools = list_result.find("tools");
    if (tools == list_result.end() || !tools->is_array()) return;
    std::lock_guard lock(mutex_);
    auto& known = tools_[upstream];
    for (const auto& tool : *tools) {
      if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) continue;
      const std::string name = tool["name"].get<std::string>();
      const auto schema = tool.find("inputSchema");
      auto declared =
          schema == tool.end() ? std::vector<mcp::ParamHeader>() : mcp::param_headers_of(*schema);
      if (declared.empty()) {
        known.erase(name);
      } else if (known.contains(name) || known.size() < max_tools) {
        known[name] = std::move(declared);
      }
    }
  }

  // What `tool` of `upstream` declares; empty when nothing (or the tool was not seen listed).
  std::vector<mcp::ParamHeader> find(const std::string& upstream, const std::string& tool) const {
    std::lock_guard lock(mutex_);
    const auto known = tools_.find(upstream);
    if (known == tools_.end()) return {};
    const auto declared = known->second.find(tool);
    return declared == known->second.end() ? std::vector<mcp::ParamHeader>() : declared->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::string, std::vector<mcp::ParamHeader>>> tools_;
};

}  // namespace membrane::gateway
