#include "http/server.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <system_error>

#include "http/overload.hpp"
#include "http/request_reading.hpp"
#include "http/wire.hpp"
#include "http/write_now.hpp"
#include "membrane/core/log.hpp"

namespace membrane::http {

struct Server::Connection {
  Connection(asio::any_io_executor executor, const std::atomic<bool>& keep_alive_stopped)
      : executor(std::move(executor)), keep_alive_stopped(keep_alive_stopped) {}

  enum class State { waiting_for_request, in_exchange, interruptible };

  // Everything below is touched only on `executor` (one worker thread).
  asio::any_io_executor executor;
  asio::cancellation_signal cancel;
  State state = State::waiting_for_request;
  bool draining = false;
  std::list<std::shared_ptr<Connection>>::iterator position;
  const std::atomic<bool>& keep_alive_stopped;  // the server's (Server::stop_keep_alive)

  void interrupt() { cancel.emit(asio::cancellation_type::terminal); }
  bool may_keep_alive() const {
    return !draining && !keep_alive_stopped.load(std::memory_order_relaxed);
  }
};

struct ClientWatch::State {
  asio::cancellation_signal stop;
  std::function<void()> on_gone;
  bool watching = true;
  char probe = 0;  // the peeked byte: lives as long as the receive that writes it
};

ClientWatch& ClientWatch::operator=(ClientWatch&& other) noexcept {
  if (this != &other) {
    stop();
    state_ = std::move(other.state_);
  }
  return *this;
}

ClientWatch::~ClientWatch() {
  stop();
}

void ClientWatch::stop() {
  if (!state_) return;
  state_->watching = false;
  state_->on_gone = nullptr;
  state_->stop.emit(asio::cancellation_type::terminal);
  state_.reset();
}

namespace {

// Peeks at the client's next byte without consuming it: the end of the stream or an error means
// the client closed (or reset) its side; a byte is the start of its next request. A receive, not
// a readiness wait: Asio re-arms the descriptor with epoll_ctl for every wait, where a receive is
// tried once (EAGAIN while the client waits) and then queued on the socket's registration.
void watch_for_close(asio::ip::tcp::socket& socket, std::shared_ptr<ClientWatch::State> state) {
  auto& slot_source = state->stop;
  const auto probe = asio::buffer(&state->probe, 1);
  socket.async_receive(
      probe, asio::socket_base::message_peek,
      asio::bind_cancellation_slot(
          slot_source.slot(),
          [state = std::move(state)](const error_code& ec, std::size_t received) mutable {
            if (!state->watching || ec == asio::error::operation_aborted) return;
            if (!ec && received > 0) return;  // bytes of a next request: the client is there
            state->watching = false;
            if (auto on_gone = std::move(state->on_gone)) on_gone();
          }));
}

// Whether the peer has closed its side already (an orderly close or a reset), without waiting.
bool peer_closed(asio::ip::tcp::socket& socket) {
  if (!socket.is_open()) return true;
  char probe = 0;
  const auto n = ::recv(socket.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return n == 0;
}

using TlsStream = asio::ssl::stream<beast::tcp_stream>;

template <class Stream>
beast::tcp_stream& tcp_layer(Stream& stream) {
  return beast::get_lowest_layer(stream);
}

Response default_error_response(bhttp::status status, std::string_view message) {
  Response response{status, 11};
  response.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  response.body() = std::string(message) + "\n";
  return response;
}

template <class Stream>
class ConnectionResponder final : public Responder {
 public:
  ConnectionResponder(Stream& stream, Server::Connection& connection, const ServerOptions& options,
                      unsigned version, bool keep_alive)
      : stream_(stream),
        connection_(connection),
        options_(options),
        version_(version),
        keep_alive_(keep_alive) {}

  awaitable<bool> send(Response response) override {
    if (started_ || failed_) co_return false;
    started_ = finished_ = true;
    response.version(version_);
    response.keep_alive(keep_alive_ && connection_.may_keep_alive());
    keep_alive_ = response.keep_alive();
    response.prepare_payload();
    std::string head;
    head.reserve(256);
    append_head(head, response.base());
    const std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(response.body())};
    if (co_await write_all(stream_, wire, options_.write)) failed_ = true;
    co_return !failed_;
  }

  awaitable<bool> begin_stream(ResponseHeader header) override {
    if (started_ || failed_) co_return false;
    started_ = true;
    streaming_ = true;
    header.version(version_);
    if (version_ >= 11) {
      header.chunked(true);
      header.keep_alive(keep_alive_ && connection_.may_keep_alive());
    } else {
      header.keep_alive(false);  // HTTP/1.0: the end of the stream is the end of the connection
    }
    keep_alive_ = header.keep_alive();
    bhttp::response_serializer<bhttp::empty_body> serializer{header};
    tcp_layer(stream_).expires_after(options_.write);
    auto [ec, written] = co_await bhttp::async_write_header(stream_, serializer, use_nothrow);
    if (ec) failed_ = true;
    co_return !failed_;
  }

  awaitable<bool> write_chunk(std::string_view data) override {
    if (!streaming_ || finished_ || failed_) co_return false;
    if (data.empty()) co_return true;  // an empty chunk would end the body
    tcp_layer(stream_).expires_after(options_.write);
    error_code ec;
    if (version_ >= 11) {
      std::tie(ec, std::ignore) = co_await asio::async_write(
          stream_, bhttp::make_chunk(asio::buffer(data.data(), data.size())), use_nothrow);
    } else {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(stream_, asio::buffer(data.data(), data.size()), use_nothrow);
    }
    if (ec) failed_ = true;
    co_return !failed_;
  }

  awaitable<bool> end_stream() override {
    if (!streaming_ || finished_ || failed_) co_return false;
    finished_ = true;
    if (version_ < 11) co_return true;
    tcp_layer(stream_).expires_after(options_.write);
    auto [ec, written] = co_await asio::async_write(stream_, bhttp::make_chunk_last(), use_nothrow);
    if (ec) failed_ = true;
    co_return !failed_;
  }

  void set_interruptible(bool interruptible) override {
    connection_.state = interruptible ? Server::Connection::State::interruptible
                                      : Server::Connection::State::in_exchange;
    if (interruptible && connection_.draining) connection_.interrupt();
  }

  bool draining() const override { return connection_.draining; }

  void interrupt() override { connection_.interrupt(); }

  ClientWatch watch_client(std::function<void()> on_gone) override {
    auto state = std::make_shared<ClientWatch::State>();
    state->on_gone = std::move(on_gone);
    auto& socket = tcp_layer(stream_).socket();
    if (failed_ || !socket.is_open()) return {};
    watch_for_close(socket, state);
    return ClientWatch(std::move(state));
  }

  bool started() const { return started_; }
  bool finished() const { return finished_; }
  bool failed() const { return failed_; }
  bool keep_alive() const { return keep_alive_; }

 private:
  Stream& stream_;
  Server::Connection& connection_;
  const ServerOptions& options_;
  unsigned version_;
  bool keep_alive_;
  bool started_ = false;
  bool streaming_ = false;
  bool finished_ = false;
  bool failed_ = false;
};

// A deadline for reading one part of a request. Beast's stream timeout closes the socket when it
// expires, which leaves no way to tell the client why; this one only cancels the read, so the 408
// can still be written (under the write timeout) before the connection closes.
class ReadDeadline {
 public:
  ReadDeadline(asio::ip::tcp::socket& socket, std::chrono::milliseconds after)
      : timer_(socket.get_executor()), state_(std::make_shared<State>(State{&socket})) {
    timer_.expires_after(after);
    timer_.async_wait([state = state_](const error_code& ec) {
      // The timer and the connection share one thread: a deadline that is gone has cleared the
      // socket before this could run.
      if (ec || !state->socket) return;
      state->expired = true;
      error_code ignored;
      state->socket->cancel(ignored);
    });
  }
  ~ReadDeadline() {
    state_->socket = nullptr;
    timer_.cancel();
  }
  ReadDeadline(const ReadDeadline&) = delete;
  ReadDeadline& operator=(const ReadDeadline&) = delete;

