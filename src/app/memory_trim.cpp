#include "app/memory_trim.hpp"

#include <malloc.h>

#include <algorithm>

#include "membrane/core/background_priority.hpp"

namespace membrane::app {

MemoryTrimmer::MemoryTrimmer(std::function<std::size_t()> open_connections,
                             std::chrono::milliseconds interval)
    : open_connections_(std::move(open_connections)), interval_(interval) {
  thread_ = std::thread([this] {
    core::run_as_background_thread();
    run();
  });
}

MemoryTrimmer::~MemoryTrimmer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool MemoryTrimmer::worth_trimming(std::size_t peak, std::size_t now) {
  // At least a few hundred connections' worth (a few MiB), and a quarter of the peak: a gateway
  // whose load only wavers keeps its arenas warm.
  return peak >= now + 256 && now <= peak - peak / 4;
}

void MemoryTrimmer::run() {
  std::size_t peak = 0;
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    const std::size_t now = open_connections_();
    peak = std::max(peak, now);
    if (!worth_trimming(peak, now)) continue;
    lock.unlock();
    ::malloc_trim(0);
    lock.lock();
    peak = now;
  }
}

}  // namespace membrane::app
