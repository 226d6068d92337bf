#include "cluster/redis_client.hpp"

#include <sys/socket.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <exception>
#include <mutex>

#include "http/worker_pool.hpp"
#include "membrane/core/log.hpp"

namespace membrane::cluster {
using namespace asio::experimental::awaitable_operators;
using tcp = asio::ip::tcp;

namespace {

std::string describe(const error_code& ec) {
  if (ec == asio::error::eof) return "connection closed by the server";
  return ec.message();
}

std::string milliseconds_text(std::chrono::milliseconds duration) {
  return std::to_string(duration.count()) + " ms";
}

}  // namespace

// ---- connections ----------------------------------------------------------------------------

class RedisConnection {
 public:
  explicit RedisConnection(asio::any_io_executor executor) : socket(std::move(executor)) {}

  // The next reply, however long it takes (the subscriber waits for messages this way).
  awaitable<std::string> read_reply(RedisReply& reply) {
    for (;;) {
      switch (parser.take(reply)) {
        case RespParser::Status::reply:
          co_return std::string();
        case RespParser::Status::error:
          co_return "protocol error: " + parser.error();
        case RespParser::Status::need_more:
          break;
      }
      auto [ec, n] =
          co_await socket.async_read_some(asio::buffer(chunk.get(), chunk_size), use_nothrow);
      if (ec) co_return describe(ec);
      last_activity = std::chrono::steady_clock::now();
      parser.feed(std::string_view(chunk.get(), n));
    }
  }

  // One command and its reply within `limit`. Anything but an empty result leaves the
  // connection in an unknown state: the caller drops it.
  awaitable<std::string> round_trip(std::string_view wire, std::chrono::milliseconds limit,
                                    RedisReply& reply) {
    asio::steady_timer timer(socket.get_executor(), limit);
    auto outcome = co_await (exchange(wire, reply) || timer.async_wait(use_nothrow));
    if (outcome.index() == 1) co_return "timed out: no reply within " + milliseconds_text(limit);
    co_return std::move(std::get<0>(outcome));
  }

  // Redis closes idle clients only when configured to, but a restarted server leaves every
  // pooled connection half-closed: a non-blocking peek sees the FIN before a command is lost.
  bool looks_reusable() {
    if (!socket.is_open() || parser.buffered() != 0) return false;
    char byte;
    const auto received = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  tcp::socket socket;
  RespParser parser;
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();

 private:
  awaitable<std::string> exchange(std::string_view wire, RedisReply& reply) {
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(wire), use_nothrow);
    if (ec) co_return "cannot send the command: " + describe(ec);
    co_return co_await read_reply(reply);
  }

