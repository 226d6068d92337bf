#include "http/overload.hpp"

#include "membrane/core/log.hpp"

namespace membrane::http {

std::string_view limit_name(OverloadLimit limit) {
  switch (limit) {
    case OverloadLimit::connections:
      return "connections";
    case OverloadLimit::streams:
      return "streams";
    case OverloadLimit::sessions:
      return "sessions";
    case OverloadLimit::sessions_per_caller:
      return "sessions_per_caller";
    case OverloadLimit::buffered_bytes:
      return "buffered_bytes";
    case OverloadLimit::processes:
      return "processes";
    case OverloadLimit::processes_per_caller:
      return "processes_per_caller";
  }
  return "unknown";
}

std::string_view limit_key(OverloadLimit limit) {
  switch (limit) {
    case OverloadLimit::connections:
      return "limits.max_connections";
    case OverloadLimit::streams:
      return "limits.max_streams";
    case OverloadLimit::sessions:
      return "limits.max_sessions";
    case OverloadLimit::sessions_per_caller:
      return "limits.max_sessions_per_caller";
    case OverloadLimit::buffered_bytes:
      return "limits.max_buffered_bytes";
    case OverloadLimit::processes:
      return "upstreams.<name>.max_processes";
    case OverloadLimit::processes_per_caller:
      return "upstreams.<name>.max_processes_per_caller";
  }
  return "limits";
}

void OverloadStats::refused(OverloadLimit limit, std::string_view what) {
  auto& entry = limits_[static_cast<std::size_t>(limit)];
  const auto count = entry.count.fetch_add(1, std::memory_order_relaxed) + 1;
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto last = entry.last_log.load(std::memory_order_relaxed);
  if (last != 0 && now - last < log_interval_.count()) return;
  // One thread wins the interval; the others stay quiet.
  if (!entry.last_log.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  const auto previous = entry.count_at_last_log.exchange(count, std::memory_order_relaxed);
  const auto unlogged = count - previous - 1;
  std::string line = "overload: ";
  line += what;
  line += " (";
  line += limit_key(limit);
  line += ")";
  if (unlogged > 0) {
    line +=
        "; " + std::to_string(unlogged) + " more refusal(s) of this kind since the last message";
  }
  log::warn(line);
}

std::uint64_t OverloadStats::refusals(OverloadLimit limit) const {
  return limits_[static_cast<std::size_t>(limit)].count.load(std::memory_order_relaxed);
}

BufferBudget& BufferBudget::process() {
  // The defaults of limits.max_stream_buffer and limits.max_buffered_bytes; serve() sets the
  // configured values before the listener starts.
  static BufferBudget budget(1024 * 1024, 256 * 1024 * 1024);
  return budget;
}

}  // namespace membrane::http
