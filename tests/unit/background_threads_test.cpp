#include <catch2/catch.hpp>

#include <sched.h>

#include <thread>

#include "http/background.hpp"
#include "membrane/core/background_priority.hpp"

using namespace membrane;

TEST_CASE("a background thread runs under SCHED_BATCH; the thread that started it does not") {
  int policy = -1;
  std::thread([&policy] {
    core::run_as_background_thread();
    policy = sched_getscheduler(0);
  }).join();
  CHECK(policy == SCHED_BATCH);
  CHECK(sched_getscheduler(0) == SCHED_OTHER);
}

TEST_CASE("BackgroundThreads runs the work off the awaiting loop, under SCHED_BATCH") {
  http::BackgroundThreads threads(2);
  asio::io_context loop;
  std::optional<std::optional<std::pair<int, bool>>> result;
  asio::co_spawn(
      loop,
      [&]() -> awaitable<void> {
        const auto caller = std::this_thread::get_id();
        result = co_await threads.run([caller] {
          return std::pair{sched_getscheduler(0), std::this_thread::get_id() != caller};
        });
      },
      asio::detached);
  loop.run();
  REQUIRE(result);
  REQUIRE(*result);
  CHECK((*result)->first == SCHED_BATCH);
  CHECK((*result)->second);
}

TEST_CASE("BackgroundThreads hands an exception back as an empty result") {
  http::BackgroundThreads threads(1);
  asio::io_context loop;
  bool empty = false;
  asio::co_spawn(
      loop,
      [&]() -> awaitable<void> {
        const auto outcome = co_await threads.run([]() -> int { throw std::runtime_error("no"); });
        empty = !outcome.has_value();
      },
      asio::detached);
  loop.run();
  CHECK(empty);
}