  static constexpr std::size_t chunk_size = 16 * 1024;
  std::unique_ptr<char[]> chunk = std::make_unique_for_overwrite<char[]>(chunk_size);
};

namespace {

using Endpoints = std::vector<tcp::endpoint>;

awaitable<std::pair<Endpoints, std::string>> resolve(const RedisUrl& url,
                                                     std::chrono::milliseconds limit) {
  error_code ec;
  const auto address = asio::ip::make_address(url.host, ec);
  if (!ec) co_return std::pair{Endpoints(1, tcp::endpoint(address, url.port)), std::string()};

  // Name resolution runs on Asio's resolver thread and ignores per-operation cancellation, so
  // the deadline cancels the resolver itself. The weak pointer keeps a late timer from touching
  // a resolver that is gone.
  auto executor = co_await asio::this_coro::executor;
  auto resolver = std::make_shared<tcp::resolver>(executor);
  asio::steady_timer deadline(executor, limit);
  deadline.async_wait([weak = std::weak_ptr(resolver)](error_code timer_ec) {
    if (timer_ec) return;
    if (auto resolver = weak.lock()) resolver->cancel();
  });
  auto [resolve_ec, results] =
      co_await resolver->async_resolve(url.host, std::to_string(url.port), use_nothrow);
  deadline.cancel();
  if (resolve_ec) {
    const std::string reason = resolve_ec == asio::error::operation_aborted
                                   ? "timed out after " + milliseconds_text(limit)
                                   : resolve_ec.message();
    co_return std::pair{Endpoints{}, "cannot resolve " + url.host + ": " + reason};
  }
  Endpoints endpoints;
  for (const auto& entry : results)
    endpoints.push_back(entry.endpoint());
  co_return std::pair{std::move(endpoints), std::string()};
}

// A command of the connection set-up (AUTH, SELECT): an error reply fails it too.
awaitable<std::string> set_up(RedisConnection& connection, std::vector<std::string> args,
                              std::string what, const RedisOptions& options) {
  RedisReply reply;
  auto error = co_await connection.round_trip(encode_command(args), options.command_timeout, reply);
  if (!error.empty()) co_return what + " failed: " + error;
  if (reply.kind == RedisReply::Kind::error) co_return what + " failed: " + reply.text;
  co_return std::string();
}

// A connection that is ready for commands: connected, authenticated, on the right database.
// Errors name the server ("redis host:port: ...") and never the password.
awaitable<std::pair<std::unique_ptr<RedisConnection>, std::string>> open_connection(
    const RedisUrl& url, const RedisOptions& options, bool select_db) {
  const std::string where = "redis " + url.endpoint() + ": ";
  auto [endpoints, resolve_error] = co_await resolve(url, options.connect_timeout);
  if (!resolve_error.empty()) co_return std::pair{nullptr, where + resolve_error};

  auto executor = co_await asio::this_coro::executor;
  auto connection = std::make_unique<RedisConnection>(executor);
  asio::steady_timer timer(executor, options.connect_timeout);
  auto outcome = co_await (asio::async_connect(connection->socket, endpoints, use_nothrow) ||
                           timer.async_wait(use_nothrow));
  if (outcome.index() == 1) {
    co_return std::pair{nullptr, where + "cannot connect: timed out after " +
                                     milliseconds_text(options.connect_timeout)};
  }
  if (const auto ec = std::get<0>(std::get<0>(outcome)); ec) {
    co_return std::pair{nullptr, where + "cannot connect: " + describe(ec)};
  }
  error_code ignored;
  connection->socket.set_option(tcp::no_delay(true), ignored);
  connection->socket.set_option(asio::socket_base::keep_alive(true), ignored);

  if (!url.password.empty()) {
    // Redis 6 ACLs: AUTH user pass; a bare password authenticates the default user.
    // (Built step by step: GCC 12 rejects some initializer lists in coroutines.)
    std::vector<std::string> args;
    args.emplace_back("AUTH");
    if (!url.username.empty()) args.push_back(url.username);
    args.push_back(url.password);
    if (auto error = co_await set_up(*connection, std::move(args), "AUTH", options);
        !error.empty()) {
      co_return std::pair{nullptr, where + error};
    }
  }
  if (select_db && url.db != 0) {
    const std::string db = std::to_string(url.db);
    std::vector<std::string> args;
    args.emplace_back("SELECT");
    args.push_back(db);
    if (auto error = co_await set_up(*connection, std::move(args), "SELECT " + db, options);
        !error.empty()) {
      co_return std::pair{nullptr, where + error};
    }
  }
  co_return std::pair{std::move(connection), std::string()};
}

}  // namespace

// ---- client ---------------------------------------------------------------------------------

// One per worker thread. The mutex is uncontended on worker threads; it is there because pool 0
// also serves every thread outside the worker pool (startup code, tests with their own
// io_context), and those may run at the same time as worker 0.
struct RedisClient::Pool {
  std::mutex mutex;
  std::vector<std::unique_ptr<RedisConnection>> idle;
};

RedisClient::RedisClient(RedisUrl url, RedisOptions options, std::size_t worker_count)
    : url_(std::move(url)), options_(options) {
  for (std::size_t i = 0; i < std::max<std::size_t>(worker_count, 1); ++i)
    pools_.push_back(std::make_unique<Pool>());
}

RedisClient::~RedisClient() = default;

void RedisClient::close_idle() {
  for (auto& pool : pools_) {
    std::lock_guard lock(pool->mutex);
    pool->idle.clear();
  }
}

std::unique_ptr<RedisConnection> RedisClient::borrow(const asio::any_io_executor& executor) {
  auto& pool = *pools_[http::WorkerPool::current_index() % pools_.size()];
  std::lock_guard lock(pool.mutex);
  for (auto it = pool.idle.end(); it != pool.idle.begin();) {
    --it;
    // A socket belongs to the io_context it was opened on: another thread's connection in the
    // shared pool 0 is left alone.
    if ((*it)->socket.get_executor() != executor) continue;
    auto connection = std::move(*it);
    it = pool.idle.erase(it);
    if (connection->looks_reusable()) return connection;
  }
  return nullptr;
}

void RedisClient::release(std::unique_ptr<RedisConnection> connection) {
  auto& pool = *pools_[http::WorkerPool::current_index() % pools_.size()];
  std::lock_guard lock(pool.mutex);
  if (pool.idle.size() < options_.max_idle_per_worker) pool.idle.push_back(std::move(connection));
}

awaitable<RedisResult> RedisClient::command(std::vector<std::string> args) {
  RedisResult result;
  if (args.empty()) {
    result.error = "redis " + url_.endpoint() + ": empty command";
    co_return result;
  }
  auto connection = borrow(co_await asio::this_coro::executor);
  if (!connection) {
    auto [fresh, error] = co_await open_connection(url_, options_, true);
    if (!fresh) {
      result.error = std::move(error);
      co_return result;
    }
    connection = std::move(fresh);
  }
  // No retry on failure: the command may have run (a rate limit script took its tokens) even
  // though its reply was lost, and only the caller knows whether running it twice is harmless.
  if (auto error = co_await connection->round_trip(encode_command(args), options_.command_timeout,
                                                   result.reply);
      !error.empty()) {
    // Only the command name: arguments may be secrets or payloads.
    result.error = "redis " + url_.endpoint() + ": " + args.front() + " " + error;
    result.reply = {};
    co_return result;
  }
  release(std::move(connection));
  co_return result;
}

awaitable<RedisResult> RedisClient::run_script(const RedisScript& script,
                                               std::vector<std::string> keys,
                                               std::vector<std::string> args) {
  std::vector<std::string> call;
  call.reserve(3 + keys.size() + args.size());
  call.push_back("EVALSHA");
  call.push_back(script.sha1);
  call.push_back(std::to_string(keys.size()));
  std::move(keys.begin(), keys.end(), std::back_inserter(call));
  std::move(args.begin(), args.end(), std::back_inserter(call));
  auto result = co_await command(call);
  if (result.ok() && result.reply.kind == RedisReply::Kind::error &&
      result.reply.text.starts_with("NOSCRIPT")) {
    call[0] = "EVAL";
    call[1] = script.source;
    result = co_await command(std::move(call));
  }
  co_return result;
}

// ---- subscriber -----------------------------------------------------------------------------

namespace {
constexpr auto min_backoff = std::chrono::milliseconds(100);
constexpr auto max_backoff = std::chrono::milliseconds(5'000);
}  // namespace

struct RedisSubscriber::State {
  RedisUrl url;
  RedisOptions options;
  std::vector<std::string> channels;
  Handler on_message;