  bool expired() const { return state_->expired; }

 private:
  struct State {
    asio::ip::tcp::socket* socket;
    bool expired = false;
  };
  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

// Reads with `read` under a ReadDeadline of `limit`; a read the deadline cut reports
// beast::error::timeout.
template <class Stream, class Read>
awaitable<std::tuple<error_code, std::size_t>> read_within(Stream& stream,
                                                           std::chrono::milliseconds limit,
                                                           Read read) {
  tcp_layer(stream).expires_never();
  const ReadDeadline deadline(tcp_layer(stream).socket(), limit);
  auto [ec, bytes] = co_await read();
  if (ec && deadline.expired()) ec = beast::error::timeout;
  std::tuple<error_code, std::size_t> result{ec, bytes};
  co_return result;
}

template <class Stream>
awaitable<bool> send_error(Stream& stream, const ServerOptions& options, bhttp::status status,
                           std::string_view message) {
  Response response = options.error_response ? options.error_response(status, message)
                                             : default_error_response(status, message);
  response.keep_alive(false);
  response.prepare_payload();
  tcp_layer(stream).expires_after(options.write);
  auto [ec, written] = co_await bhttp::async_write(stream, response, use_nothrow);
  co_return !ec;
}

// Returns true when the connection ends with request bytes possibly still in flight.
template <class Stream>
awaitable<bool> serve_requests(Stream& stream, Server::Connection& connection,
                               const ServerOptions& options, const Handler& handler,
                               const RequestOrigin& origin) {
  using State = Server::Connection::State;
  beast::flat_buffer buffer;
  // The first bytes of each request land here, in the coroutine frame: a connection waiting for
  // its next request holds no heap buffer (the one a large request grew is given back), so idle
  // keep-alive connections cost little more than their socket.
  std::array<char, 1024> first_bytes;
  bool first_request = true;
  for (;;) {
    connection.state = State::waiting_for_request;
    if (connection.draining) co_return false;
    if (buffer.size() == 0) {
      buffer.shrink_to_fit();
      // Idle keep-alive wait, timed separately from reading the request once it has begun.
      tcp_layer(stream).expires_after(first_request ? options.header_read
                                                    : options.keep_alive_idle);
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(first_bytes), use_nothrow);
      if (ec) co_return false;
      buffer.commit(asio::buffer_copy(buffer.prepare(n), asio::buffer(first_bytes.data(), n)));
    }
    first_request = false;
    connection.state = State::in_exchange;

    RequestParser parser;
    apply_request_limits(parser, options);
    error_code header_ec = parse_buffered(parser, buffer, ReadPhase::header);
    if (!header_ec && !parser.is_header_done()) {
      std::tie(header_ec, std::ignore) = co_await read_within(stream, options.header_read, [&] {
        return bhttp::async_read_header(stream, buffer, parser, use_nothrow);
      });
    }
    if (header_ec) {
      if (auto refusal = read_refusal(header_ec, ReadPhase::header, parser, options)) {
        co_await send_error(stream, options, refusal->status, refusal->message);
        co_return refusal->linger;
      }
      co_return false;
    }
    if (auto refusal = declared_length_refusal(parser, options)) {
      co_await send_error(stream, options, refusal->status, refusal->message);
      co_return refusal->linger;
    }

    error_code body_ec = parse_buffered(parser, buffer, ReadPhase::body);
    const auto& header = parser.get();
    // A client that already sent its body did not wait for the go-ahead.
    if (!body_ec && !parser.is_done() &&
        beast::iequals(header[bhttp::field::expect], "100-continue")) {
      bhttp::response<bhttp::empty_body> go_on{bhttp::status::continue_, header.version()};
      tcp_layer(stream).expires_after(options.write);
      auto [ec, n] = co_await bhttp::async_write(stream, go_on, use_nothrow);
      if (ec) co_return false;
    }
    if (!body_ec && !parser.is_done()) {
      std::tie(body_ec, std::ignore) = co_await read_within(stream, options.body_read, [&] {
        return bhttp::async_read(stream, buffer, parser, use_nothrow);
      });
    }
    if (body_ec) {
      if (auto refusal = read_refusal(body_ec, ReadPhase::body, parser, options)) {
        co_await send_error(stream, options, refusal->status, refusal->message);
        co_return refusal->linger;
      }
      co_return false;
    }
    tcp_layer(stream).expires_never();

    Request request = parser.release();
    ConnectionResponder<Stream> responder(stream, connection, options, request.version(),
                                          request.keep_alive());
    co_await handler(request, origin, responder);
    // The handler may have been interrupted (drain) while its cancellation was pending: later
    // writes on this connection must not fail because of it.
    co_await asio::this_coro::reset_cancellation_state();
    if (!responder.started()) {
      // A handler leaves a client that went away without an answer: nobody is there to get one.
      if (peer_closed(tcp_layer(stream).socket())) {
        log::debug("no response for ", request.method_string(), " ", request.target(),
                   ": the client closed the connection first");
        co_return false;
      }
      log::error("handler produced no response for ", request.method_string(), " ",
                 request.target());
      co_await send_error(stream, options, bhttp::status::internal_server_error,
                          "the gateway produced no response");
      co_return false;
    }
    if (!responder.finished()) {
      co_await responder.end_stream();
    }
    if (responder.failed() || !responder.keep_alive()) co_return false;
  }
}

// What a lingering close reads is thrown away, so every closing connection of a worker reads into
// the same buffer (a worker's reads all run on its thread): a crowd of closing connections costs
// no memory per connection, where a buffer in each one's frame cost 64 KiB for up to 5 s.
asio::mutable_buffer lingering_discard() {
  thread_local std::array<char, 16 * 1024> discarded;
  return asio::buffer(discarded);
}

// Closing while the client is still sending (we answered 413 before reading its body) would make
// the kernel reset the connection, and the client would see EPIPE instead of our answer. So, like
// nginx's lingering close, stop sending and read what is left, bounded in time and bytes.
template <class Stream>
awaitable<void> close_gracefully(Stream& stream, bool linger,
                                 std::chrono::milliseconds linger_time = std::chrono::seconds(5),
                                 std::size_t linger_bytes = 64 * 1024 * 1024) {
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    tcp_layer(stream).expires_after(std::chrono::seconds(1));
    co_await stream.async_shutdown(use_nothrow);
  }
  error_code ignored;
  auto& socket = tcp_layer(stream).socket();
  socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  if (linger && socket.is_open()) {
    std::size_t drained = 0;
    tcp_layer(stream).expires_after(linger_time);
    while (drained < linger_bytes) {
      auto [ec, n] = co_await tcp_layer(stream).async_read_some(lingering_discard(), use_nothrow);
      if (ec) break;
      drained += n;
    }
  }
  tcp_layer(stream).close();
}

// One answer, then a short lingering close (1 s, 64 KiB at most): for refused connections.
template <class Stream>
awaitable<void> write_and_close(Stream& stream, Response& response) {
  tcp_layer(stream).expires_after(std::chrono::seconds(2));
  auto [ec, written] = co_await bhttp::async_write(stream, response, use_nothrow);
  if (!ec) co_await close_gracefully(stream, true, std::chrono::seconds(1), 64 * 1024);
}

}  // namespace

