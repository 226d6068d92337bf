// Work that must not run on an event loop (a signature, a hash over much data) goes to a thread of
// its own; the coroutine that asked awaits the result and resumes on its own executor, so the
// loop serves other connections meanwhile.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "http/asio.hpp"

namespace membrane::http {

class BackgroundThreads {
 public:
  explicit BackgroundThreads(std::size_t threads = 1) : pool_(threads) {}
  ~BackgroundThreads() { pool_.join(); }
  BackgroundThreads(const BackgroundThreads&) = delete;
  BackgroundThreads& operator=(const BackgroundThreads&) = delete;

  // Runs `work` on a background thread. An exception it throws comes back as an empty optional:
  // the hot path handles failures as values.
  template <class Work>
  awaitable<std::optional<std::invoke_result_t<Work>>> run(Work work) {
    using Result = std::optional<std::invoke_result_t<Work>>;
    return asio::async_initiate<const asio::use_awaitable_t<>, void(Result)>(
        [this](auto handler, Work work) {
          auto home = asio::get_associated_executor(handler);
          auto guard = asio::make_work_guard(home);
          asio::post(pool_, [handler = std::move(handler), guard = std::move(guard),
                             work = std::move(work)]() mutable {
            Result result;
            try {
              result.emplace(work());
            } catch (const std::exception&) {
              result.reset();
            }
            auto executor = guard.get_executor();
            asio::post(executor, [handler = std::move(handler), result = std::move(result)]() mutable {
              std::move(handler)(std::move(result));
            });
          });
        },
        asio::use_awaitable, std::move(work));
  }

 private:
  asio::thread_pool pool_;
};

}  // namespace membrane::http
