#include "gateway/transports/legacy_sse.hpp"
#include "membrane/core/json.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel_error.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <ctime>

#include "gateway/gateway.hpp"
#include "gateway/responses.hpp"
#include "gateway/transports/event_relay.hpp"
#include "gateway/transports/http_port.hpp"
#include "gateway/transports/upstream_replies.hpp"
#include "http/stream_buffer.hpp"
#include "membrane/core/log.hpp"
#include "membrane/http/sse.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {
namespace bhttp = http::bhttp;
using namespace asio::experimental::awaitable_operators;

class LegacySession : public std::enable_shared_from_this<LegacySession> {
 public:
  LegacySession(std::string id, upstream::Upstream& upstream, const asio::any_io_executor& executor,
                std::size_t capacity)
      : id(std::move(id)), upstream(upstream), outbound(executor, capacity), buffer(executor) {}

  const std::string id;
  upstream::Upstream& upstream;
  // The session id the client posts with (sealed), which also keys what the session bridge keeps
  // for a bridged session.
  std::string sealed;
  // The server speaks only 2026-07-28: the gateway's session bridge serves this session.
  std::atomic<bool> bridged{false};
  // Every message for the client, in order: the GET stream writes them as `message` events.
  asio::experimental::concurrent_channel<void(error_code, std::string)> outbound;
  // Bounds the bytes waiting in `outbound` (limits.max_stream_buffer, max_buffered_bytes): a
  // producer waits, and so stops reading its upstream, while the client is behind.
  http::StreamBuffer buffer;
  std::atomic<int> in_flight{0};
  std::atomic<bool> closed{false};

  static std::size_t cost(const std::string& message) {
    return message.size() + http::queued_event_overhead;
  }

  awaitable<bool> push(std::string message) {
    if (closed) co_return false;
    const auto bytes = cost(message);
    if (!co_await buffer.charge(bytes)) co_return false;
    auto [ec] = co_await outbound.async_send(error_code(), std::move(message), use_nothrow);
    if (ec) buffer.release(bytes);
    co_return !ec;
  }

  void close() {
    closed = true;
    outbound.close();
    buffer.close();
  }

  std::optional<mcp::SessionClaims> claims() const {
    std::lock_guard lock(mutex_);
    return upstream_claims_;
  }
  void set_claims(mcp::SessionClaims claims) {
    std::lock_guard lock(mutex_);
    upstream_claims_ = std::move(claims);
  }
  std::string protocol_version() const {
    std::lock_guard lock(mutex_);
    return protocol_version_;
  }
  void set_protocol_version(std::string version) {
    std::lock_guard lock(mutex_);
    protocol_version_ = std::move(version);
  }
  bool start_listening_once() {
    std::lock_guard lock(mutex_);
    return !std::exchange(listening_, true);
  }

  // The listen stream is read on another worker: it is aborted there.
  void set_listen_stream(std::shared_ptr<upstream::ReplyStream> stream,
                         asio::any_io_executor executor) {
    std::lock_guard lock(mutex_);
    listen_stream_ = std::move(stream);
    listen_executor_ = std::move(executor);
  }
  // A bridged session's listen is the session bridge's coroutine: it is cancelled instead.
  void set_bridged_listen(std::shared_ptr<asio::cancellation_signal> signal,
                          asio::any_io_executor executor) {
    std::lock_guard lock(mutex_);
    bridged_listen_ = std::move(signal);
    listen_executor_ = std::move(executor);
  }
  void abort_listen_stream() {
    std::lock_guard lock(mutex_);
    if (listen_stream_)
      asio::post(listen_executor_, [stream = listen_stream_] { stream->abort(); });
    if (bridged_listen_) {
      asio::post(listen_executor_,
                 [signal = bridged_listen_] { signal->emit(asio::cancellation_type::terminal); });
    }
  }

 private:
  mutable std::mutex mutex_;
  std::optional<mcp::SessionClaims> upstream_claims_;
  std::string protocol_version_;
  bool listening_ = false;
  std::shared_ptr<upstream::ReplyStream> listen_stream_;
  std::shared_ptr<asio::cancellation_signal> bridged_listen_;
  asio::any_io_executor listen_executor_;
};