Server::Server(WorkerPool& workers, ServerOptions options, Handler handler)
    : workers_(workers), options_(std::move(options)), handler_(std::move(handler)) {}

Server::~Server() = default;

void Server::start() {
  auto& context = workers_.context(0);
  error_code ec;
  const auto address =
      asio::ip::make_address(options_.host == "localhost" ? "127.0.0.1" : options_.host, ec);
  if (ec) throw std::system_error(ec, "invalid listen address '" + options_.host + "'");
  asio::ip::tcp::endpoint endpoint{address, options_.port};
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(context);
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + endpoint.address().to_string() + ":" +
                                    std::to_string(endpoint.port()));
  }
  local_endpoint_ = acceptor_->local_endpoint();
  asio::co_spawn(context, accept_loop(), asio::detached);
}

awaitable<void> Server::accept_loop() {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  const auto at_limit = [this] {
    return options_.max_connections > 0 && open_connections() >= options_.max_connections;
  };
  while (!draining_) {
    // Full, and already answering as many refusals as it will: leave new connections in the
    // kernel's backlog (they are accepted once a connection closes) rather than spend more on
    // refusing them.
    if (refusing_ >= options_.max_refusing && at_limit()) {
      pause.expires_after(std::chrono::milliseconds(10));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    auto& worker = workers_.next_context();
    auto [ec, socket] = co_await acceptor_->async_accept(worker, use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || draining_) co_return;
      // EMFILE and friends: back off briefly instead of spinning.
      log::warn("accept failed: ", ec.message());
      pause.expires_after(std::chrono::milliseconds(50));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    RequestOrigin origin;
    origin.peer = socket.remote_endpoint(ignored);
    origin.tls = options_.tls != nullptr;
    const auto address = origin.peer.address();
    origin.peer_text = address.is_v6()
                           ? "[" + address.to_string() + "]:" + std::to_string(origin.peer.port())
                           : address.to_string() + ":" + std::to_string(origin.peer.port());

    if (at_limit()) {
      ++refusing_;
      const auto executor = socket.get_executor();
      asio::co_spawn(executor, refuse_connection(std::move(socket), std::move(origin.peer_text)),
                     asio::detached);
      continue;
    }

    auto connection = std::make_shared<Connection>(socket.get_executor(), keep_alive_stopped_);
    {
      std::lock_guard lock(connections_mutex_);
      connection->position = connections_.insert(connections_.end(), connection);
    }
    // A member coroutine, not a capturing lambda: its parameters live in the coroutine frame.
    asio::co_spawn(connection->executor, serve_connection(std::move(socket), connection, origin),
                   asio::bind_cancellation_slot(connection->cancel.slot(), asio::detached));
  }
}

awaitable<void> Server::serve_connection(asio::ip::tcp::socket socket,
                                         std::shared_ptr<Connection> connection,
                                         RequestOrigin origin) {
  co_await asio::this_coro::throw_if_cancelled(false);
  try {
    if (options_.tls) {
      TlsStream stream(beast::tcp_stream(std::move(socket)), *options_.tls);
      tcp_layer(stream).expires_after(options_.header_read);
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_nothrow);
      if (ec) {
        log::debug("TLS handshake with ", origin.peer, " failed: ", ec.message());
      } else {
        const bool linger =
            co_await serve_requests(stream, *connection, options_, handler_, origin);
        co_await asio::this_coro::reset_cancellation_state();
        co_await close_gracefully(stream, linger);
      }
    } else {
      beast::tcp_stream stream(std::move(socket));
      const bool linger = co_await serve_requests(stream, *connection, options_, handler_, origin);
      co_await asio::this_coro::reset_cancellation_state();
      co_await close_gracefully(stream, linger);
    }
  } catch (const std::exception& error) {
    log::error("connection from ", origin.peer, " failed: ", error.what());
  }
  forget(connection);
}

