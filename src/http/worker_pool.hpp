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

  // Index of the worker running the calling thread (0 outside worker threads).
  static std::size_t current_index();

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<std::thread> threads_;
  std::size_t next_ = 0;
};

}  // namespace membrane::http
