// One child process of a stdio upstream (StdioInstance: spawned for a session, or shared by the
// stateless requests of many clients; its stdin writer and stdout/stderr readers, the requests in
// flight and where their messages go) and the bounded delivery of those messages to their readers
// (Delivery, DeliveryStream). Only stdio_upstream.cpp, which owns the instances, includes this.
#pragma once

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/listen.hpp"
#include "membrane/mcp/protocol.hpp"
#include "upstream/factory.hpp"

namespace membrane::upstream::stdio {

using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

// The messages of one request (or of the listen stream) on their way from the child to their
// reader, bounded in count (limits.max_buffered_messages) and in bytes (limits.max_stream_buffer):
// a reader that falls behind pauses the reading of the child's stdout, so the child blocks on a
// full pipe, as TCP back-pressure pauses an HTTP upstream. One message larger than the byte bound
// still passes alone (limits.max_upstream_message bounds it).
class Delivery {
 public:
  using Channel = asio::experimental::concurrent_channel<void(error_code, StreamRead)>;

  Delivery(const asio::any_io_executor& consumer, std::size_t max_messages, std::size_t max_bytes)
      : messages_(consumer, max_messages), space_(consumer, 1), max_bytes_(max_bytes) {}

  // Waits for room. Fails (an error) once the reader is gone.
  awaitable<error_code> send(StreamRead read) {
    const std::size_t size = read.event.data.size();
    for (;;) {
      const std::size_t queued = queued_bytes_.load(std::memory_order_acquire);
      if (queued == 0 || size == 0 || queued + size <= max_bytes_) break;
      // The reader signals after each message it takes; a signal sent between the check and
      // this wait stays in the one-slot channel, so none is lost.
      if (auto [ec] = co_await space_.async_receive(use_nothrow); ec) co_return ec;
    }
    queued_bytes_.fetch_add(size, std::memory_order_acq_rel);
    auto [ec] = co_await messages_.async_send(error_code(), std::move(read), use_nothrow);
    if (ec) queued_bytes_.fetch_sub(size, std::memory_order_acq_rel);
    co_return ec;
  }

  // Without waiting: for the messages kept while nobody listened (bounded already) and the end.
  bool try_send(StreamRead read) {
    const std::size_t size = read.event.data.size();
    queued_bytes_.fetch_add(size, std::memory_order_acq_rel);
    if (messages_.try_send(error_code(), std::move(read))) return true;
    queued_bytes_.fetch_sub(size, std::memory_order_acq_rel);
    return false;
  }

  // The reader's side: receive from channel(), then report what was taken.
  Channel& channel() { return messages_; }
  void taken(const StreamRead& read) {
    queued_bytes_.fetch_sub(read.event.data.size(), std::memory_order_acq_rel);
    space_.try_send(error_code());
  }

  void close() {
    messages_.close();
    space_.close();
  }

 private:
  Channel messages_;
  asio::experimental::concurrent_channel<void(error_code)> space_;
  const std::size_t max_bytes_;
  std::atomic<std::size_t> queued_bytes_{0};
};

inline StreamRead message_read(std::string line) {
  StreamRead read;
  read.status = ReadStatus::message;
  read.event.data = std::move(line);
  return read;
}

inline StreamRead failed_read(std::string reason) {
  StreamRead read;
  read.status = ReadStatus::failed;
  read.error = std::move(reason);
  return read;
}

inline StreamRead end_read() {
  return StreamRead{};
}

// The consumer side of a Delivery channel. Closing it tells the producer nobody listens any more.
// A request's stream also has a quiet limit: when the child sends nothing for it that long,
// `on_quiet` gives up on the request (and says why) instead of waiting forever.
class DeliveryStream final : public ReplyStream {
 public:
  DeliveryStream(std::shared_ptr<Delivery> channel, std::function<void()> on_close,
                 std::chrono::milliseconds quiet_limit = {},
                 std::function<std::string()> on_quiet = {})
      : channel_(std::move(channel)),
        on_close_(std::move(on_close)),
        quiet_limit_(quiet_limit),
        on_quiet_(std::move(on_quiet)) {}
  ~DeliveryStream() override {
    channel_->close();
    if (on_close_) on_close_();
  }

