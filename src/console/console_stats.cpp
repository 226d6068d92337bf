#include "console/console_stats.hpp"

#include <algorithm>

#include "membrane/core/json.hpp"

namespace membrane::console {
namespace {

constexpr std::size_t minute_length = 16;  // "YYYY-MM-DDTHH:MM"
// Per upstream: enough for stable percentiles; past it, every other sample is kept.
constexpr std::size_t max_latency_samples = 200'000;

std::int64_t percentile(std::vector<std::int64_t> samples, double share) {
  if (samples.empty()) return 0;
  const auto rank = static_cast<std::size_t>(share * static_cast<double>(samples.size() - 1) + 0.5);
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(rank),
                   samples.end());
  return samples[rank];
}

}  // namespace

CallStats::CallStats(std::chrono::system_clock::time_point to, int minutes) : minutes_(minutes) {
  const auto end = std::chrono::floor<std::chrono::minutes>(to) + std::chrono::minutes(1);
  const auto start = end - std::chrono::minutes(minutes_);
  from_ = audit::utc_time(start).substr(0, minute_length);
  to_ = audit::utc_time(end).substr(0, minute_length);
  buckets_.reserve(static_cast<std::size_t>(minutes_));
  for (auto at = start; at < end; at += std::chrono::minutes(1))
    buckets_.push_back(audit::utc_time(at).substr(0, minute_length));
}

int CallStats::bucket_of(std::string_view time) const {
  if (time.size() < minute_length) return -1;
  const std::string_view minute = time.substr(0, minute_length);
  const auto at = std::lower_bound(buckets_.begin(), buckets_.end(), minute,
                                   [](const std::string& a, std::string_view b) { return a < b; });
  if (at == buckets_.end() || *at != minute) return -1;
  return static_cast<int>(at - buckets_.begin());
}

void CallStats::add(const audit::Json& record) {
  if (!record.is_object() || record.contains("type")) return;
  // Calls only: a session's initialize or tools/list is no decision, and its latency (a stdio
  // server starting) would drown the calls'.
  const std::string_view method = json::string_member(record, "method");
  if (method != "tools/call" && method != "resources/read" && method != "prompts/get") return;
  const int bucket = bucket_of(json::string_member(record, "time"));
  if (bucket < 0) return;
  const auto count = [&](std::map<std::string, std::vector<std::uint64_t>>& series,
                         const std::string& name) {
    auto& counts = series[name];
    if (counts.empty()) counts.assign(buckets_.size(), 0);
    ++counts[static_cast<std::size_t>(bucket)];
  };
  std::string verdict(json::string_member(record, "verdict"));
  if (verdict.empty()) verdict = "none";
  count(by_verdict_, verdict);
  const std::string upstream(json::string_member(record, "server"));
  count(by_upstream_, upstream.empty() ? "(none)" : upstream);
  if (verdict == "deny") {
    const auto rules = record.find("rules");
    if (rules != record.end() && rules->is_array() && !rules->empty() && rules->front().is_string())
      ++denied_rules_[rules->front().get<std::string>()];
  }
  const auto latency = record.find("latency_us");
  if (latency != record.end() && latency->is_number_integer()) {
    auto& samples = latency_[upstream.empty() ? "(none)" : upstream];
    if (samples.size() >= max_latency_samples) {
      // Thin out evenly rather than keep only the newest.
      for (std::size_t i = 0; i < samples.size() / 2; ++i)
        samples[i] = samples[i * 2];
      samples.resize(samples.size() / 2);
    }
    samples.push_back(latency->get<std::int64_t>());
  }
}

audit::Json CallStats::result() const {
  audit::Json out = {{"minutes", minutes_},
                     {"from", from_},
                     {"to", to_},
                     {"buckets", buckets_},
                     {"by_verdict", audit::Json::object()},
                     {"by_upstream", audit::Json::object()}};
  for (const char* verdict : {"allow", "deny", "ask", "redact", "none"}) {
    const auto found = by_verdict_.find(verdict);
    out["by_verdict"][verdict] = found != by_verdict_.end()
                                     ? audit::Json(found->second)
                                     : audit::Json(std::vector<std::uint64_t>(buckets_.size(), 0));
  }
  for (const auto& [upstream, counts] : by_upstream_)
    out["by_upstream"][upstream] = counts;
  std::vector<std::pair<std::string, std::uint64_t>> denied(denied_rules_.begin(),
                                                            denied_rules_.end());
  std::sort(denied.begin(), denied.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  if (denied.size() > 10) denied.resize(10);
  out["top_denied_rules"] = audit::Json::array();
  for (const auto& [rule, count] : denied)
    out["top_denied_rules"].push_back({{"rule", rule}, {"count", count}});
  out["latency"] = audit::Json::array();
  for (const auto& [upstream, samples] : latency_) {
    std::uint64_t calls = 0;
    if (const auto counts = by_upstream_.find(upstream); counts != by_upstream_.end()) {
      for (const auto count : counts->second)
        calls += count;
    }
    out["latency"].push_back({{"upstream", upstream},
                              {"calls", calls},
                              {"p50_us", percentile(samples, 0.50)},
                              {"p99_us", percentile(samples, 0.99)}});
  }
  return out;
}

}  // namespace membrane::console
