// The console's charts, computed from audit records: calls per minute by verdict and by upstream,
// the rules that denied most, and latency percentiles per upstream.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/audit/audit_log.hpp"

namespace membrane::console {

class CallStats {
 public:
  // Minutes [to - minutes, to), one bucket each.
  CallStats(std::chrono::system_clock::time_point to, int minutes);

  // The time filter a scan for these stats needs (ISO 8601 prefixes).
  const std::string& from_text() const { return from_; }
  const std::string& to_text() const { return to_; }

  // One record: calls (tools/call, resources/read, prompts/get) inside the window count.
  void add(const audit::Json& record);
  audit::Json result() const;

 private:
  int bucket_of(std::string_view time) const;

  int minutes_;
  std::string from_;
  std::string to_;
  std::vector<std::string> buckets_;  // "YYYY-MM-DDTHH:MM"
  std::map<std::string, std::vector<std::uint64_t>> by_verdict_;
  std::map<std::string, std::vector<std::uint64_t>> by_upstream_;
  std::map<std::string, std::uint64_t> denied_rules_;
  std::map<std::string, std::vector<std::int64_t>> latency_;
};

}  // namespace membrane::console