  // From now on the stream may stay quiet this long (0: for ever).
  void set_quiet_limit(std::chrono::milliseconds limit) { quiet_limit_ = limit; }

  // Returns a message already read to the front of the stream: next() gives it again.
  void put_back(StreamRead read) {
    ended_ = false;
    put_back_ = std::move(read);
  }

  awaitable<StreamRead> next() override {
    if (put_back_) {
      StreamRead read = std::move(*put_back_);
      put_back_.reset();
      ended_ = read.status != ReadStatus::message;
      co_return read;
    }
    if (ended_) co_return end_read();
    error_code ec;
    StreamRead read;
    if (quiet_limit_.count() > 0) {
      asio::steady_timer quiet(co_await asio::this_coro::executor, quiet_limit_);
      auto outcome = co_await (channel_->channel().async_receive(use_nothrow) ||
                               quiet.async_wait(use_nothrow));
      if (outcome.index() == 1) {
        ended_ = true;
        co_return failed_read(on_quiet_());
      }
      std::tie(ec, read) = std::move(std::get<0>(outcome));
    } else {
      std::tie(ec, read) = co_await channel_->channel().async_receive(use_nothrow);
    }
    if (!ec) channel_->taken(read);
    if (ec) {
      ended_ = true;
      co_return end_read();
    }
    if (read.status != ReadStatus::message) ended_ = true;
    co_return read;
  }

  void abort() override { channel_->close(); }

 private:
  std::shared_ptr<Delivery> channel_;
  std::function<void()> on_close_;
  std::chrono::milliseconds quiet_limit_;
  std::function<std::string()> on_quiet_;
  bool ended_ = false;
  std::optional<StreamRead> put_back_;
};

// How a child is spoken to. A session child serves one client, in that client's id space. A
// shared child serves the stateless (2026-07-28) requests of every client: no session ties them
// together, so each request goes out under an id of the gateway's (two clients may both send id
// 1), and what comes back about it returns under the client's own id.
enum class ChildRole { session, shared };

// A request written to a shared child: where its messages go, and the line to write.
struct SharedRequest {
  std::shared_ptr<Delivery> channel;
  mcp::Json wire_id;
  std::string line;
};

class StdioInstance : public std::enable_shared_from_this<StdioInstance> {
 public:
  enum class State { starting, ready, failed, dead };

  StdioInstance(const StdioUpstreamOptions& options, std::string id, std::string caller,
                asio::any_io_executor executor, ChildRole role = ChildRole::session)
      : options_(options),
        id_(std::move(id)),
        caller_(std::move(caller)),
        role_(role),
        executor_(std::move(executor)),
        outgoing_(executor_, 256),
        ready_signal_(executor_, 0),
        idle_timer_(executor_),
        last_activity_(Clock::now().time_since_epoch().count()) {}

  const std::string& id() const { return id_; }
  const std::string& caller() const { return caller_; }
  ChildRole role() const { return role_; }
  const asio::any_io_executor& executor() const { return executor_; }

  // Serving a request or a listen stream: not to be stopped to make room.
  bool busy() const {
    std::lock_guard lock(mutex_);
    return state_ == State::starting || !pending_.empty() || listener_ != nullptr;
  }
  Clock::time_point last_activity() const {
    return Clock::time_point(Clock::duration(last_activity_.load()));
  }
  pid_t pid() const { return pid_.load(); }

  State state() const {
    std::lock_guard lock(mutex_);
    return state_;
  }
  std::string failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

  // Spawns the child and its I/O coroutines. Runs on executor_.
  std::string spawn() {
    std::string error;
    child_ = ChildProcess::spawn(executor_, options_.command, error);
    if (!child_) return error;
    pid_ = child_->pid();
    started_at_ = Clock::now();
    log::info("upstream '", options_.name, "': started ", options_.command.program, " (pid ",
              child_->pid(), ") for ",
              role_ == ChildRole::shared ? "2026-07-28 requests" : "session " + short_id());
    auto self = shared_from_this();
    asio::co_spawn(
        executor_, [self]() { return self->read_stdout(); }, asio::detached);
    asio::co_spawn(
        executor_, [self]() { return self->read_stderr(); }, asio::detached);
    asio::co_spawn(
        executor_, [self]() { return self->write_stdin(); }, asio::detached);
    asio::co_spawn(
        executor_, [self]() { return self->watch_idle(); }, asio::detached);
    return {};
  }

