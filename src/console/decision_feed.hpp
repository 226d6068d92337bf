// The console's live feed: the audit lines this replica wrote most recently, kept in a bounded
// ring that each open feed reads from its own position. The audit writer publishes; readers poll,
// so a slow reader never holds the writer back: it only misses lines that fell off the ring.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace membrane::console {

class DecisionFeed {
 public:
  explicit DecisionFeed(std::size_t capacity = 4096) : capacity_(capacity) {}

  // The lines of one write (each ending in a newline). Checkpoints are left out: they are no
  // decision.
  void publish(std::string_view lines);

  struct Batch {
    std::vector<std::string> lines;
    std::uint64_t next = 0;    // the position to read from next time
    std::uint64_t missed = 0;  // lines that fell off the ring before this reader got to them
  };
  // Up to `max` lines from `position` on.
  Batch read(std::uint64_t position, std::size_t max) const;
  // The position of the next line to be published: a new reader starts here.
  std::uint64_t head() const;

 private:
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<std::string> lines_;
  std::uint64_t first_ = 0;  // position of lines_.front()
};

}  // namespace membrane::console