namespace {

struct InFlight {
  explicit InFlight(LegacySession& session) : session(session) { ++session.in_flight; }
  ~InFlight() { --session.in_flight; }
  LegacySession& session;
};

// The negotiated version from an initialize result, to send upstream as MCP-Protocol-Version.
std::string negotiated_version(const std::string& response_text) {
  const auto response = json::parse_or_discarded(response_text);
  if (!response.is_object()) return {};
  const auto result = response.find("result");
  if (result == response.end() || !result->is_object()) return {};
  const auto version = result->find("protocolVersion");
  return version != result->end() && version->is_string() ? version->get<std::string>()
                                                          : std::string();
}

// The legacy session's stream is where every answer goes, and where the gateway asks the client
// (an approval), whose answer comes back POSTed like any other message.
class LegacyPort final : public DownstreamPort {
 public:
  LegacyPort(LegacySession& session, const TransportServices& services)
      : session_(session), services_(services) {}
  bool streaming() const override { return true; }
  awaitable<bool> respond(http::Response response) override {
    co_return co_await session_.push(std::move(response.body()));
  }
  awaitable<bool> deliver(std::string message, bool) override {
    co_return co_await session_.push(std::move(message));
  }
  awaitable<ClientAnswer> ask_client(std::string_view method, const mcp::Json& params) override;

 private:
  LegacySession& session_;
  const TransportServices& services_;
};

awaitable<ClientAnswer> LegacyPort::ask_client(std::string_view method, const mcp::Json& params) {
  ClientAnswer gone{ClientAnswer::Kind::client_gone, {}};
  const auto claims = session_.claims();
  if (!claims) co_return ClientAnswer{ClientAnswer::Kind::unavailable, {}};
  auto pending = services_.client_requests.open(ClientRequests::session_key(*claims),
                                                co_await asio::this_coro::executor);
  if (!co_await session_.push(pending->request_message(method, params))) co_return gone;
  // The session's GET stream sends its own keep-alives; here only notice that it closed.
  PendingClientRequest::StillThere open = [this]() -> awaitable<bool> {
    co_return !session_.closed;
  };
  auto answer = co_await pending->wait(Clock::now() + services_.options.approval_timeout,
                                       std::chrono::milliseconds(500), std::move(open));
  if (answer.kind == ClientAnswer::Kind::cancelled)
    co_await asio::this_coro::reset_cancellation_state();
  co_return answer;
}

// What the session bridge writes for a bridged session, as messages on the session's one stream.
// The bridge answers as it answers a Streamable HTTP client (a JSON body, or an SSE response of
// messages); here each message becomes one `message` event of the legacy stream, and HTTP
// statuses, headers and keep-alives have no place (the legacy stream keeps itself alive).
class LegacyStreamResponder final : public http::Responder {
 public:
  // `interrupt`: what cancels the coroutine that writes here (unset: it is not interrupted).
  explicit LegacyStreamResponder(LegacySession& session,
                                 std::shared_ptr<asio::cancellation_signal> interrupt = nullptr)
      : session_(session), interrupt_(std::move(interrupt)) {}

  awaitable<bool> send(http::Response response) override {
    co_return co_await push(std::move(response.body()));
  }
  awaitable<bool> begin_stream(http::ResponseHeader) override { co_return !session_.closed; }
  awaitable<bool> write_chunk(std::string_view data) override {
    events_.clear();
    if (!decoder_.feed(data, events_)) co_return false;
    for (auto& event : events_) {
      if (!co_await push(std::move(event.data))) co_return false;
    }
    co_return !session_.closed;
  }
  awaitable<bool> end_stream() override { co_return !session_.closed; }
  // The legacy stream itself follows the drain and the client.
  void set_interruptible(bool) override {}
  bool draining() const override { return false; }
  http::ClientWatch watch_client(std::function<void()>) override { return {}; }
  // A call the client cancelled (notifications/cancelled) stops waiting for its upstream.
  void interrupt() override {
    if (interrupt_) interrupt_->emit(asio::cancellation_type::terminal);
  }

 private:
  // Messages only: a body such as "Accepted" or a priming event is nothing for the client.
  awaitable<bool> push(std::string message) {
    if (message.empty() || message.front() != '{') co_return !session_.closed;
    co_return co_await session_.push(std::move(message));
  }

