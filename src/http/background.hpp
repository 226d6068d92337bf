// Work that must not run on an event loop (a signature, a hash over much data) goes to a thread of
// its own; the coroutine that asked awaits the result and resumes on its own executor, so the
// loop serves other connections meanwhile.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "http/asio.hpp"
#include "membrane/core/background_priority.hpp"

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
  explicit BackgroundThreads(std::size_t threads = 1) {
    for (std::size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        core::run_as_background_thread();
        context_.run();
      });
    }
  }
  // Work already handed over is finished first.
  ~BackgroundThreads() {
    idle_guard_.reset();
    for (auto& thread : threads_)
      thread.join();
  }
  BackgroundThreads(const BackgroundThreads&) = delete;
  BackgroundThreads& operator=(const BackgroundThreads&) = delete;

  // Runs `work` on a background thread. An exception it throws comes back as an empty optional:
  // the hot path handles failures as values.
  template <class Work>
  awaitable<std::optional<std::invoke_result_t<Work>>> run(Work work) {
    using Result = std::optional<std::invoke_result_t<Work>>;
    // Captured by value: the initiation runs when the result is awaited, after run() returned.
    auto on_pool = [this, work = std::move(work)](std::function<void(Result)> done) mutable {
      asio::post(context_, [work = std::move(work), done = std::move(done)]() mutable {
        Result result;
        try {
          result.emplace(work());
        } catch (const std::exception&) {
          result.reset();
        }
        done(std::move(result));
      });
    };
    return await_report<Result>(std::move(on_pool));
  }

 private:
  asio::io_context context_;
  asio::executor_work_guard<asio::io_context::executor_type> idle_guard_ =
      asio::make_work_guard(context_);
  std::vector<std::thread> threads_;
};

}  // namespace membrane::http
