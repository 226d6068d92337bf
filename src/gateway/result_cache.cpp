#include "gateway/result_cache.hpp"

#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {

std::string ResultCache::request_key(std::string_view upstream, const mcp::Message& request) {
  if (!request.is_request() || !mcp::is_cacheable_method(request.method())) return {};
  mcp::Json params = mcp::Json::object();
  if (const auto* given = request.params(); given && given->is_object()) {
    if (given->contains("inputResponses") || given->contains("requestState")) return {};
    params = *given;
    // The envelope and trace context describe the caller, not what is asked.
    params.erase("_meta");
  }
  std::string key(upstream);
  key.push_back('\n');
  key.append(request.method());
  key.push_back('\n');
  key += params.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  return key;
}

std::string ResultCache::scoped(const std::string& key, std::string_view scope) {
  std::string out = key;
  out.push_back('\n');
  out.append(scope);
  return out;
}

std::optional<mcp::Json> ResultCache::find(const std::string& key, std::string_view subject) const {
  if (key.empty()) return std::nullopt;
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  for (const std::string_view scope : {std::string_view("public"), subject}) {
    if (scope.empty()) continue;
    const auto it =
        entries_.find(scoped(key, scope == "public" ? "public" : "sub:" + std::string(scope)));
    if (it == entries_.end() || it->second.expires <= now) continue;
    mcp::Json result = it->second.result;
    result["ttlMs"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(it->second.expires - now).count();
    return result;
  }
  return std::nullopt;
}

bool ResultCache::store(const std::string& key, std::string_view subject, const mcp::Json& result) {
  if (key.empty() || !result.is_object() || mcp::is_input_required(result)) return false;
  const auto ttl = result.find("ttlMs");
  const auto scope = result.find("cacheScope");
  if (ttl == result.end() || !ttl->is_number_integer() || ttl->get<std::int64_t>() <= 0 ||
      scope == result.end() || !scope->is_string())
    return false;
  std::string scope_key;
  if (*scope == "public") {
    scope_key = "public";
  } else if (*scope == "private" && !subject.empty()) {
    scope_key = "sub:" + std::string(subject);
  } else {
    return false;
  }
  const auto newline = key.find('\n');
  const auto second = key.find('\n', newline + 1);
  const auto now = Clock::now();
  const std::string full = scoped(key, scope_key);
  std::lock_guard lock(mutex_);
  if (const auto it = entries_.find(full); it != entries_.end()) {
    oldest_first_.erase(it->second.age);
    entries_.erase(it);
  }
  while (entries_.size() >= capacity_ && !oldest_first_.empty()) {
    entries_.erase(oldest_first_.front());
    oldest_first_.pop_front();
  }
  oldest_first_.push_back(full);
  Entry entry{result,
              now,
              now + std::chrono::milliseconds(ttl->get<std::int64_t>()),
              key.substr(0, newline),
              key.substr(newline + 1, second - newline - 1),
              std::prev(oldest_first_.end())};
  entries_.emplace(full, std::move(entry));
  return true;
}

void ResultCache::invalidate(std::string_view upstream, std::string_view method) {
  std::lock_guard lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.upstream == upstream && it->second.method == method) {
      oldest_first_.erase(it->second.age);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t ResultCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace membrane::gateway
