// Writing a complete message without a trip through the event loop. A request/response exchange
// writes a few hundred bytes into a socket whose send buffer is nearly always empty: the kernel
// takes them at once. An asynchronous write would make the same system call and then queue its
// completion, arm and cancel the stream's timer, and resume the coroutine from the scheduler;
// sending directly skips all of that and leaves only what the kernel did not take (a slow reader)
// to the asynchronous write and its timeout.
#pragma once

#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <array>
#include <chrono>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>

#include "http/asio.hpp"

namespace membrane::http {

// Sends what the socket takes now (never waits, never raises SIGPIPE): the bytes sent, or the
// error that ended the connection. A full send buffer is 0 bytes and no error.
std::pair<error_code, std::size_t> send_now(int socket,
                                            std::span<const asio::const_buffer> buffers);

// Writes every byte of `buffers` to `stream`: directly on a plain TCP stream, the rest (or all,
// through TLS) asynchronously under `timeout`.
template <class Stream, std::size_t N>
awaitable<error_code> write_all(Stream& stream, const std::array<asio::const_buffer, N>& buffers,
                                std::chrono::steady_clock::duration timeout) {
  std::size_t sent = 0;
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    error_code ec;
    std::tie(ec, sent) = send_now(stream.socket().native_handle(), buffers);
    if (ec) co_return ec;
    if (sent == asio::buffer_size(buffers)) co_return error_code();
  }
  beast::buffers_suffix<std::array<asio::const_buffer, N>> rest(buffers);
  rest.consume(sent);
  beast::get_lowest_layer(stream).expires_after(timeout);
  auto [ec, written] = co_await asio::async_write(stream, rest, use_nothrow);
  co_return ec;
}

}  // namespace membrane::http
