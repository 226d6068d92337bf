// Overload protection shared by the listener and the gateway: what each limit refused (counted
// for /metrics, logged at most once per interval per limit), and the byte budget of upstream
// events queued for clients that read slower than their upstreams write (each stream's share:
// http/stream_buffer.hpp).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace membrane::http {

enum class OverloadLimit : std::size_t {
  connections,           // limits.max_connections
  streams,               // limits.max_streams
  sessions,              // limits.max_sessions
  sessions_per_caller,   // limits.max_sessions_per_caller
  buffered_bytes,        // limits.max_buffered_bytes
  processes,             // upstreams.<stdio>.max_processes
  processes_per_caller,  // upstreams.<stdio>.max_processes_per_caller
};
inline constexpr std::size_t overload_limit_count = 7;
inline constexpr std::array<OverloadLimit, overload_limit_count> all_overload_limits{
    OverloadLimit::connections,         OverloadLimit::streams,        OverloadLimit::sessions,
    OverloadLimit::sessions_per_caller, OverloadLimit::buffered_bytes, OverloadLimit::processes,
    OverloadLimit::processes_per_caller};
// The limits a single caller reaches on its own: answered 429 rather than 503.
inline constexpr bool is_per_caller(OverloadLimit limit) {
  return limit == OverloadLimit::sessions_per_caller ||
         limit == OverloadLimit::processes_per_caller;
}

// The `limit` label of membrane_overload_rejections_total and `error.data.limit`.
std::string_view limit_name(OverloadLimit limit);
// The config key that sets it, for messages that tell the operator what to raise.
std::string_view limit_key(OverloadLimit limit);

class OverloadStats {
 public:
  explicit OverloadStats(std::chrono::milliseconds log_interval = std::chrono::seconds(10))
      : log_interval_(log_interval) {}

  // Counts one refusal and logs `what` (a warning), unless this limit was logged less than the
  // log interval ago: a flood of refusals costs one line per interval, and the next line says how
  // many went unlogged.
  void refused(OverloadLimit limit, std::string_view what);
  std::uint64_t refusals(OverloadLimit limit) const;

 private:
  struct PerLimit {
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> count_at_last_log{0};
    std::atomic<std::int64_t> last_log{0};  // steady clock, ns; 0 = never
  };
  std::chrono::nanoseconds log_interval_;
  std::array<PerLimit, overload_limit_count> limits_;
};

// The events queued for all clients together. A stream charges each event it reads from its
// upstream before queueing it and releases it once written: a client that reads slower than its
// upstream writes pauses that upstream (TCP back-pressure, or a stdio server's pipe) instead of
// growing the gateway's memory.
class BufferBudget {
 public:
  BufferBudget(std::size_t per_stream, std::size_t total)
      : per_stream_(per_stream), total_(total) {}

  // The budget every stream uses (limits.max_stream_buffer, limits.max_buffered_bytes).
  static BufferBudget& process();
  // Start-up only, before any stream exists.
  void configure(std::size_t per_stream, std::size_t total) {
    per_stream_ = per_stream;
    total_ = total;
  }

  std::size_t per_stream() const { return per_stream_; }
  std::size_t total() const { return total_; }
  std::size_t used() const { return used_.load(std::memory_order_relaxed); }
  // A new stream is admitted only while one stream's budget is still free.
  bool room_for_new_stream() const { return used() + per_stream_ <= total_; }

  void add(std::size_t bytes) { used_.fetch_add(bytes, std::memory_order_relaxed); }
  void remove(std::size_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  std::size_t per_stream_;
  std::size_t total_;
  std::atomic<std::size_t> used_{0};
};

}  // namespace membrane::http