// A connection beyond max_connections: one 503 written without reading the request (its bytes
// are drained afterwards, so the client reads the answer instead of a reset), then closed. Each
// costs a few milliseconds at most, and max_refusing bounds how many run at once.
awaitable<void> Server::refuse_connection(asio::ip::tcp::socket socket, std::string peer) {
  const std::string message = "Overloaded: " + std::to_string(options_.max_connections) +
                              " connections are open on this gateway (the limit); retry later";
  if (options_.overload) {
    options_.overload->refused(OverloadLimit::connections,
                               "refused a connection from " + peer + ": " + message);
  }
  Response response = options_.overload_response
                          ? options_.overload_response(message)
                          : default_error_response(bhttp::status::service_unavailable, message);
  response.result(bhttp::status::service_unavailable);
  response.set(bhttp::field::retry_after, std::to_string(options_.retry_after.count()));
  response.keep_alive(false);
  response.prepare_payload();
  try {
    if (options_.tls) {
      TlsStream stream(beast::tcp_stream(std::move(socket)), *options_.tls);
      tcp_layer(stream).expires_after(std::chrono::seconds(2));
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_nothrow);
      if (!ec) co_await write_and_close(stream, response);
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await write_and_close(stream, response);
    }
  } catch (const std::exception& error) {
    log::debug("refusing the connection from ", peer, " failed: ", error.what());
  }
  --refusing_;
}

