// One io_context per worker thread (the nginx/Envoy model): a connection, and every upstream
// connection it borrows, live on one thread, so the request path needs no locks or strands.
// Cross-thread hand-offs (stdio children, legacy SSE sessions) go through concurrent channels.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "http/asio.hpp"

namespace membrane::http {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned count);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  std::size_t size() const { return contexts_.size(); }
  asio::io_context& context(std::size_t index) { return *contexts_[index]; }
  // Round-robin choice for a new connection.
  asio::io_context& next_context();

  // Runs every worker; worker 0 runs on the calling thread. Returns when all have stopped.
  void run();
  void stop();
  // Shuts every context down: destroys the handlers and coroutine frames they still hold, but
  // keeps the contexts, so that sockets and timers opened on them may still be destroyed (Asio
  // allows that after shutdown, not once a context is gone). Call it after run() returned and
  // before the objects those frames use go away; the pool itself must outlive every object that
  // owns a socket or timer on its contexts. Idempotent; the destructor does it too.
  void shutdown();

  // Index of the worker running the calling thread (0 outside worker threads).
  static std::size_t current_index();

 private:
  // io_context keeps shutdown() protected; a worker's context makes it callable by the pool.
  struct Context : asio::io_context {
    using io_context::io_context;
    using io_context::shutdown;
  };
  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<std::thread> threads_;
  std::size_t next_ = 0;
};

// Shuts a WorkerPool down when it leaves scope (WorkerPool::shutdown). Declared after the objects
// the workers' coroutines use, while the pool is declared before every object that owns a socket
// or timer on it: frames end while what they use still exists, sockets and timers go before their
// contexts.
class WorkerShutdown {
 public:
  explicit WorkerShutdown(WorkerPool& pool) : pool_(pool) {}
  ~WorkerShutdown() { pool_.shutdown(); }
  WorkerShutdown(const WorkerShutdown&) = delete;
  WorkerShutdown& operator=(const WorkerShutdown&) = delete;

 private:
  WorkerPool& pool_;
};

}  // namespace membrane::http
