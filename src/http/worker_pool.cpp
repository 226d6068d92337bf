#include "http/worker_pool.hpp"

#include <boost/asio/executor_work_guard.hpp>

#include "membrane/core/log.hpp"
#include "membrane/core/signal_stack.hpp"

namespace membrane::http {
namespace {
thread_local std::size_t worker_index = 0;
}

WorkerPool::WorkerPool(unsigned count) {
  if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < count; ++i)
    contexts_.push_back(std::make_unique<Context>(1));
}

WorkerPool::~WorkerPool() {
  stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  shutdown();
}

asio::io_context& WorkerPool::next_context() {
  auto& context = *contexts_[next_];
  next_ = (next_ + 1) % contexts_.size();
  return context;
}

std::size_t WorkerPool::current_index() {
  return worker_index;
}

void WorkerPool::run() {
  const auto run_worker = [this](std::size_t index) {
    worker_index = index;
    signal_stack::use_on_this_thread();
    auto guard = asio::make_work_guard(*contexts_[index]);
    for (;;) {
      try {
        contexts_[index]->run();
        break;
      } catch (const std::exception& error) {
        // A handler that throws must not take the whole gateway down with it.
        log::error("worker ", index, ": unhandled exception: ", error.what());
      }
    }
  };
  for (std::size_t i = 1; i < contexts_.size(); ++i)
    threads_.emplace_back(run_worker, i);
  run_worker(0);
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

void WorkerPool::stop() {
  for (auto& context : contexts_)
    context->stop();
}

void WorkerPool::shutdown() {
  // Every context first, before any is destroyed: a frame ended here may own a timer or socket
  // of another worker's context.
  for (auto& context : contexts_)
    context->shutdown();
}

}  // namespace membrane::http
