#include "http/stream_buffer.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include <optional>

namespace membrane::http {

StreamBuffer::StreamBuffer(asio::any_io_executor executor, BufferBudget& budget)
    : budget_(budget), room_(std::move(executor), 1) {}

StreamBuffer::~StreamBuffer() {
  // Whatever is still queued (a stream torn down with events unread) goes back to the total.
  budget_.remove(queued_.load(std::memory_order_relaxed));
}

bool StreamBuffer::fits(std::size_t queued, std::size_t bytes) const {
  if (queued == 0) return true;
  return queued + bytes <= budget_.per_stream() && budget_.used() + bytes <= budget_.total();
}

bool StreamBuffer::try_charge(std::size_t bytes) {
  auto queued = queued_.load(std::memory_order_relaxed);
  for (;;) {
    if (closed_.load(std::memory_order_relaxed) || !fits(queued, bytes)) return false;
    if (queued_.compare_exchange_weak(queued, queued + bytes, std::memory_order_relaxed)) break;
  }
  budget_.add(bytes);
  return true;
}

awaitable<bool> StreamBuffer::charge(std::size_t bytes) {
  using namespace asio::experimental::awaitable_operators;
  std::optional<asio::steady_timer> poll;
  while (!try_charge(bytes)) {
    if (closed_.load(std::memory_order_relaxed)) co_return false;
    // Room in this stream's own budget comes with a token from release(); room in the total
    // (released by other streams) is looked for again every few milliseconds.
    if (!poll) poll.emplace(co_await asio::this_coro::executor);
    poll->expires_after(std::chrono::milliseconds(20));
    co_await (room_.async_receive(use_nothrow) || poll->async_wait(use_nothrow));
  }
  co_return true;
}

void StreamBuffer::release(std::size_t bytes) {
  queued_.fetch_sub(bytes, std::memory_order_relaxed);
  budget_.remove(bytes);
  room_.try_send(error_code());
}

void StreamBuffer::close() {
  closed_.store(true, std::memory_order_relaxed);
  room_.try_send(error_code());
}

}  // namespace membrane::http
