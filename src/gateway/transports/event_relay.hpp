// Relaying an upstream reply stream to a downstream SSE response, event by event, as events
// arrive: a reader coroutine pulls from the upstream while the writer waits for "next event or
// keep-alive tick", so a quiet stream still proves it is alive and a dead client is noticed.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "gateway/exchange/runner.hpp"
#include "http/server.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway {

class EventPump {
 public:
  enum class Kind { message, end, failed, tick, cancelled };
  struct Read {
    Kind kind = Kind::end;
    upstream::StreamRead read;
  };

  // Starts reading `stream` on the calling coroutine's executor.
  static awaitable<std::shared_ptr<EventPump>> start(std::unique_ptr<upstream::ReplyStream> stream);
  // A pump with no stream of its own, fed only by inject() until stopped.
  static awaitable<std::shared_ptr<EventPump>> start_fed();
  ~EventPump();

  awaitable<Read> next(std::chrono::milliseconds keep_alive);
  // Stops reading; the upstream stream is aborted and released by the reader.
  void stop();
  // Delivers a message that arrived elsewhere (the session's standalone stream) as if it came on
  // this stream. False when the pump is stopped or its queue is full. Any thread.
  bool inject(upstream::StreamRead read);
  bool resumable() const;

  struct State;
  explicit EventPump(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

struct RelayOutcome {
  bool response_seen = false;  // the response to `request_id` went out
  bool client_gone = false;
  bool cancelled = false;  // the server is closing the connection (drain deadline / shutdown)
  bool upstream_failed = false;
  bool resumable = false;  // the upstream gave event ids: the client can resume the stream
  std::string failure;
};

// Writes every upstream event as an SSE event until the stream ends, each through the exchange's
// filters (`runner`; null for a listen stream, which no filter looks at). `request_id` (null for a
// listen stream) is used to notice the response. With `held_response`, the response is not
// written but handed back there (the caller decides what the client gets).
// An EventCheck sees each message's data first (cache invalidation by list_changed
// notifications, a listen's subscription tag) and may rewrite it; false keeps it from the client.
using EventCheck = std::function<bool(std::string& data)>;
awaitable<RelayOutcome> relay_events(http::Responder& out, EventPump& pump, ExchangeRunner* runner,
                                     const mcp::Json* request_id,
                                     std::chrono::milliseconds keep_alive,
                                     std::string* held_response = nullptr,
                                     const EventCheck& on_event = {});

// A call its client may cancel while it waits for the upstream (a session client's
// notifications/cancelled to a stateless server, where closing the request is the cancellation).
// Touched only on the call's executor.
class CallCancellation {
 public:
  void cancel() {
    if (cancelled_) return;
    cancelled_ = true;
    if (action_) action_();
  }
  bool cancelled() const { return cancelled_; }
  // What cancelling does at this stage of the call (abandon the request, stop the stream).
  void on_cancel(std::function<void()> action) { action_ = std::move(action); }

 private:
  bool cancelled_ = false;
  std::function<void()> action_;
};

// Runs `work` (a call waiting for its upstream's single answer) unless the client hangs up or
// `cancellation` fires first: then what `work` waits on is cancelled, which closes its upstream
// connection, and the result is empty. Closing is how a 2026-07-28 client cancels, and how a
// session client's disconnect looks upstream. Not for stdio upstreams: a write cut short would
// leave half a line on the child's stdin.
template <class T>
awaitable<std::optional<T>> unless_client_leaves(http::Responder& out, awaitable<T> work,
                                                 CallCancellation* cancellation = nullptr) {
  bool abandoned = false;
  const auto abandon = [&abandoned, &out] {
    abandoned = true;
    out.interrupt();
  };
  if (cancellation && cancellation->cancelled()) co_return std::nullopt;
  // The action refers to this frame: it must not outlive the wait, even when `work` throws.
  struct ActionInScope {
    CallCancellation* cancellation;
    ~ActionInScope() {
      if (cancellation) cancellation->on_cancel(nullptr);
    }
  };
  std::optional<T> result;
  {
    const ActionInScope scope{cancellation};
    if (cancellation) cancellation->on_cancel(abandon);
    const auto watch = out.watch_client(abandon);
    result.emplace(co_await std::move(work));
  }
  if (!abandoned) co_return result;
  co_await asio::this_coro::reset_cancellation_state();
  co_return std::nullopt;
}

}  // namespace membrane::gateway
