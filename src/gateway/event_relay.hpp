// Relaying an upstream reply stream to a downstream SSE response, event by event, as events
// arrive: a reader coroutine pulls from the upstream while the writer waits for "next event or
// keep-alive tick", so a quiet stream still proves it is alive and a dead client is noticed.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "gateway/exchange.hpp"
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
  ~EventPump();

  awaitable<Read> next(std::chrono::milliseconds keep_alive);
  // Stops reading; the upstream stream is aborted and released by the reader.
  void stop();
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

// Writes every upstream event as an SSE event until the stream ends. `request_id` (null for a
// listen stream) is used to notice the response. With `held_response`, the response is not
// written but handed back there (the caller decides what the client gets); `on_event` sees each
// message first (cache invalidation by list_changed notifications).
awaitable<RelayOutcome> relay_events(http::Responder& out, EventPump& pump, Exchange& exchange,
                                     const ExchangePipeline& pipeline, const mcp::Json* request_id,
                                     std::chrono::milliseconds keep_alive,
                                     std::string* held_response = nullptr,
                                     const std::function<void(std::string_view)>& on_event = {});

}  // namespace membrane::gateway
