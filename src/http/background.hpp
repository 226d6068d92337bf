// Work that must not run on an event loop (a signature, a hash over much data) goes to a thread of
// its own; the coroutine that asked awaits the result and resumes on its own executor, so the
// loop serves other connections meanwhile.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "http/asio.hpp"

namespace membrane::http {

// Awaits something another thread reports once: `start` is given a callback (callable from any
// thread, once) and the coroutine resumes, on its own executor, with the value reported.
template <class T, class Start>
awaitable<T> await_report(Start start) {
  return asio::async_initiate<const asio::use_awaitable_t<>, void(T)>(
      [](auto handler, Start start) {
        auto home = asio::get_associated_executor(handler);
        struct Waiting {
          decltype(handler) resume;
          decltype(asio::make_work_guard(home)) guard;
        };
        auto waiting =
            std::make_shared<Waiting>(Waiting{std::move(handler), asio::make_work_guard(home)});
        start(std::function<void(T)>([waiting](T value) {
          auto executor = waiting->guard.get_executor();
          asio::post(executor, [waiting, value = std::move(value)]() mutable {
            std::move(waiting->resume)(std::move(value));
          });
        }));
      },
      asio::use_awaitable, std::move(start));
}

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
            asio::post(executor,
                       [handler = std::move(handler), result = std::move(result)]() mutable {
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
