#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "app/memory_trim.hpp"

using membrane::app::MemoryTrimmer;

TEST_CASE("memory is given back only after the open connections fell well below their peak") {
  CHECK_FALSE(MemoryTrimmer::worth_trimming(0, 0));
  CHECK_FALSE(MemoryTrimmer::worth_trimming(100, 0));       // too few to matter
  CHECK_FALSE(MemoryTrimmer::worth_trimming(10000, 9000));  // load wavering
  CHECK(MemoryTrimmer::worth_trimming(10000, 7000));
  CHECK(MemoryTrimmer::worth_trimming(300, 0));
  CHECK_FALSE(MemoryTrimmer::worth_trimming(300, 100));
}

TEST_CASE("the trimmer looks at the connections on its own thread and stops at once") {
  std::atomic<int> looked{0};
  const auto started = std::chrono::steady_clock::now();
  {
    MemoryTrimmer trimmer([&looked]() -> std::size_t { return ++looked == 1 ? 5000 : 0; },
                          std::chrono::milliseconds(5));
    while (looked < 3)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
}