  // The gateway wrote these events itself, each no larger than an upstream message.
  static constexpr std::size_t max_event_bytes = 64 * 1024 * 1024;
  LegacySession& session_;
  std::shared_ptr<asio::cancellation_signal> interrupt_;
  http::SseDecoder decoder_{max_event_bytes};
  std::vector<http::SseEvent> events_;
};

BridgedMessage bridged_message(LegacySession& session, const mcp::Message& message,
                               const std::shared_ptr<const identity::Identity>& caller,
                               std::shared_ptr<const ExchangeRequest::Sender> sender,
                               const std::optional<mcp::SessionClaims>& claims) {
  BridgedMessage bridged;
  bridged.upstream = &session.upstream;
  bridged.message = &message;
  bridged.caller = caller;
  bridged.transport = DownstreamTransport::legacy_sse;
  bridged.sender = std::move(sender);
  bridged.protocol_version = session.protocol_version();
  bridged.session_id = session.sealed;
  bridged.claims = claims ? &*claims : nullptr;
  return bridged;
}

// A request of a bridged session: the session bridge answers it, or judges it and sends it to the
// server, and asks the client on this session's stream when the server needs input.
awaitable<void> forward_bridged(std::shared_ptr<LegacySession> session,
                                const TransportServices& services, const mcp::Message& message,
                                std::shared_ptr<const ExchangeRequest::Sender> sender,
                                const std::shared_ptr<const identity::Identity>& caller,
                                std::shared_ptr<asio::cancellation_signal> interrupt) {
  const auto claims = session->claims();
  if (!message.is_initialize() && !claims) {
    co_await session->push(mcp::make_error_response(message.id(), mcp::error_code::invalid_request,
                                                    "Bad Request: send initialize first"));
    co_return;
  }
  LegacyStreamResponder out(*session, std::move(interrupt));
  auto bridged = bridged_message(*session, message, caller, std::move(sender), claims);
  if (message.is_initialize()) {
    // Known before the answer reaches the client, whose next message needs the session.
    bridged.on_opened = [&session = *session](const mcp::SessionClaims& opened) {
      session.set_protocol_version(opened.protocol_version);
      session.set_claims(opened);
    };
  }
  co_await services.bridge.serve_bridged(out, bridged);
}

// `slot` (limits.max_streams) is held until the request has been answered.
awaitable<void> forward_request(std::shared_ptr<LegacySession> session,
                                const TransportServices& services, mcp::Message message,
                                std::string raw,
                                std::shared_ptr<const ExchangeRequest::Sender> sender,
                                std::shared_ptr<const identity::Identity> caller,
                                std::shared_ptr<asio::cancellation_signal> interrupt,
                                [[maybe_unused]] StreamSlots::Slot slot) {
  InFlight in_flight(*session);
  auto& upstream = session->upstream;
  const auto claims = session->claims();
  if (message.is_initialize() && !claims &&
      co_await services.bridge.bridges_session_clients(upstream))
    session->bridged = true;
  if (session->bridged) {
    co_await forward_bridged(session, services, message, std::move(sender), caller,
                             std::move(interrupt));
    co_return;
  }

  LegacyPort port(*session, services);
  ExchangeRequest described;
  described.upstream = upstream.name();
  described.routing = upstream.member_routing();
  described.transport = DownstreamTransport::legacy_sse;
  described.message = &message;
  described.session = claims ? &*claims : nullptr;
  described.identity = caller;
  described.protocol_version = session->protocol_version();
  described.sender = std::move(sender);
  ExchangeRunner runner(services.filters, port, std::move(described));
  Exchange& exchange = runner.exchange();
  exchange.http_status = 202;  // the POST's answer; the message's comes on the stream
  if (co_await runner.run_request_filters() != ExchangeRunner::Verdict::forward) co_return;
  if (!message.is_initialize() && !claims) {
    exchange.outcome = Outcome::rejected;
    co_await runner.answer_message(mcp::make_error_response(
        message.id(), mcp::error_code::invalid_request, "Bad Request: send initialize first"));
    co_return;
  }

  auto context = runner.forward_context(upstream);
  std::string body = runner.forwarded_body(std::move(raw));
  runner.forwarding();
  auto reply = co_await upstream.send(message, std::move(body), exchange.session, context);
  runner.upstream_answered();
  using Kind = upstream::UpstreamReply::Kind;
  if (message.is_initialize() && (reply.kind == Kind::message || reply.kind == Kind::stream))
    session->set_claims(claims_after_initialize(upstream, message, reply, caller));

  const mcp::Json& id = message.id();
  exchange.outcome = outcome_of(reply);
  switch (reply.kind) {
    case Kind::message:
      if (message.is_initialize()) session->set_protocol_version(negotiated_version(reply.body));
      runner.on_upstream_message(reply.body);
      co_await runner.answer_message(std::move(reply.body));
      break;
    case Kind::stream: {
      bool response_seen = false;
      std::string failure;
      auto pump = co_await EventPump::start(std::move(reply.stream));
      for (;;) {
        // The legacy stream has its own keep-alives: here only messages matter.
        auto next = co_await pump->next(std::chrono::hours(1));
        if (next.kind == EventPump::Kind::tick) continue;
        if (next.kind == EventPump::Kind::failed) failure = std::move(next.read.error);
        if (next.kind != EventPump::Kind::message) break;
        auto& data = next.read.event.data;
        if (data.empty()) continue;  // priming event: the legacy transport has no resumption
        runner.on_upstream_message(data);
        auto parsed = mcp::parse_message(data);
        bool delivered = false;
        if (parsed.message && parsed.message->is_response() && parsed.message->id() == id) {
          response_seen = true;
          if (message.is_initialize()) session->set_protocol_version(negotiated_version(data));
          delivered = co_await runner.answer_message(std::move(data));
        } else {
          delivered = co_await session->push(std::move(data));
        }
        if (!delivered) {
          exchange.client_gone = true;
          break;
        }
      }
      pump->stop();
      if (!response_seen && !exchange.client_gone) {
        const std::string reason = failure.empty() ? "upstream '" + upstream.name() +
                                                         "' closed the stream without responding"
                                                   : failure;
        exchange.outcome = Outcome::upstream_stream_broken;
        log::warn("exchange ", message.method(), " id=", id.dump(), " on '", upstream.name(),
                  "': ", reason);
        co_await runner.answer_message(
            mcp::make_error_response(id, mcp::error_code::upstream_unavailable, reason));
      }
      break;
    }
    case Kind::accepted:
      break;
    case Kind::unavailable:
      log::warn("exchange ", message.method(), " on '", upstream.name(), "' failed: ", reply.body);
      [[fallthrough]];
    default:
      co_await runner.answer_message(reply_as_message(reply, id, upstream.name(), "reconnect"));
      break;
  }
}

// Server-initiated messages (the upstream's listen stream) onto the one legacy stream, resuming
// with Last-Event-ID when the upstream stream breaks.
awaitable<void> pump_server_messages(std::shared_ptr<LegacySession> session) {
  auto& upstream = session->upstream;
  const auto executor = co_await asio::this_coro::executor;
  std::string last_event_id;
  auto backoff = std::chrono::milliseconds(500);
  asio::steady_timer pause(executor);
  while (!session->closed) {
    const auto claims = session->claims();
    if (!claims) co_return;
    upstream::ForwardContext context;
    context.protocol_version = session->protocol_version();
    context.last_event_id = last_event_id;
    auto reply = co_await upstream.listen(*claims, context);
    using Kind = upstream::UpstreamReply::Kind;
    if (reply.kind == Kind::not_supported || reply.kind == Kind::session_not_found) co_return;
    if (reply.kind == Kind::stream) {
      std::shared_ptr<upstream::ReplyStream> stream = std::move(reply.stream);
      session->set_listen_stream(stream, executor);
      if (session->closed) stream->abort();
      for (;;) {
        auto read = co_await stream->next();
        if (read.status != upstream::ReadStatus::message || session->closed) break;
        backoff = std::chrono::milliseconds(500);
        if (read.event.has_id) last_event_id = read.event.id;
        if (read.event.data.empty()) continue;
        if (!co_await session->push(std::move(read.event.data))) break;
      }
      session->set_listen_stream(nullptr, executor);
    } else {
      log::debug("legacy session on '", upstream.name(),
                 "': listen stream unavailable: ", reply.body);
    }
    if (session->closed) co_return;
    pause.expires_after(backoff);
    co_await pause.async_wait(use_nothrow);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(30'000));
  }
}

// A bridged session's server-initiated messages: the session bridge's listen for it, whose
// messages go onto the session's stream.
awaitable<void> pump_bridged_messages(std::shared_ptr<LegacySession> session,
                                      const TransportServices& services) {
  const auto claims = session->claims();
  if (!claims) co_return;
  LegacyStreamResponder out(*session);
  co_await services.bridge.listen_for_session_client(out, session->upstream, *claims,
                                                     session->sealed);
}

}  // namespace

LegacySseTransport::~LegacySseTransport() = default;

std::size_t LegacySseTransport::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::shared_ptr<LegacySession> LegacySseTransport::find(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

awaitable<void> LegacySseTransport::handle(
    http::Request& request, const http::RequestOrigin& origin, http::Responder& out,
    upstream::Upstream& upstream, bool is_message_endpoint,
    const std::shared_ptr<const identity::Identity>& caller) {
  if (is_message_endpoint && request.method() == bhttp::verb::post) {
    co_await post_message(request, origin, out, upstream, caller);
  } else if (!is_message_endpoint && request.method() == bhttp::verb::get) {
    co_await open_stream(request, origin, out, upstream, caller);
  } else {
    auto response =
        jsonrpc_error(405, nullptr, mcp::error_code::invalid_request,
                      is_message_endpoint ? "Method Not Allowed: POST messages here"
                                          : "Method Not Allowed: GET opens the event stream");
    response.set(bhttp::field::allow, is_message_endpoint ? "POST" : "GET");
    co_await out.send(std::move(response));
  }
}

awaitable<void> LegacySseTransport::open_stream(
    http::Request& request, const http::RequestOrigin& origin, http::Responder& out,
    upstream::Upstream& upstream, const std::shared_ptr<const identity::Identity>& caller) {
  const std::string_view accept = request[bhttp::field::accept];
  if (!accept.empty() && !accepts(accept, "text/event-stream")) {
    co_await out.send(jsonrpc_error(406, nullptr, mcp::error_code::invalid_request,
                                    "Not Acceptable: Accept must list text/event-stream"));
    co_return;
  }
  const auto& options = services_.options;
  // The stream is a session and a stream at once: it counts toward both limits while open.
  auto& admission = services_.admission;
  RequestAdmission admitted;
  auto refusal = admission.admit_stream(admitted.stream);
  if (!refusal) {
    refusal = admission.open_session(caller_key(caller.get(), origin),
                                     services_.session_idle_window(upstream), admitted.session);
  }
  if (refusal) {
    co_await out.send(overload_response(*refusal, nullptr));
    co_return;
  }
  const auto executor = co_await asio::this_coro::executor;
  auto session = std::make_shared<LegacySession>(mcp::base64url_encode(mcp::random_bytes(16)),
                                                 upstream, executor, options.max_buffered_messages);
  admission.sessions().bind(admitted.session, session->id);
  mcp::SessionClaims claims;
  claims.upstream = upstream.name();
  claims.upstream_session = session->id;
  claims.created_at = unix_now();
  if (caller) claims.subject = caller->subject;
  const std::string sealed = options.sealer->seal(claims, mcp::SessionTransport::legacy_sse);
  session->sealed = sealed;
  {
    std::lock_guard lock(mutex_);
    sessions_[session->id] = session;
  }
  log::info("legacy SSE session opened on '", upstream.name(), "' by ", client_address(origin));

  const StreamCount counted(services_.streams);
  bool client_gone = !co_await out.begin_stream(event_stream_header());
  if (!client_gone) {
    http::SseEvent endpoint;
    endpoint.type = "endpoint";
    endpoint.data = "/sse/" + upstream.name() + "/message?sessionId=" + sealed;
    client_gone = !co_await out.write_chunk(http::format_sse_event(endpoint));
  }
  out.set_interruptible(true);
  asio::steady_timer timer(executor);
  int interruptions = 0;
  std::string wire;
  // A client that hangs up is noticed at once, not at the next keep-alive: its session, and the
  // stdio child behind it, end now.
  bool client_left = false;
  const auto watch = out.watch_client([&client_left, &timer] {
    client_left = true;
    timer.cancel();
  });
  while (!client_gone) {
    // While draining, wake often: the stream closes once the session's in-flight requests have
    // delivered their responses (they can only arrive on this stream).
    timer.expires_after(out.draining() ? std::chrono::milliseconds(100) : options.sse_keep_alive);
    auto result =
        co_await (session->outbound.async_receive(use_nothrow) || timer.async_wait(use_nothrow));
    if (client_left) {
      client_gone = true;
      break;
    }
    bool interrupted = false;
    if (result.index() == 0) {
      auto& [ec, message] = std::get<0>(result);
      if (ec == asio::experimental::error::channel_closed) break;
      if (ec) {
        interrupted = true;
      } else {
        session->buffer.release(LegacySession::cost(message));
        http::SseEvent event;
        event.type = "message";
        event.data = std::move(message);
        wire.clear();
        http::append_sse_event(wire, event);
        client_gone = !co_await out.write_chunk(wire);
        continue;
      }
    } else if (std::get<1>(result) == std::tuple<error_code>{}) {
      if (out.draining() && session->in_flight == 0) break;
      client_gone = !co_await out.write_chunk(http::sse_keep_alive_comment);
      continue;
    } else {
      interrupted = true;
    }
    if (interrupted) {
      co_await asio::this_coro::reset_cancellation_state();
      if (++interruptions >= 2 || session->in_flight == 0) break;
    }
  }
  out.set_interruptible(false);

  session->close();
  session->abort_listen_stream();
  admission.sessions().end(session->id);
  {
    std::lock_guard lock(mutex_);
    sessions_.erase(session->id);
  }
  if (!client_gone) co_await out.end_stream();
  log::info("legacy SSE session on '", upstream.name(), "' closed",
            client_gone ? " by the client" : "");
  // The upstream session belongs to this stream: end it too (DELETE upstream, or stop the child).
  // A bridged session has none; what the bridge kept for it goes.
  if (session->bridged) {
    services_.bridge.end_bridged_session(session->sealed);
  } else if (const auto upstream_claims = session->claims()) {
    asio::co_spawn(
        executor,
        [&upstream, claims = *upstream_claims,
         version = session->protocol_version()]() -> awaitable<void> {
          upstream::ForwardContext context;
          context.protocol_version = version;
          co_await upstream.end_session(claims, context);
        },
        asio::detached);
  }
}

awaitable<void> LegacySseTransport::post_message(
    http::Request& request, const http::RequestOrigin& origin, http::Responder& out,
    upstream::Upstream& upstream, const std::shared_ptr<const identity::Identity>& caller) {
  const auto& options = services_.options;
  const std::string sealed = query_parameter(request.target(), "sessionId");
  if (sealed.empty()) {
    co_await out.send(jsonrpc_error(400, nullptr, mcp::error_code::invalid_request,
                                    "Bad Request: the sessionId query parameter is required"));
    co_return;
  }
  const auto claims =
      options.sealer->unseal(sealed, upstream.name(), mcp::SessionTransport::legacy_sse);
  // A session serves only the caller who opened it; to anyone else it does not exist.
  const bool same_caller = claims && claims->subject == (caller ? caller->subject : std::string());
  auto session = same_caller ? find(claims->upstream_session) : nullptr;
  if (!session || session->closed) {
    co_await out.send(
        jsonrpc_error(404, nullptr, mcp::error_code::session_not_found,
                      "Session not found: open a new stream with GET /sse/" + upstream.name()));
    co_return;
  }
  auto posted = read_posted_message(request);
  if (posted.rejection) {
    co_await out.send(std::move(*posted.rejection));
    co_return;
  }
  mcp::Message& message = *posted.message;

  if (message.is_request()) {
    // Each request runs on after the POST is answered: it holds a slot of limits.max_streams
    // until it has been, so a client cannot pile up work by posting faster than it is done.
    StreamSlots::Slot slot;
    if (auto refusal = services_.admission.admit_stream(slot)) {
      co_await out.send(overload_response(*refusal, message.id()));
      co_return;
    }
    // Answered on the stream; the POST only acknowledges (2024-11-05 transports).
    auto interrupt = std::make_shared<asio::cancellation_signal>();
    asio::co_spawn(
        co_await asio::this_coro::executor,
        forward_request(session, services_, std::move(message), std::move(request.body()),
                        copy_sender(request, origin, services_.filters, caller, sealed), caller,
                        interrupt, std::move(slot)),
        asio::bind_cancellation_slot(interrupt->slot(), asio::detached));
    co_await out.send(json_response(202, "Accepted"));
    co_return;
  }

  // Notifications and responses go upstream before the 202, so the client's next message cannot
  // overtake them (e.g. a request racing notifications/initialized).
  const auto upstream_claims = session->claims();
  if (!upstream_claims) {
    co_await out.send(jsonrpc_error(400, nullptr, mcp::error_code::invalid_request,
                                    "Bad Request: send initialize first"));
    co_return;
  }
  // The client's answer to a question the gateway itself asked (an approval) ends here.
  if (message.is_response() &&
      services_.client_requests.consume(ClientRequests::session_key(*upstream_claims), message)) {
    co_await out.send(json_response(202, "Accepted"));
    co_return;
  }
  if (session->bridged) {
    // Its notifications and answers are the bridge's to take; the POST only acknowledges.
    LegacyStreamResponder bridged_out(*session);
    auto bridged = bridged_message(*session, message, caller,
                                   copy_sender(request, origin, services_.filters, caller, sealed),
                                   upstream_claims);
    bridged.origin = &origin;
    co_await services_.bridge.serve_bridged(bridged_out, bridged);
    co_await out.send(json_response(202, "Accepted"));
    if (message.method() == "notifications/initialized" && session->start_listening_once()) {
      // The listen ends when the session's stream closes (abort_listen_stream).
      const auto executor = co_await asio::this_coro::executor;
      auto stop = std::make_shared<asio::cancellation_signal>();
      session->set_bridged_listen(stop, executor);
      if (session->closed) co_return;
      asio::co_spawn(executor, pump_bridged_messages(session, services_),
                     asio::bind_cancellation_slot(stop->slot(), asio::detached));
    }
    co_return;
  }
  HttpPort port(out);
  ExchangeRequest described;
  described.upstream = upstream.name();
  described.routing = upstream.member_routing();
  described.transport = DownstreamTransport::legacy_sse;
  described.message = &message;
  described.session = &*upstream_claims;
  described.identity = caller;
  described.protocol_version = session->protocol_version();
  described.sender = copy_sender(request, origin, services_.filters, caller, sealed);
  ExchangeRunner runner(services_.filters, port, std::move(described));
  if (co_await runner.run_request_filters() != ExchangeRunner::Verdict::forward) co_return;
  auto context = runner.forward_context(upstream);
  runner.forwarding();
  auto reply = co_await upstream.send(message, runner.forwarded_body(std::move(request.body())),
                                      &*upstream_claims, context);
  runner.upstream_answered();
  runner.exchange().outcome = outcome_of(reply);
  using Kind = upstream::UpstreamReply::Kind;
  switch (reply.kind) {
    case Kind::accepted:
    case Kind::message:
      co_await runner.answer(json_response(202, "Accepted"));
      if (message.method() == "notifications/initialized" && session->start_listening_once()) {
        asio::co_spawn(co_await asio::this_coro::executor, pump_server_messages(session),
                       asio::detached);
      }
      break;
    case Kind::session_not_found:
      co_await runner.answer(jsonrpc_error(
          404, nullptr, mcp::error_code::session_not_found,
          "Session not found: upstream '" + upstream.name() + "' no longer knows it"));
      break;
    case Kind::rejected:
    case Kind::not_supported: {
      http::Response response{
          static_cast<bhttp::status>(reply.http_status ? reply.http_status : 502), 11};
      if (!reply.content_type.empty()) response.set(bhttp::field::content_type, reply.content_type);
      response.body() = std::move(reply.body);
      co_await runner.answer(std::move(response));
      break;
    }
    default:
      co_await runner.answer(reply_to_response(reply, nullptr, upstream.name()));
      break;
  }
}

}  // namespace membrane::gateway
