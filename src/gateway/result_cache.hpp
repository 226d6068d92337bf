// The shared cache of 2026-07-28 results (SEP-2549): a complete result of server/discover, a list
// method or resources/read that its server marked with `ttlMs` is kept that long. `public` results
// are shared by every caller; `private` ones only within one authorization context (the same
// authenticated subject), and never when the caller is anonymous. Results of retried requests
// (`inputResponses`) are never cached. A list_changed notification drops the lists it names.
// Policy filtering happens after the cache, per caller: the cache holds what the upstream said.
#pragma once

#include <chrono>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::gateway {

class ResultCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ResultCache(std::size_t capacity = 10'000) : capacity_(capacity) {}

  // The cache key of a request, or "" when it must not be looked up or stored (not a cacheable
  // method, a retry with inputResponses).
  static std::string request_key(std::string_view upstream, const mcp::Message& request);

  // A fresh result for `key` visible to `subject` ("" = anonymous), with ttlMs lowered to what is
  // left of its lifetime.
  std::optional<mcp::Json> find(const std::string& key, std::string_view subject) const;
  // Keeps `result` when it is complete and marked cacheable; returns whether it was kept.
  bool store(const std::string& key, std::string_view subject, const mcp::Json& result);
  // Drops every entry of `upstream` for `method`.
  void invalidate(std::string_view upstream, std::string_view method);
  std::size_t size() const;

 private:
  struct Entry {
    mcp::Json result;
    Clock::time_point stored;
    Clock::time_point expires;
    std::string upstream;
    std::string method;
    std::list<std::string>::iterator age;
  };
  static std::string scoped(const std::string& key, std::string_view scope);

  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> oldest_first_;
};

}  // namespace membrane::gateway
