// The HTTP/1.1 listener: accepts connections (plain or TLS), reads requests with per-phase
// timeouts and size limits, and hands each request to a handler together with a Responder that
// can answer in one piece or stream (chunked) event by event. It knows nothing about MCP.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "http/asio.hpp"
#include "http/worker_pool.hpp"

namespace membrane::http {

class OverloadStats;  // http/overload.hpp

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;
using ResponseHeader = bhttp::response<bhttp::empty_body>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds header_read{10'000};
  std::chrono::milliseconds body_read{30'000};
  std::chrono::milliseconds keep_alive_idle{75'000};
  std::chrono::milliseconds write{30'000};  // one write to a client that stopped reading
  std::shared_ptr<asio::ssl::context> tls;  // null = plain HTTP
  // Formats the errors the server itself answers with (400, 408, 413, 431, 500) in the body
  // format of the protocol on top; a plain-text body when unset.
  std::function<Response(bhttp::status, std::string_view message)> error_response;

  // Client connections open at once; 0 = no limit. A connection beyond it is answered 503 at
  // once and closed; while `max_refusing` such answers are under way the listener stops
  // accepting, and further connections wait in the kernel's backlog until one closes.
  std::size_t max_connections = 0;
  std::size_t max_refusing = 64;
  std::chrono::seconds retry_after{1};
  // The 503 for a connection beyond the limit, in the protocol's error format (it gets
  // Retry-After and Connection: close here); a plain-text body when unset.
  std::function<Response(std::string_view message)> overload_response;
  std::shared_ptr<OverloadStats> overload;  // where refusals are counted; may be null
};

// Notices a client that closes its connection while the handler is still working on its request,
// so the work it asked for can be abandoned instead of running to an answer nobody reads. Stops
// watching when destroyed; must not outlive the request it watches.
class ClientWatch {
 public:
  struct State;
  ClientWatch() = default;
  explicit ClientWatch(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ClientWatch(ClientWatch&&) noexcept = default;
  ClientWatch& operator=(ClientWatch&&) noexcept;
  ~ClientWatch();

 private:
  void stop();
  std::shared_ptr<State> state_;
};

// How a handler answers the request it was given. Every call returns false once the client is
// gone; the handler should then stop producing.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual awaitable<bool> send(Response response) = 0;
  // Starts a streamed response: the header goes out now, the body as chunks.
  virtual awaitable<bool> begin_stream(ResponseHeader header) = 0;
  virtual awaitable<bool> write_chunk(std::string_view data) = 0;
  virtual awaitable<bool> end_stream() = 0;
  // A stream with no natural end (an SSE listen stream) is ended at once when the server starts
  // draining; other exchanges get until the drain deadline.
  virtual void set_interruptible(bool interruptible) = 0;
  virtual bool draining() const = 0;
  // Calls `on_gone` (on the handler's executor) if the client closes its connection before the
  // watch ends. A client that sends more bytes meanwhile (a pipelined request) is still there, and
  // a TLS client's close is seen only at the next write.
  [[nodiscard]] virtual ClientWatch watch_client(std::function<void()> on_gone) = 0;
  // Cancels (terminal) the operation the handler is waiting on, as the drain does to an
  // interruptible stream. Call it on the handler's executor; the handler then resets its
  // cancellation state before going on.
  virtual void interrupt() = 0;
};

struct RequestOrigin {
  asio::ip::tcp::endpoint peer;
  std::string peer_text;  // "ip:port" / "[ip]:port", formatted once per connection
  bool tls = false;
};

using Handler = std::function<awaitable<void>(Request&, const RequestOrigin&, Responder&)>;

class Server {
 public:
  Server(WorkerPool& workers, ServerOptions options, Handler handler);
  ~Server();

  // Binds and listens (throws std::system_error with a clear message when it cannot), then
  // starts accepting on worker 0.
  void start();
  asio::ip::tcp::endpoint local_endpoint() const { return local_endpoint_; }

  // Graceful shutdown, step 0 (not ready, still accepting): every answer from now on says
  // `Connection: close`, so clients and proxies send their next request on a new connection,
  // to another replica, instead of reusing one that step 1 would close under them.
  void stop_keep_alive() { keep_alive_stopped_ = true; }
  // Step 1: stop accepting, close idle keep-alive connections and interruptible streams;
  // connections in the middle of an exchange finish it, then close.
  void begin_drain();
  // Step 2 (drain deadline reached): cancel whatever is still open.
  void close_all();
  // Steps 1 and 2 in order: drains for up to `grace`, then closes what is left and waits (up to
  // 2 s) for it to go.
  awaitable<void> drain(std::chrono::milliseconds grace);
  std::size_t open_connections() const;
  // Connections being answered 503 because of max_connections.
  std::size_t refusing_connections() const { return refusing_.load(); }
  bool draining() const { return draining_.load(); }

  struct Connection;  // per-connection control block (defined in server.cpp)

 private:
  awaitable<void> accept_loop();
  awaitable<void> refuse_connection(asio::ip::tcp::socket socket, std::string peer);
  awaitable<void> serve_connection(asio::ip::tcp::socket socket,
                                   std::shared_ptr<Connection> connection, RequestOrigin origin);
  void forget(const std::shared_ptr<Connection>& connection);
  awaitable<void> wait_for_close(std::chrono::steady_clock::time_point deadline);

  WorkerPool& workers_;
  ServerOptions options_;
  Handler handler_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  asio::ip::tcp::endpoint local_endpoint_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> keep_alive_stopped_{false};
  std::atomic<std::size_t> refusing_{0};
  mutable std::mutex connections_mutex_;
  std::list<std::shared_ptr<Connection>> connections_;
};

}  // namespace membrane::http
