// Common Asio/Beast aliases for the modules that do I/O. Include only from .cpp files and
// internal headers under src/: public headers stay free of Boost.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>

namespace membrane {
namespace asio = boost::asio;
namespace beast = boost::beast;
using error_code = boost::system::error_code;

// Completion token for the hot path: failures come back as values, not exceptions.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

template <class T>
using awaitable = asio::awaitable<T>;
}  // namespace membrane
