#include "gateway/transports/event_relay.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel_error.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include "gateway/responses.hpp"
#include "http/stream_buffer.hpp"
#include "membrane/http/sse.hpp"

namespace membrane::gateway {

using namespace asio::experimental::awaitable_operators;
// Concurrent: a pump parked by a bridged call that waits for the client's input may be read
// again by the client's next request, on another worker.
using Channel = asio::experimental::concurrent_channel<void(error_code, upstream::StreamRead)>;

namespace {
// What a read costs the stream's buffer budget while it waits for the writer.
std::size_t cost(const upstream::StreamRead& read) {
  return read.event.data.size() + read.event.id.size() + read.event.type.size() +
         read.error.size() + http::queued_event_overhead;
}
}  // namespace

struct EventPump::State {
  State(asio::any_io_executor executor, std::unique_ptr<upstream::ReplyStream> stream)
      : executor(executor),
        stream(std::move(stream)),
        buffer(executor),
        channel(executor, buffer.max_events()) {}
  asio::any_io_executor executor;  // the reader's: the upstream stream lives there
  std::unique_ptr<upstream::ReplyStream> stream;
  // Bounds what waits here in bytes (limits.max_stream_buffer, limits.max_buffered_bytes): the
  // reader stops reading the upstream until the writer has caught up.
  http::StreamBuffer buffer;
  Channel channel;
  std::atomic<bool> stopped{false};
};

awaitable<std::shared_ptr<EventPump>> EventPump::start(
    std::unique_ptr<upstream::ReplyStream> stream) {
  auto executor = co_await asio::this_coro::executor;
  auto state = std::make_shared<State>(executor, std::move(stream));
  asio::co_spawn(
      executor,
      [state]() -> awaitable<void> {
        for (;;) {
          auto read = co_await state->stream->next();
          if (state->stopped) co_return;
          const bool last = read.status != upstream::ReadStatus::message;
          if (!co_await state->buffer.charge(cost(read))) co_return;
          auto [ec] =
              co_await state->channel.async_send(error_code(), std::move(read), use_nothrow);
          if (ec || last) co_return;
        }
      },
      asio::detached);
  co_return std::make_shared<EventPump>(state);
}

namespace {
// The stream of a pump fed by inject(): nothing arrives on it until it is aborted.
class QuietStream final : public upstream::ReplyStream {
 public:
  awaitable<upstream::StreamRead> next() override {
    upstream::StreamRead ended;
    if (aborted_) co_return ended;
    timer_.emplace(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    co_await timer_->async_wait(use_nothrow);
    co_return ended;
  }
  void abort() override {
    aborted_ = true;
    if (timer_) timer_->cancel();
  }

 private:
  bool aborted_ = false;
  std::optional<asio::steady_timer> timer_;
};
}  // namespace

awaitable<std::shared_ptr<EventPump>> EventPump::start_fed() {
  co_return co_await start(std::make_unique<QuietStream>());
}

EventPump::~EventPump() {
  stop();
}

void EventPump::stop() {
  if (state_->stopped.exchange(true)) return;
  state_->channel.close();
  state_->buffer.close();
  // The stream belongs to the reader's thread.
  asio::post(state_->executor, [state = state_]() { state->stream->abort(); });
}

bool EventPump::inject(upstream::StreamRead read) {
  if (state_->stopped) return false;
  const auto bytes = cost(read);
  if (!state_->buffer.try_charge(bytes)) return false;
  if (state_->channel.try_send(error_code(), std::move(read))) return true;
  state_->buffer.release(bytes);
  return false;
}

bool EventPump::resumable() const {
  return state_->stream->resumable();
}

namespace {
// What one read off the upstream stream means to the writer.
EventPump::Read received(upstream::StreamRead read) {
  EventPump::Read out;
  out.kind = read.status == upstream::ReadStatus::message ? EventPump::Kind::message
             : read.status == upstream::ReadStatus::end   ? EventPump::Kind::end
                                                          : EventPump::Kind::failed;
  out.read = std::move(read);
  return out;
}
}  // namespace

awaitable<EventPump::Read> EventPump::next(std::chrono::milliseconds keep_alive) {
  Read out;
  if (state_->stopped) co_return out;
  // Messages already waiting go out without touching the timer.
  if (state_->channel.ready()) {
    auto [ec, read] = co_await state_->channel.async_receive(use_nothrow);
    if (!ec) {
      state_->buffer.release(cost(read));
      co_return received(std::move(read));
    }
  }
  asio::steady_timer timer(co_await asio::this_coro::executor, keep_alive);
  auto result =
      co_await (state_->channel.async_receive(use_nothrow) || timer.async_wait(use_nothrow));
  if (result.index() == 0) {
    auto& [ec, read] = std::get<0>(result);
    if (ec) {
      out.kind = ec == asio::experimental::error::channel_closed ? Kind::end : Kind::cancelled;
      co_return out;
    }
    state_->buffer.release(cost(read));
    co_return received(std::move(read));
  }
  const auto [timer_ec] = std::get<1>(result);
  out.kind = timer_ec ? Kind::cancelled : Kind::tick;
  co_return out;
}

namespace {
bool is_response_to(const std::string& data, const mcp::Json& request_id) {
  // Cheap pre-check before parsing: a response carries "result" or "error".
  if (data.find("\"result\"") == std::string::npos && data.find("\"error\"") == std::string::npos)
    return false;
  auto parsed = mcp::parse_message(data);
  return parsed.message && parsed.message->is_response() && parsed.message->id() == request_id;
}
}  // namespace

awaitable<RelayOutcome> relay_events(http::Responder& out, EventPump& pump, ExchangeRunner* runner,
                                     const mcp::Json* request_id,
                                     std::chrono::milliseconds keep_alive,
                                     std::string* held_response, const EventCheck& on_event) {
  RelayOutcome outcome;
  std::string wire;
  // A client that hangs up while the upstream is quiet would otherwise be noticed only at the
  // next keep-alive; stopping the pump at once closes the upstream stream too.
  bool client_left = false;
  const auto watch = out.watch_client([&client_left, &pump] {
    client_left = true;
    pump.stop();
  });
  for (;;) {
    auto next = co_await pump.next(keep_alive);
    if (client_left) {
      outcome.client_gone = true;
      co_return outcome;
    }
    switch (next.kind) {
      case EventPump::Kind::tick:
        if (!co_await out.write_chunk(http::sse_keep_alive_comment)) {
          outcome.client_gone = true;
          co_return outcome;
        }
        continue;
      case EventPump::Kind::cancelled:
        outcome.cancelled = true;
        outcome.resumable = pump.resumable();
        co_return outcome;
      case EventPump::Kind::end:
        outcome.resumable = pump.resumable();
        co_return outcome;
      case EventPump::Kind::failed:
        outcome.upstream_failed = true;
        outcome.failure = std::move(next.read.error);
        co_return outcome;
      case EventPump::Kind::message:
        break;
    }
    auto& event = next.read.event;
    if (!event.data.empty()) {
      if (on_event && !on_event(event.data)) continue;
      if (runner) runner->on_upstream_message(event.data);
      if (request_id && !outcome.response_seen && is_response_to(event.data, *request_id)) {
        outcome.response_seen = true;
        if (held_response) {
          *held_response = std::move(event.data);
          outcome.resumable = pump.resumable();
          co_return outcome;
        }
        if (runner) {
          std::string answer = co_await runner->answer_or_withheld(std::move(event.data));
          event.data = std::move(answer);
        }
      }
    }
    // Our own keep-alives replace the upstream's; its event type "message" is the default.
    if (event.type == "message") event.type.clear();
    wire.clear();
    http::append_sse_event(wire, event);
    if (!co_await out.write_chunk(wire)) {
      outcome.client_gone = true;
      co_return outcome;
    }
  }
}

}  // namespace membrane::gateway