  void mark(State state, std::string failure = {}) {
    {
      std::lock_guard lock(mutex_);
      if (state_ == State::dead && state != State::dead) return;
      state_ = state;
      if (!failure.empty()) failure_ = std::move(failure);
    }
    if (state != State::starting) ready_signal_.close();
  }

  // Resolves once the instance has left `starting`.
  awaitable<State> wait_ready() {
    if (state() == State::starting) co_await ready_signal_.async_receive(use_nothrow);
    co_return state();
  }

  awaitable<bool> write_line(std::string line) {
    touch();
    auto [ec] = co_await outgoing_.async_send(error_code(), std::move(line), use_nothrow);
    co_return !ec;
  }

  // Registers a request so its response and related messages flow to the returned stream.
  // Returns null when the child is already gone.
  std::shared_ptr<Delivery> register_request(const mcp::Message& request,
                                             const asio::any_io_executor& consumer) {
    auto channel = std::make_shared<Delivery>(consumer, options_.max_buffered_messages,
                                              options_.max_buffered_bytes);
    std::lock_guard lock(mutex_);
    if (state_ == State::dead || state_ == State::failed) return nullptr;
    const std::string key = mcp::id_key(request.id());
    Pending pending;
    pending.channel = channel;
    if (const auto* token = request.progress_token()) {
      pending.progress_key = mcp::id_key(*token);
      progress_routes_[pending.progress_key] = key;
    }
    pending_[key] = std::move(pending);
    request_order_.push_back(key);
    return channel;
  }

  // A shared child's request: it goes out under a fresh id of the gateway's, and so does its
  // progress token (two clients' tokens may be equal too). `body` is what the client sent (after
  // the filters). Returns a null channel when the child is already gone.
  SharedRequest register_shared_request(mcp::Json body, std::string caller,
                                        const asio::any_io_executor& consumer) {
    SharedRequest request;
    auto channel = std::make_shared<Delivery>(consumer, options_.max_buffered_messages,
                                              options_.max_buffered_bytes);
    Pending pending;
    pending.channel = channel;
    pending.client_id = body["id"];
    pending.caller = std::move(caller);
    pending.listen = body.value("method", std::string()) == "subscriptions/listen";
    request.wire_id = "membrane-" + std::to_string(next_wire_id_.fetch_add(1));
    pending.wire_id = request.wire_id;
    body["id"] = request.wire_id;
    const std::string key = mcp::id_key(request.wire_id);
    if (auto params = body.find("params"); params != body.end() && params->is_object()) {
      if (auto meta = params->find("_meta"); meta != params->end() && meta->is_object()) {
        if (auto token = meta->find("progressToken"); token != meta->end()) {
          pending.client_progress_token = std::exchange(*token, request.wire_id);
          pending.progress_key = key;
        }
      }
    }
    request.line = dump(body);
    std::lock_guard lock(mutex_);
    if (state_ == State::dead || state_ == State::failed) return request;
    if (!pending.progress_key.empty()) progress_routes_[pending.progress_key] = key;
    pending_[key] = std::move(pending);
    request_order_.push_back(key);
    request.channel = std::move(channel);
    return request;
  }

  // The wire id of `caller`'s request in flight that the client knows as `client_id`: a client's
  // notifications/cancelled names its own id. Null when there is none.
  mcp::Json wire_id_of(const std::string& caller, const mcp::Json& client_id) const {
    std::lock_guard lock(mutex_);
    for (const auto& [key, pending] : pending_) {
      if (pending.caller == caller && pending.client_id == client_id) return pending.wire_id;
    }
    return nullptr;
  }

  void forget_request(const std::string& key) {
    std::lock_guard lock(mutex_);
    drop_pending_locked(key);
  }

