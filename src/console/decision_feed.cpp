#include "console/decision_feed.hpp"

#include <algorithm>

namespace membrane::console {

void DecisionFeed::publish(std::string_view lines) {
  constexpr std::string_view checkpoint = "\"type\":\"checkpoint\"";
  std::lock_guard lock(mutex_);
  while (!lines.empty()) {
    const auto newline = lines.find('\n');
    const std::string_view line = lines.substr(0, newline);
    lines = newline == std::string_view::npos ? std::string_view() : lines.substr(newline + 1);
    if (line.empty() || line.find(checkpoint) != std::string_view::npos) continue;
    lines_.emplace_back(line);
    if (lines_.size() > capacity_) {
      lines_.pop_front();
      ++first_;
    }
  }
}

DecisionFeed::Batch DecisionFeed::read(std::uint64_t position, std::size_t max) const {
  Batch batch;
  std::lock_guard lock(mutex_);
  if (position < first_) {
    batch.missed = first_ - position;
    position = first_;
  }
  const std::uint64_t end = first_ + lines_.size();
  const std::uint64_t until = std::min<std::uint64_t>(end, position + max);
  for (std::uint64_t at = position; at < until; ++at)
    batch.lines.push_back(lines_[static_cast<std::size_t>(at - first_)]);
  batch.next = std::max(position, until);
  return batch;
}

std::uint64_t DecisionFeed::head() const {
  std::lock_guard lock(mutex_);
  return first_ + lines_.size();
}

}  // namespace membrane::console
