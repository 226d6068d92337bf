#include "gateway/transports/http_port.hpp"

#include "gateway/responses.hpp"
#include "membrane/http/sse.hpp"

namespace membrane::gateway {

// The responder's own awaitable, not a coroutine of its own: one frame fewer per answer.
awaitable<bool> HttpPort::respond(http::Response response) {
  return out_.send(std::move(response));
}

awaitable<bool> HttpPort::deliver(std::string message, bool last) {
  http::SseEvent event;
  event.data = std::move(message);
  if (!co_await out_.write_chunk(http::format_sse_event(event))) co_return false;
  if (last) co_await out_.end_stream();
  co_return true;
}

// No early co_return here: built by GCC 12 with optimization, a `co_return` ahead of the co_await
// in this coroutine (with its by-value header) left a frame that crashed (SIGILL) when resumed.
awaitable<bool> HttpPort::begin_stream(http::ResponseHeader header) {
  if (!streaming_) streaming_ = co_await out_.begin_stream(std::move(header));
  co_return streaming_;
}

awaitable<bool> HttpPort::begin_stream() {
  return begin_stream(event_stream_header());
}

awaitable<bool> HttpPort::keep_client_waiting() {
  if (!co_await begin_stream()) co_return false;
  co_return co_await out_.write_chunk(http::sse_keep_alive_comment);
}

awaitable<ClientAnswer> SessionClientPort::ask_client(std::string_view method,
                                                      const mcp::Json& params) {
  ClientAnswer gone{ClientAnswer::Kind::client_gone, {}};
  if (!session_ || !asking_.requests) co_return ClientAnswer{ClientAnswer::Kind::unavailable, {}};
  // Asking the client means answering on an SSE stream: the question goes out on it.
  if (!co_await begin_stream()) co_return gone;
  auto pending = asking_.requests->open(ClientRequests::session_key(*session_),
                                        co_await asio::this_coro::executor);
  http::SseEvent question;
  question.data = pending->request_message(method, params);
  if (!co_await out_.write_chunk(http::format_sse_event(question))) co_return gone;
  // Keep-alives hold the stream open while the human thinks, and notice one who left.
  PendingClientRequest::StillThere keep_alive = [this]() -> awaitable<bool> {
    co_return co_await out_.write_chunk(http::sse_keep_alive_comment);
  };
  auto answer = co_await pending->wait(Clock::now() + asking_.timeout, asking_.keep_alive,
                                       std::move(keep_alive));
  if (answer.kind == ClientAnswer::Kind::cancelled)
    co_await asio::this_coro::reset_cancellation_state();
  co_return answer;
}

}  // namespace membrane::gateway