  // The reader of a request's stream is gone: the answer was delivered, or the client left first.
  // A request still unanswered is then cancelled at the child, as the client would have done
  // (MCP cancellation; initialize may not be cancelled): the child cannot see the client leave,
  // and its answer would have nowhere to go.
  void abandon_request(const std::string& key, const mcp::Json& id, bool cancellable) {
    bool unanswered = false;
    {
      std::lock_guard lock(mutex_);
      unanswered = pending_.contains(key);
      drop_pending_locked(key);
    }
    if (unanswered && cancellable) send_cancelled(id, "the client went away before the answer");
  }

  // Gives up on a request the child did not answer in time: it stops routing its messages and
  // tells the child, as a client would (MCP cancellation), so the server can stop working on it.
  void cancel_request(const std::string& key, const mcp::Json& id, std::string_view reason) {
    forget_request(key);
    send_cancelled(id, reason);
  }

  void send_cancelled(const mcp::Json& id, std::string_view reason) {
    const mcp::Json cancelled = {{"jsonrpc", "2.0"},
                                 {"method", "notifications/cancelled"},
                                 {"params", {{"requestId", id}, {"reason", std::string(reason)}}}};
    outgoing_.try_send(error_code(),
                       cancelled.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
  }

  // The server-initiated stream (GET / legacy SSE). A new listener replaces the old one, which
  // ends; messages that arrived while nobody listened are delivered first.
  std::shared_ptr<Delivery> attach_listener(const asio::any_io_executor& consumer) {
    auto channel = std::make_shared<Delivery>(consumer, options_.max_buffered_messages,
                                              options_.max_buffered_bytes);
    std::shared_ptr<Delivery> previous;
    {
      std::lock_guard lock(mutex_);
      previous = std::exchange(listener_, channel);
      if (const auto dropped = std::exchange(backlog_dropped_, 0))
        log::warn("upstream '", options_.name, "' [pid ", pid(), "]: dropped ", dropped,
                  " message(s) sent while no stream listened; the newest ", backlog_.size(),
                  " are delivered");
      while (!backlog_.empty()) {
        backlog_bytes_ -= backlog_.front().size();
        channel->try_send(message_read(std::move(backlog_.front())));
        backlog_.pop_front();
      }
    }
    if (previous) previous->try_send(end_read());
    touch();
    return channel;
  }

  void detach_listener(const std::shared_ptr<Delivery>& channel) {
    std::lock_guard lock(mutex_);
    if (listener_ == channel) listener_.reset();
  }

  // Ends the child. Runs on executor_.
  awaitable<void> stop(std::string reason) {
    mark(State::dead, reason);
    stopping_ = true;
    idle_timer_.cancel();
    outgoing_.close();
    if (!child_) co_return;
    const int status = co_await child_->stop(options_.shutdown_grace);
    log::info("upstream '", options_.name, "': pid ", child_->pid(), " ",
              ChildProcess::describe_status(status), " (", reason, ")");
  }

  // Set by the owner so a crash can be reported (for restart backoff) and the idle stop can
  // remove the instance from the registry.
  std::function<void(const std::shared_ptr<StdioInstance>&, bool crashed, Clock::duration lived)>
      on_exit;

 private:
  struct Pending {
    std::shared_ptr<Delivery> channel;
    std::string progress_key;
    // Shared child only: what the client called the request and its progress token (the wire
    // carries the gateway's), who sent it, and whether it is a subscriptions/listen.
    mcp::Json client_id;
    mcp::Json wire_id;
    mcp::Json client_progress_token;
    std::string caller;
    bool listen = false;
  };

  std::string short_id() const { return id_.substr(0, 8); }
  void touch() { last_activity_.store(Clock::now().time_since_epoch().count()); }

  void drop_pending_locked(const std::string& key) {
    const auto it = pending_.find(key);
    if (it == pending_.end()) return;
    if (!it->second.progress_key.empty()) progress_routes_.erase(it->second.progress_key);
    pending_.erase(it);
    std::erase(request_order_, key);
  }

  awaitable<void> write_stdin() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, line] = co_await outgoing_.async_receive(use_nothrow);
      if (ec) break;
      line.push_back('\n');
      auto [write_ec, n] =
          co_await asio::async_write(child_->input(), asio::buffer(line), use_nothrow);
      if (write_ec) {
        // Stopping closes the pipe under a write in flight: nothing to report then.
        if (!stopping_)
          log::warn("upstream '", options_.name, "': cannot write to pid ", child_->pid(), ": ",
                    write_ec.message());
        break;
      }
    }
  }

  awaitable<void> read_stderr() {
    auto self = shared_from_this();
    asio::streambuf buffer(64 * 1024);
    for (;;) {
      auto [ec, n] = co_await asio::async_read_until(child_->errors(), buffer, '\n', use_nothrow);
      if (ec && n == 0) {
        if (ec == asio::error::not_found) {  // a line longer than the buffer: log what we have
          n = buffer.size();
        } else {
          break;
        }
      }
      std::string line(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n);
      buffer.consume(n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
      if (!line.empty()) log::info("upstream '", options_.name, "' [pid ", pid(), "] ", line);
    }
  }

  awaitable<void> read_stdout() {
    auto self = shared_from_this();
    asio::streambuf buffer(options_.max_message_bytes);
    std::string exit_reason;
    // The child broke the protocol in a way that leaves its requests unanswerable: it is
    // stopped at once and the reason is what its callers are told.
    bool broke_protocol = false;
    for (;;) {
      auto [ec, n] = co_await asio::async_read_until(child_->output(), buffer, '\n', use_nothrow);
      if (ec) {
        broke_protocol = ec == asio::error::not_found;
        exit_reason = broke_protocol ? "sent a message too large: more than " +
                                           std::to_string(options_.max_message_bytes) +
                                           " bytes on one line (limits.max_upstream_message)"
                                     : "closed its output";
        break;
      }
      std::string line(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n);
      buffer.consume(n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
      if (line.empty()) continue;
      touch();
      if (std::string violation = co_await deliver(std::move(line)); !violation.empty()) {
        broke_protocol = true;
        exit_reason = std::move(violation);
        break;
      }
    }

    const bool requested = stopping_;
    // A child whose output can no longer be read in step is stopped now, not after a grace
    // period in which its requests would wait for answers that cannot arrive.
    std::optional<int> status;
    if (!broke_protocol) status = co_await child_->wait_for_exit(options_.shutdown_grace);
    if (!status) status = co_await child_->stop(options_.shutdown_grace);
    const std::string description = ChildProcess::describe_status(*status);
    const auto lived = Clock::now() - started_at_;
    if (!requested) {
      log::warn("upstream '", options_.name, "': pid ", child_->pid(), " ", exit_reason, " and ",
                description);
    }
    mark(State::dead, "upstream '" + options_.name + "' " + description);
    outgoing_.close();
    idle_timer_.cancel();
    // Built as a named value: GCC 12 mis-destroys class temporaries from a conditional
    // expression inside a co_await expression.
    std::string failure = "upstream '" + options_.name + "' ";
    if (broke_protocol)
      failure += exit_reason + "; the process was stopped";
    else
      failure += (requested ? std::string("session ended") : "process " + description) +
                 " before responding";
    co_await fail_everything(std::move(failure));
    if (on_exit) on_exit(self, !requested, lived);
  }

  awaitable<void> fail_everything(std::string reason) {
    std::vector<std::shared_ptr<Delivery>> requests;
    std::shared_ptr<Delivery> listener;
    {
      std::lock_guard lock(mutex_);
      for (auto& [key, pending] : pending_)
        requests.push_back(pending.channel);
      pending_.clear();
      progress_routes_.clear();
      request_order_.clear();
      listener = std::exchange(listener_, nullptr);
    }
    for (auto& channel : requests)
      co_await channel->send(failed_read(reason));
    if (listener) co_await listener->send(end_read());
  }

  awaitable<void> watch_idle() {
    auto self = shared_from_this();
    const auto idle_limit = options_.session_idle;
    const auto period = std::max<Clock::duration>(
        std::chrono::milliseconds(50),
        std::min<Clock::duration>(idle_limit / 4, std::chrono::seconds(30)));
    while (!stopping_) {
      idle_timer_.expires_after(period);
      auto [ec] = co_await idle_timer_.async_wait(use_nothrow);
      if (ec || stopping_) co_return;
      const auto idle_for =
          Clock::now() - Clock::time_point(Clock::duration(last_activity_.load()));
      bool busy;
      {
        std::lock_guard lock(mutex_);
        busy = !pending_.empty() || listener_ != nullptr;
      }
      if (!busy && idle_for >= idle_limit) {
        // The session stays valid: its next request starts a fresh child from the sealed id.
        co_await stop(
            "idle for " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(idle_for).count()) +
            " s");
        co_return;
      }
    }
  }

  // Routes one message from the child to the stream waiting for it. MCP over stdio carries no
  // "related request" information, so: a response goes to its request; a progress notification
  // to the request that issued its token; anything else to the only request in flight, or the
  // listen stream, or the newest request, or a bounded backlog for the next listener.
  // Returns why the child must be stopped, or nothing.
  awaitable<std::string> deliver(std::string line) {
    // Deeper than the gateway reads: whatever it answers would be lost and its callers would
    // wait for it.
    if (const auto limit = json::max_depth(); json::nesting_depth(line, limit) > limit)
      co_return "sent a message that cannot be read (" + json::too_deep_message(limit) + ")";
    auto parsed = mcp::parse_message(line);
    if (!parsed.message) {
      // Other stray lines (a banner, a log line on stdout) are a nuisance, not fatal.
      log::warn("upstream '", options_.name, "' [pid ", pid(),
                "] wrote a line that is not JSON-RPC (", parsed.error.message,
                "): ", line.substr(0, 200));
      co_return std::string();
    }
    const auto& message = *parsed.message;
    std::shared_ptr<Delivery> target;
    bool is_final = false;
    {
      std::lock_guard lock(mutex_);
      if (message.is_response()) {
        const std::string key = mcp::id_key(message.id());
        if (const auto it = pending_.find(key); it != pending_.end()) {
          target = it->second.channel;
          is_final = true;
          if (!it->second.client_id.is_null()) {
            mcp::Json body = message.body();
            body["id"] = it->second.client_id;
            line = dump(body);
          }
          drop_pending_locked(key);
        }
      } else if (role_ == ChildRole::shared) {
        target = shared_route_locked(message, line);
        if (!target) {
          if (message.is_request()) {
            // A 2026-07-28 server never asks mid-request (it returns input_required); nobody
            // could answer this one, and the child must not wait for an answer forever.
            outgoing_.try_send(
                error_code(),
                mcp::make_error_response(
                    message.id(), mcp::error_code::method_not_found,
                    "Method not found: a stateless (2026-07-28) child is not sent requests' "
                    "answers; ask with input_required"));
          }
          log::debug("upstream '", options_.name, "' [pid ", pid(), "]: ", message.method(),
                     " belongs to no request in flight; dropped");
          co_return std::string();
        }
      } else {
        if (message.method() == "notifications/progress") {
          if (const auto* params = message.params(); params && params->contains("progressToken")) {
            const auto route = progress_routes_.find(mcp::id_key((*params)["progressToken"]));
            if (route != progress_routes_.end()) target = pending_[route->second].channel;
          }
        }
        if (!target) {
          if (pending_.size() == 1)
            target = pending_.begin()->second.channel;
          else if (listener_)
            target = listener_;
          else if (!request_order_.empty())
            target = pending_[request_order_.back()].channel;
        }
      }
      if (!target) {
        if (message.is_response()) {
          log::debug("upstream '", options_.name, "': response to unknown request ",
                     message.id().dump(), " dropped");
          co_return std::string();
        }
        keep_for_listener_locked(std::move(line));
        co_return std::string();
      }
    }
    if (auto ec = co_await target->send(message_read(line)); ec) {
      // Its consumer went away (client disconnected). Not a cancellation (MCP transports): the
      // message is kept for the listen stream unless it was a response nobody waits for.
      if (!message.is_response()) {
        std::lock_guard lock(mutex_);
        keep_for_listener_locked(std::move(line));
      }
      co_return std::string();
    }
    if (is_final) co_await target->send(end_read());
    co_return std::string();
  }

  // Where a shared child's notification goes, rewritten to the client's ids: progress to the
  // request that issued its token, one tagged with a subscription id to that listen, anything
  // else (a log line) to the one call in flight when there is exactly one. With several clients'
  // calls in flight an untagged line could belong to any of them, and one client must never see
  // another's: it is dropped. Called with mutex_ held.
  std::shared_ptr<Delivery> shared_route_locked(const mcp::Message& message, std::string& line) {
    const mcp::Json* params = message.params();
    if (message.method() == "notifications/progress") {
      const auto token = params ? params->find("progressToken") : mcp::Json::const_iterator();
      if (!params || token == params->end()) return nullptr;
      const auto route = progress_routes_.find(mcp::id_key(*token));
      if (route == progress_routes_.end()) return nullptr;
      const Pending& pending = pending_.at(route->second);
      mcp::Json body = message.body();
      body["params"]["progressToken"] = pending.client_progress_token;
      line = dump(body);
      return pending.channel;
    }
    if (params) {
      if (const auto meta = params->find("_meta"); meta != params->end() && meta->is_object()) {
        if (const auto tag = meta->find(mcp::meta::subscription_id); tag != meta->end()) {
          const auto listen = pending_.find(mcp::id_key(*tag));
          if (listen == pending_.end()) return nullptr;
          mcp::Json body = message.body();
          body["params"]["_meta"][std::string(mcp::meta::subscription_id)] =
              listen->second.client_id;
          line = dump(body);
          return listen->second.channel;
        }
      }
    }
    if (message.is_request()) return nullptr;
    const Pending* only_call = nullptr;
    for (const auto& [key, pending] : pending_) {
      if (pending.listen) continue;
      if (only_call) return nullptr;
      only_call = &pending;
    }
    return only_call ? only_call->channel : nullptr;
  }

  static std::string dump(const mcp::Json& body) {
    return body.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  }

  // Keeps a server message nobody listens for until a listen stream opens, dropping the oldest
  // beyond limits.max_buffered_messages or limits.max_stream_buffer. Called with mutex_ held.
  // A chatty child costs two log lines, not one per message: one when dropping starts, and the
  // count when a listen stream opens (attach_listener).
  void keep_for_listener_locked(std::string line) {
    while (!backlog_.empty() && (backlog_.size() >= options_.max_buffered_messages ||
                                 backlog_bytes_ + line.size() > options_.max_buffered_bytes)) {
      backlog_bytes_ -= backlog_.front().size();
      backlog_.pop_front();
      if (backlog_dropped_++ == 0)
        log::warn("upstream '", options_.name, "' [pid ", pid(),
                  "]: no stream is listening and its messages fill limits.max_buffered_messages / "
                  "max_stream_buffer; dropping the oldest");
    }
    backlog_bytes_ += line.size();
    backlog_.push_back(std::move(line));
  }

  const StdioUpstreamOptions& options_;
  const std::string id_;
  const std::string caller_;
  const ChildRole role_;
  const asio::any_io_executor executor_;
  std::unique_ptr<ChildProcess> child_;
  std::atomic<pid_t> pid_{0};
  Clock::time_point started_at_;
  asio::experimental::concurrent_channel<void(error_code, std::string)> outgoing_;
  asio::experimental::concurrent_channel<void(error_code)> ready_signal_;
  asio::steady_timer idle_timer_;
  std::atomic<Clock::rep> last_activity_;
  bool stopping_ = false;  // executor_ only

  mutable std::mutex mutex_;
  State state_ = State::starting;
  std::string failure_;
  std::unordered_map<std::string, Pending> pending_;
  std::unordered_map<std::string, std::string> progress_routes_;
  std::atomic<std::uint64_t> next_wire_id_{1};
  std::vector<std::string> request_order_;
  std::shared_ptr<Delivery> listener_;
  std::deque<std::string> backlog_;  // for the next listener; within both buffer limits
  std::size_t backlog_bytes_ = 0;
  std::size_t backlog_dropped_ = 0;  // since the last listen stream opened
};

}  // namespace membrane::upstream::stdio
