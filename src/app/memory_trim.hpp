// Gives memory back to the system after a burst of connections closes. glibc keeps what is freed
// in its arenas for reuse, so a gateway that once held 10,000 streams would keep their memory as
// RSS long after they closed; an operator reading RSS would see the peak forever. A thread of its
// own looks at the open connections every interval and, when they fell well below the highest
// count seen since its last trim, asks glibc to return its free pages (malloc_trim), off the
// event loops.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>

namespace membrane::app {

class MemoryTrimmer {
 public:
  MemoryTrimmer(std::function<std::size_t()> open_connections, std::chrono::milliseconds interval);
  ~MemoryTrimmer();
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  // Whether a fall from `peak` to `now` open connections is worth a trim.
  static bool worth_trimming(std::size_t peak, std::size_t now);

 private:
  void run();

  const std::function<std::size_t()> open_connections_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace membrane::app
