#include <catch2/catch.hpp>

#include <boost/asio/post.hpp>
#include <memory>
#include <optional>

#include "http/worker_pool.hpp"

using membrane::awaitable;
using membrane::use_nothrow;
using membrane::http::WorkerPool;
namespace asio = membrane::asio;

namespace {

// Sets its flag when destroyed: tells whether a suspended coroutine's frame has been destroyed.
struct FrameEnd {
  bool* ended;
  explicit FrameEnd(bool* flag) : ended(flag) {}
  FrameEnd(const FrameEnd&) = delete;
  FrameEnd& operator=(const FrameEnd&) = delete;
  ~FrameEnd() { *ended = true; }
};

// Stops the pool once it is waiting, so that the frame exists (with `end` in it) when run()
// returns.
awaitable<void> wait_forever(WorkerPool& pool, asio::steady_timer& timer, bool* ended) {
  const FrameEnd end(ended);
  asio::post(pool.context(0), [&pool] { pool.stop(); });
  timer.expires_at(asio::steady_timer::time_point::max());
  co_await timer.async_wait(use_nothrow);
}

}  // namespace

// The gateway's shutdown order (app/serve.cpp) rests on this: after run(), shutdown() ends the
// coroutines still suspended on any worker while the objects they use are alive, and sockets or
// timers that outlive that (an HTTP upstream's idle pool, an OTLP exporter's connection, a stdio
// child's timer) may be destroyed afterwards, before the pool. In the sanitizer build a timer
// destroyed after its context would be a heap-use-after-free.
TEST_CASE("shutting workers down ends their suspended coroutines and keeps their contexts") {
  WorkerPool pool(2);
  // A timer of worker 0 waited on by a coroutine of worker 1, as a stdio session's timer may be.
  std::optional<asio::steady_timer> timer(std::in_place, pool.context(0));
  bool ended = false;
  asio::co_spawn(pool.context(1), wait_forever(pool, *timer, &ended), asio::detached);
  pool.run();
  CHECK_FALSE(ended);  // stopped, not shut down: the frame is still there

  pool.shutdown();
  CHECK(ended);
  timer.reset();    // after shutdown, before the pool: allowed
  pool.shutdown();  // idempotent (the destructor calls it again)
}