void Server::forget(const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(connections_mutex_);
  connections_.erase(connection->position);
}

void Server::begin_drain() {
  if (draining_.exchange(true)) return;
  asio::post(workers_.context(0), [this] {
    error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
  });
  std::lock_guard lock(connections_mutex_);
  for (const auto& connection : connections_) {
    asio::post(connection->executor, [connection] {
      connection->draining = true;
      if (connection->state != Connection::State::in_exchange) connection->interrupt();
    });
  }
}

void Server::close_all() {
  std::lock_guard lock(connections_mutex_);
  for (const auto& connection : connections_) {
    asio::post(connection->executor, [connection] {
      connection->draining = true;
      connection->interrupt();
    });
  }
}

awaitable<void> Server::drain(std::chrono::milliseconds grace) {
  begin_drain();
  co_await wait_for_close(std::chrono::steady_clock::now() + grace);
  if (open_connections() == 0) co_return;
  log::warn("drain deadline reached with ", open_connections(),
            " connection(s) open: closing them");
  close_all();
  co_await wait_for_close(std::chrono::steady_clock::now() + std::chrono::seconds(2));
}

awaitable<void> Server::wait_for_close(std::chrono::steady_clock::time_point deadline) {
  asio::steady_timer poll(co_await asio::this_coro::executor);
  while (open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    poll.expires_after(std::chrono::milliseconds(20));
    co_await poll.async_wait(use_nothrow);
  }
}

std::size_t Server::open_connections() const {
  std::lock_guard lock(connections_mutex_);
  return connections_.size();
}

}  // namespace membrane::http