  std::atomic<bool> stopped{false};
  std::atomic<bool> subscribed{false};
  // Held while on_message runs, and by stop() while it sets `stopped`: once stop() returns, no
  // call is running or will start. Recursive so that on_message may call stop() itself.
  std::recursive_mutex delivery;
  // Emitted on the executor only (cancellation signals are not thread-safe).
  asio::cancellation_signal cancel;
  std::optional<asio::any_io_executor> executor;

  // Outage bookkeeping, touched by the running coroutine only.
  bool in_outage = false;
  std::chrono::milliseconds backoff = min_backoff;

  void deliver(std::string_view channel, std::string_view message) {
    std::lock_guard lock(delivery);
    if (stopped) return;
    try {
      on_message(channel, message);
    } catch (const std::exception& error) {
      // One bad message must not end the subscription every replica relies on.
      log::error("redis subscriber ", url.to_string(), ": message handler failed: ", error.what());
    }
  }

  // A message is ["message", channel, payload]; everything else (confirmations, PING answers)
  // needs no action.
  void dispatch(const RedisReply& reply) {
    if (reply.kind != RedisReply::Kind::array || reply.elements.size() != 3) return;
    if (reply.elements[0].text != "message") return;
    deliver(reply.elements[1].text, reply.elements[2].text);
  }

  awaitable<std::string> confirm_subscriptions(RedisConnection& connection) {
    std::size_t confirmed = 0;
    while (confirmed < channels.size()) {
      RedisReply reply;
      if (auto error = co_await connection.read_reply(reply); !error.empty()) co_return error;
      if (reply.kind == RedisReply::Kind::error) co_return "SUBSCRIBE failed: " + reply.text;
      if (reply.kind == RedisReply::Kind::array && !reply.elements.empty() &&
          reply.elements[0].text == "subscribe") {
        ++confirmed;
      } else {
        dispatch(reply);
      }
    }
    co_return std::string();
  }

  awaitable<std::string> read_messages(RedisConnection& connection) {
    for (;;) {
      RedisReply reply;
      if (auto error = co_await connection.read_reply(reply); !error.empty()) co_return error;
      if (reply.kind == RedisReply::Kind::error) co_return "error from the server: " + reply.text;
      dispatch(reply);
    }
  }

