// A small Redis client for cluster-wide state shared by gateway replicas (rate limit buckets,
// approval answers routed over pub/sub). It speaks RESP2 over plain TCP: Debian ships no
// Boost.Redis with Boost 1.81, and hiredis would bring a second event loop. Commands borrow a
// connection from a per-worker-thread pool (like http::HttpClient), one command at a time per
// connection; failures are values, never exceptions.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/asio.hpp"

namespace membrane::cluster {

// redis://[[user]:password@]host[:port][/db]; user and password may be percent-encoded.
struct RedisUrl {
  std::string host;  // name or address literal (IPv6 without brackets)
  std::uint16_t port = 6379;
  std::string username;
  std::string password;
  int db = 0;

  static std::optional<RedisUrl> parse(std::string_view url, std::string& error);
  // redis://[user@]host:port[/db], never the password: safe for logs and error texts.
  std::string to_string() const;
  // host:port (IPv6 in brackets): the prefix of every transport error.
  std::string endpoint() const;
};

struct RedisOptions {
  std::chrono::milliseconds connect_timeout{1'000};  // resolve + TCP connect
  std::chrono::milliseconds command_timeout{1'000};  // command written -> whole reply read
  // Enough for every call a worker has in flight at once: a connection beyond the cap is closed
  // when its command ends, and under load that means a new connection per call (the bench saw
  // thousands a second with a cap of 8 and 32 calls in flight).
  std::size_t max_idle_per_worker = 64;
  // RedisSubscriber: a connection quiet this long is probed with PING (and dropped when the
  // answer does not come within command_timeout).
  std::chrono::milliseconds subscriber_ping_after{10'000};
};

// One RESP2 value. A null bulk string and a null array are both `nil`.
struct RedisReply {
  enum class Kind { status, error, integer, bulk, nil, array } kind = Kind::nil;
  std::string text;  // status, error, bulk
  long long integer = 0;
  std::vector<RedisReply> elements;  // array
};

// Incremental RESP2 parser: bytes go in as they arrive, complete replies come out. A server
// that sends nonsense (or a huge reply) costs a protocol error, never a crash or an allocation
// beyond the limits below; after an error the stream is out of sync and the connection must go.
class RespParser {
 public:
  static constexpr std::size_t max_bulk_bytes = 64 * 1024 * 1024;
  static constexpr std::size_t max_depth = 8;  // a top-level array is depth 1
  static constexpr std::size_t max_array_elements = 1024 * 1024;
  static constexpr std::size_t max_line_bytes = 64 * 1024;  // status, error, integer, headers

  enum class Status { reply, need_more, error };

  void feed(std::string_view bytes);
  // The next complete reply goes into `out`. need_more keeps what was parsed so far for the next
  // feed(); error is final and error() says why.
  Status take(RedisReply& out);
  const std::string& error() const { return error_; }
  // Bytes fed but not yet part of a taken reply.
  std::size_t buffered() const { return buffer_.size() - position_; }

 private:
  struct Frame {
    RedisReply array;
    std::size_t remaining = 0;
  };
  Status fail(std::string why);
  // Parses one value at position_: a scalar into `out` (true), or opens an array frame (false).
  // need_more/error come back through `status`.
  bool parse_value(RedisReply& out, Status& status);

  std::string buffer_;
  std::size_t position_ = 0;
  std::vector<Frame> open_arrays_;
  std::string error_;
};

// A command as RESP2 puts it on the wire: an array of bulk strings.
std::string encode_command(const std::vector<std::string>& args);

struct RedisResult {
  RedisReply reply;
  // A transport failure (connect, AUTH/SELECT, write, read, timeout, protocol error), naming the
  // server. A Redis error reply (-ERR ...) is not one: ok() and reply.kind == error.
  std::string error;
  bool ok() const { return error.empty(); }
};

// A Lua script with its SHA1, run by EVALSHA so the source crosses the wire only once.
struct RedisScript {
  std::string source;
  std::string sha1;  // lowercase hex, as Redis names scripts
  explicit RedisScript(std::string source);
};

class RedisConnection;

class RedisClient {
 public:
  // `worker_count` sizes the per-worker pools (http::WorkerPool::size()). Destroy the client
  // before the io_contexts its commands ran on: pooled sockets belong to them.
  RedisClient(RedisUrl url, RedisOptions options, std::size_t worker_count);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Callable from any worker thread of the pool it was sized for, and from other threads with
  // their own io_context (they share pool 0; a connection is reused only on its own executor).
  awaitable<RedisResult> command(std::vector<std::string> args);
  // EVALSHA, falling back to EVAL (which also loads it) when Redis answers NOSCRIPT: the script
  // cache is empty after a restart or a SCRIPT FLUSH.
  awaitable<RedisResult> run_script(const RedisScript& script, std::vector<std::string> keys,
                                    std::vector<std::string> args);

  const RedisUrl& url() const { return url_; }
  // Closes the idle pooled connections (shutdown).
  void close_idle();

 private:
  struct Pool;
  std::unique_ptr<RedisConnection> borrow(const asio::any_io_executor& executor);
  void release(std::unique_ptr<RedisConnection> connection);

  RedisUrl url_;
  RedisOptions options_;
  std::vector<std::unique_ptr<Pool>> pools_;
};

// A dedicated connection that SUBSCRIBEs to `channels` and hands every message to the handler,
// reconnecting (and resubscribing) with capped backoff after any failure. A connection that goes
// quiet is probed with PING, so a peer that vanished without a FIN is noticed too.
class RedisSubscriber {
 public:
  using Handler = std::function<void(std::string_view channel, std::string_view message)>;

  RedisSubscriber(RedisUrl url, RedisOptions options, std::vector<std::string> channels,
                  Handler on_message);
  // Stops (see stop()).
  ~RedisSubscriber();
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  // on_message runs on `executor`. Call once.
  void start(asio::any_io_executor executor);
  // Ends the subscription promptly. When it returns, on_message is not running (unless stop()
  // was called from inside it) and will not be called again. Safe from any thread.
  void stop();
  // True once SUBSCRIBE was confirmed for every channel on the current connection.
  bool subscribed() const;

 private:
  struct State;  // shared with the running coroutine, which may outlive this object briefly
  static awaitable<void> run(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace membrane::cluster
