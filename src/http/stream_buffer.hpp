// One stream's share of the buffered-event budget (http/overload.hpp): what waits between the
// task that reads an upstream and the one that writes to the client.
#pragma once

#include <boost/asio/experimental/concurrent_channel.hpp>

#include <atomic>
#include <cstddef>

#include "http/asio.hpp"
#include "http/overload.hpp"

namespace membrane::http {

// What an event costs a stream's budget: its bytes plus the bookkeeping around them, so that a
// flood of empty events is bounded too.
inline constexpr std::size_t queued_event_overhead = 64;

// One stream's share of the budget. The producer (the task that reads the upstream) charges, the
// consumer (the writer to the client) releases; they may run on different threads.
class StreamBuffer {
 public:
  StreamBuffer(asio::any_io_executor executor, BufferBudget& budget = BufferBudget::process());
  ~StreamBuffer();
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;

  // Waits until `bytes` fit in this stream's budget and in the total, then charges them. A stream
  // with nothing queued may always queue one event, whatever its size (the largest message is
  // limits.max_upstream_message), so a stream never waits for others. False once closed.
  awaitable<bool> charge(std::size_t bytes);
  // The same without waiting: false when the bytes do not fit now (or closed).
  bool try_charge(std::size_t bytes);
  void release(std::size_t bytes);
  // Wakes a waiting charge(), which then returns false; later charges fail at once.
  void close();

  std::size_t queued() const { return queued_.load(std::memory_order_relaxed); }
  // How many events could be queued at most: the capacity a channel in front of it needs.
  std::size_t max_events() const { return budget_.per_stream() / queued_event_overhead + 2; }

 private:
  bool fits(std::size_t queued, std::size_t bytes) const;

  BufferBudget& budget_;
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> closed_{false};
  // A token per release: wakes a producer waiting for room (capacity 1, extra tokens dropped).
  asio::experimental::concurrent_channel<void(error_code)> room_;
};

}  // namespace membrane::http