  // A subscriber only reads, so a server that vanished without closing the connection (a node
  // lost, a partition) would go unnoticed forever: a quiet connection is probed with PING.
  awaitable<std::string> probe_when_quiet(RedisConnection& connection) {
    const auto quiet_limit = options.subscriber_ping_after;
    const std::string ping = encode_command(std::vector<std::string>(1, "PING"));
    asio::steady_timer timer(connection.socket.get_executor());
    for (;;) {
      timer.expires_at(connection.last_activity + quiet_limit);
      if (auto [ec] = co_await timer.async_wait(use_nothrow); ec) co_return describe(ec);
      const auto quiet_since = connection.last_activity;
      if (std::chrono::steady_clock::now() - quiet_since < quiet_limit) continue;
      auto [write_ec, n] =
          co_await asio::async_write(connection.socket, asio::buffer(ping), use_nothrow);
      if (write_ec) co_return "cannot send PING: " + describe(write_ec);
      timer.expires_after(options.command_timeout);
      if (auto [ec] = co_await timer.async_wait(use_nothrow); ec) co_return describe(ec);
      if (connection.last_activity == quiet_since) {
        co_return "no answer to PING within " + milliseconds_text(options.command_timeout);
      }
    }
  }

  // One connection's life: connect, subscribe, deliver until it fails. Returns why it ended.
  awaitable<std::string> session() {
    auto [connection, error] = co_await open_connection(url, options, false);
    if (!connection) co_return std::move(error);
    const std::string where = "redis " + url.endpoint() + ": ";
    if (stopped) co_return std::string();

    std::vector<std::string> subscribe(1, "SUBSCRIBE");
    subscribe.insert(subscribe.end(), channels.begin(), channels.end());
    const std::string wire = encode_command(subscribe);
    auto [write_ec, n] =
        co_await asio::async_write(connection->socket, asio::buffer(wire), use_nothrow);
    if (write_ec) co_return where + "cannot send SUBSCRIBE: " + describe(write_ec);
    asio::steady_timer timer(connection->socket.get_executor(), options.command_timeout);
    auto confirmation =
        co_await (confirm_subscriptions(*connection) || timer.async_wait(use_nothrow));
    if (confirmation.index() == 1) {
      co_return where + "SUBSCRIBE timed out: no confirmation within " +
          milliseconds_text(options.command_timeout);
    }
    if (auto& failure = std::get<0>(confirmation); !failure.empty()) co_return where + failure;

    subscribed = true;
    backoff = min_backoff;
    if (in_outage) {
      log::info("redis subscriber: subscribed again to ", channels.size(), " channel(s) on ",
                url.to_string());
      in_outage = false;
    }
    auto ended = co_await (read_messages(*connection) || probe_when_quiet(*connection));
    co_return where + std::visit([](std::string& why) { return std::move(why); }, ended);
  }
};

awaitable<void> RedisSubscriber::run(std::shared_ptr<State> state) {
  asio::steady_timer pause(co_await asio::this_coro::executor);
  while (!state->stopped) {
    std::string error = co_await state->session();
    state->subscribed = false;
    if (state->stopped) break;
    if (!state->in_outage) {
      log::warn("redis subscriber: ", error, "; reconnecting with backoff up to ",
                milliseconds_text(max_backoff));
      state->in_outage = true;
    } else {
      log::debug("redis subscriber: ", error);
    }
    pause.expires_after(state->backoff);
    co_await pause.async_wait(use_nothrow);
    state->backoff = std::min(state->backoff * 2, max_backoff);
  }
}

RedisSubscriber::RedisSubscriber(RedisUrl url, RedisOptions options,
                                 std::vector<std::string> channels, Handler on_message)
    : state_(std::make_shared<State>()) {
  state_->url = std::move(url);
  state_->options = options;
  state_->channels = std::move(channels);
  state_->on_message = std::move(on_message);
}

RedisSubscriber::~RedisSubscriber() {
  stop();
}

void RedisSubscriber::start(asio::any_io_executor executor) {
  if (state_->executor || state_->stopped) return;
  if (state_->channels.empty()) {
    log::warn("redis subscriber ", state_->url.to_string(), ": no channels to subscribe to");
    return;
  }
  state_->executor = executor;
  asio::co_spawn(executor, run(state_),
                 asio::bind_cancellation_slot(
                     state_->cancel.slot(), [state = state_](std::exception_ptr failure) {
                       // Cancellation by stop() may surface as an exception; anything else is a
                       // bug worth a log line, since approvals stop flowing between replicas.
                       if (!failure || state->stopped) return;
                       try {
                         std::rethrow_exception(failure);
                       } catch (const std::exception& error) {
                         log::error("redis subscriber ", state->url.to_string(),
                                    ": stopped unexpectedly: ", error.what());
                       }
                     }));
}

void RedisSubscriber::stop() {
  {
    std::lock_guard lock(state_->delivery);
    if (state_->stopped.exchange(true)) return;
  }
  state_->subscribed = false;
  if (state_->executor) {
    asio::post(*state_->executor,
               [state = state_] { state->cancel.emit(asio::cancellation_type::terminal); });
  }
}

bool RedisSubscriber::subscribed() const {
  return state_->subscribed;
}

}  // namespace membrane::cluster
