// Streamable HTTP upstream (MCP 2025-11-25 transports): each downstream message becomes one POST
// on a pooled keep-alive connection; an SSE reply is decoded event by event as bytes arrive.
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>

#include "http/client.hpp"
#include "http/tls.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/protocol.hpp"
#include "upstream/credentials.hpp"
#include "upstream/factory.hpp"

namespace membrane::upstream {
namespace {

namespace bhttp = boost::beast::http;

constexpr std::size_t max_error_body_bytes = 64 * 1024;

bool is_event_stream(std::string_view content_type) {
  return content_type.substr(0, 17) == "text/event-stream";
}

// application/json, with or without parameters (charset), in any letter case.
bool is_json_type(std::string_view content_type) {
  const auto type = content_type.substr(0, content_type.find(';'));
  constexpr std::string_view json = "application/json";
  std::size_t begin = type.find_first_not_of(' ');
  std::size_t end = type.find_last_not_of(' ');
  if (begin == std::string_view::npos) return false;
  const auto bare = type.substr(begin, end - begin + 1);
  return bare.size() == json.size() &&
         std::equal(bare.begin(), bare.end(), json.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

// Why an upstream message cannot be relayed; empty when it can. What the gateway passes on is one
// JSON object in valid UTF-8: what the policy stages parse (redaction) is then what the client
// parses. The check builds no document.
std::string unreadable_message(std::string_view data) {
  // Bounded in depth: whatever the gateway relays, its stages may parse and walk.
  const auto limit = json::max_depth();
  switch (json::check(data, limit)) {
    case json::ParseError::none:
      break;
    case json::ParseError::too_deep:
      return json::too_deep_message(limit);
    case json::ParseError::not_json:
      return "not valid JSON in UTF-8";
  }
  const auto first = data.find_first_not_of(" \t\r\n");
  if (data[first] != '{') return "JSON, but not a JSON-RPC message (not an object)";
  return {};
}

std::string too_large(std::size_t limit, std::string_view where) {
  return "a message too large: more than " + std::to_string(limit) + " bytes " +
         std::string(where) + " (limits.max_upstream_message)";
}

// The SSE reply to one request, or a session's listen stream, decoded event by event.
//
// A request's stream has a quiet limit (timeouts.upstream_response): the longest the upstream may
// send no event about the request. Past it the stream fails (the client gets -32002), the
// connection closes, and `on_quiet` tells a session server the request is cancelled. Bytes that
// are not events (SSE comments, an event never ended) do not count as an answer: an upstream
// keeping its connection busy must not hold a call forever while the gateway's keep-alives keep
// the client from timing out. Listen streams have no limit: silence is their normal state.
class HttpEventStream final : public ReplyStream {
 public:
  HttpEventStream(std::unique_ptr<http::ClientResponse> response, std::string upstream_name,
                  std::size_t max_event_bytes, std::chrono::milliseconds quiet_limit = {},
                  std::function<void()> on_quiet = {})
      : response_(std::move(response)),
        upstream_name_(std::move(upstream_name)),
        max_event_bytes_(max_event_bytes),
        decoder_(max_event_bytes),
        quiet_limit_(quiet_limit),
        on_quiet_(std::move(on_quiet)),
        last_event_(std::chrono::steady_clock::now()) {}

  awaitable<StreamRead> next() override {
    while (events_.empty()) {
      if (finished_) co_return ended();
      if (quiet_limit_.count() > 0) response_->expires_at(last_event_ + quiet_limit_);
      auto [ec, piece] = co_await response_->read_some();
      if (ec) {
        finished_ = true;
        if (aborted_) co_return StreamRead{};
        if (ec == boost::beast::error::timeout && quiet_limit_.count() > 0) {
          if (on_quiet_) on_quiet_();
          co_return failed("sent nothing for this request in " +
                           std::to_string(quiet_limit_.count()) +
                           " ms (timeouts.upstream_response); it was cancelled");
        }
        co_return failed("broke off the stream: " + ec.message());
      }
      if (piece.empty()) {
        finished_ = true;
        continue;
      }
      std::vector<http::SseEvent> decoded;
      if (!decoder_.feed(piece, decoded)) {
        finished_ = true;
        response_->abort();
        co_return failed("sent " + too_large(max_event_bytes_, "in one event"));
      }
      for (auto& event : decoded) {
        last_event_ = std::chrono::steady_clock::now();
        if (event.has_id) saw_event_id_ = true;
        if (!event.data.empty()) {
          if (auto why = unreadable_message(event.data); !why.empty()) {
            if (dropped_++ == 0) {
              first_drop_ = why;
              log::warn("upstream '", upstream_name_, "' sent an SSE event of ", event.data.size(),
                        " bytes that is ", why, ": dropped (further ones on this stream too)");
            }
            // An id still counts for resumption; the data never reaches the client.
            if (!event.has_id) continue;
            event.data.clear();
          }
        }
        events_.push_back(std::move(event));
      }
    }
    StreamRead read;
    read.status = ReadStatus::message;
    read.event = std::move(events_.front());
    events_.pop_front();
    co_return read;
  }

  void abort() override {
    aborted_ = true;
    response_->abort();
  }

  bool resumable() const override { return saw_event_id_; }

 private:
  StreamRead failed(std::string what) const {
    StreamRead read;
    read.status = ReadStatus::failed;
    read.error = "upstream '" + upstream_name_ + "' " + what;
    return read;
  }

  // The end of the stream. One that carried messages the gateway had to drop is a failure: the
  // client is told what the upstream sent instead of only that it never answered.
  StreamRead ended() {
    if (dropped_ == 0 || reported_drops_) return StreamRead{};
    reported_drops_ = true;
    return failed("closed the stream after sending " + std::to_string(dropped_) +
                  " event(s) that the gateway dropped (" + first_drop_ + ")");
  }

  std::unique_ptr<http::ClientResponse> response_;
  std::string upstream_name_;
  std::size_t max_event_bytes_;
  http::SseDecoder decoder_;
  std::chrono::milliseconds quiet_limit_;
  std::function<void()> on_quiet_;
  std::chrono::steady_clock::time_point last_event_;
  std::deque<http::SseEvent> events_;
  std::size_t dropped_ = 0;
  std::string first_drop_;
  bool reported_drops_ = false;
  bool finished_ = false;
  bool aborted_ = false;
  bool saw_event_id_ = false;
};

class HttpUpstream final : public Upstream {
 public:
  HttpUpstream(HttpUpstreamOptions options, http::UpstreamUrl url,
               http::ClientOptions client_options, std::size_t workers)
      : options_(std::move(options)), client_(std::move(url), std::move(client_options), workers) {}

  const std::string& name() const override { return options_.name; }
  std::string_view transport() const override { return "http"; }
  const UpstreamTraits& traits() const override {
    static constexpr UpstreamTraits http{.replies_at_once = false,
                                         .cancels_dropped_calls = false,
                                         .shared_session_stream = true,
                                         .process_per_session = false,
                                         .needs_initialize_replay = false,
                                         .may_be_stateless = true};
    return http;
  }
  std::string_view declared_protocol() const override { return options_.protocol; }

  awaitable<UpstreamReply> send(const mcp::Message& message, std::string raw,
                                const mcp::SessionClaims* session,
                                const ForwardContext& context) override {
    auto request = make_request(bhttp::verb::post, session, context);
    request.set(bhttp::field::content_type, "application/json");
    request.set(bhttp::field::accept, "application/json, text/event-stream");
    request.body() = std::move(raw);
    if (auto problem = co_await add_credentials(request); !problem.empty())
      co_return UpstreamReply::failure(std::move(problem));
    auto result = co_await deliver(request, context.idempotent, message.method());
    if (!result.response) co_return UpstreamReply::failure(describe_unavailable(result.error));
    co_return co_await read_post_reply(message, session, context, std::move(result.response));
  }

  // A request that changes nothing goes out once more, on a fresh connection, when the first
  // attempt failed before any answer. The request is taken by reference (and sent, so consumed)
  // and its copy is on the heap: the frames of the coroutines a call goes through stay under 1 KiB,
  // which Asio recycles per thread (a larger one is a trip through malloc's slow path on every
  // call).
  awaitable<http::ClientResult> deliver(http::OutgoingRequest& request, bool idempotent,
                                        std::string_view method) {
    std::unique_ptr<http::OutgoingRequest> retry;
    if (idempotent) retry = std::make_unique<http::OutgoingRequest>(request);
    auto result = co_await client_.send(std::move(request));
    if (!result.response && retry) {
      log::debug("upstream '", options_.name, "': retrying ", method, " after: ", result.error);
      result = co_await client_.send(std::move(*retry));
    }
    co_return result;
  }

  // The reading apart from the sending, for the same reason as deliver's.
  awaitable<UpstreamReply> read_post_reply(const mcp::Message& message,
                                           const mcp::SessionClaims* session,
                                           const ForwardContext& context,
                                           std::unique_ptr<http::ClientResponse> answer) {
    auto& response = *answer;
    UpstreamReply reply;
    reply.http_status = response.status();
    reply.content_type = std::string(response.header(bhttp::field::content_type));
    if (message.is_initialize())
      reply.upstream_session = std::string(response.header(mcp::header::session_id));

    if (reply.http_status == 202 || (reply.http_status == 200 && !message.is_request() &&
                                     response.header(bhttp::field::content_length) == "0")) {
      co_await response.read_all(max_error_body_bytes);
      reply.kind = UpstreamReply::Kind::accepted;
      co_return reply;
    }
    if (reply.http_status == 404 && session) {
      co_await response.read_all(max_error_body_bytes);
      reply.kind = UpstreamReply::Kind::session_not_found;
      co_return reply;
    }
    if (reply.http_status < 200 || reply.http_status >= 300) {
      auto [ec, body] = co_await response.read_all(max_error_body_bytes);
      reply.kind = UpstreamReply::Kind::rejected;
      reply.body = std::move(body);
      co_return reply;
    }
    if (is_event_stream(reply.content_type)) {
      reply.kind = UpstreamReply::Kind::stream;
      // A listen request's stream is quiet by nature; a call's must answer in time.
      const bool bounded = message.is_request() && message.method() != "subscriptions/listen";
      std::chrono::milliseconds quiet_limit{0};
      std::function<void()> on_quiet;
      if (bounded) {
        quiet_limit = options_.response_timeout;
        on_quiet = cancel_on_quiet(message, session, context, co_await asio::this_coro::executor);
      }
      reply.stream = std::make_unique<HttpEventStream>(std::move(answer), options_.name,
                                                       options_.max_message_bytes, quiet_limit,
                                                       std::move(on_quiet));
      co_return reply;
    }
    auto [ec, body] = co_await response.read_all(options_.max_message_bytes);
    if (ec) {
      std::string reason = "upstream '" + options_.name + "' failed while sending its response: ";
      reason += ec == bhttp::error::body_limit
                    ? too_large(options_.max_message_bytes, "in its response body")
                : ec == boost::beast::error::timeout
                    ? "not complete within " + std::to_string(options_.response_timeout.count()) +
                          " ms (timeouts.upstream_response)"
                    : ec.message();
      co_return UpstreamReply::failure(std::move(reason));
    }
    reply.body = std::move(body);
    if (reply.body.empty()) {
      reply.kind = UpstreamReply::Kind::accepted;
      co_return reply;
    }
    // MCP transports: a POST is answered with application/json or text/event-stream, nothing
    // else. The body is passed on byte for byte, so it is checked first.
    if (!is_json_type(reply.content_type)) {
      co_return UpstreamReply::failure(
          "upstream '" + options_.name + "' answered with Content-Type '" +
          reply.content_type.substr(0, 100) +
          "', not application/json or text/event-stream (MCP Streamable HTTP)");
    }
    if (auto why = unreadable_message(reply.body); !why.empty()) {
      co_return UpstreamReply::failure("upstream '" + options_.name +
                                       "' answered with a body that is " + why);
    }
    reply.kind = UpstreamReply::Kind::message;
    co_return reply;
  }

  awaitable<UpstreamReply> listen(const mcp::SessionClaims& session,
                                  const ForwardContext& context) override {
    auto request = make_request(bhttp::verb::get, &session, context);
    request.set(bhttp::field::accept, "text/event-stream");
    if (!context.last_event_id.empty())
      request.set(mcp::header::last_event_id, context.last_event_id);
    if (auto problem = co_await add_credentials(request); !problem.empty())
      co_return UpstreamReply::failure(std::move(problem));
    auto result = co_await client_.send(std::move(request));
    if (!result.response) co_return UpstreamReply::failure(describe_unavailable(result.error));
    auto& response = *result.response;
    UpstreamReply reply;
    reply.http_status = response.status();
    reply.content_type = std::string(response.header(bhttp::field::content_type));
    if (reply.http_status == 200 && is_event_stream(reply.content_type)) {
      reply.kind = UpstreamReply::Kind::stream;
      reply.stream = std::make_unique<HttpEventStream>(std::move(result.response), options_.name,
                                                       options_.max_message_bytes);
      co_return reply;
    }
    auto [ec, body] = co_await response.read_all(max_error_body_bytes);
    reply.body = std::move(body);
    reply.kind = reply.http_status == 405   ? UpstreamReply::Kind::not_supported
                 : reply.http_status == 404 ? UpstreamReply::Kind::session_not_found
                                            : UpstreamReply::Kind::rejected;
    co_return reply;
  }

  awaitable<UpstreamReply> end_session(const mcp::SessionClaims& session,
                                       const ForwardContext& context) override {
    UpstreamReply reply;
    if (session.upstream_session.empty()) {
      // The upstream never issued a session: there is nothing to end on its side.
      reply.kind = UpstreamReply::Kind::accepted;
      reply.http_status = 200;
      co_return reply;
    }
    auto request = make_request(bhttp::verb::delete_, &session, context);
    if (auto problem = co_await add_credentials(request); !problem.empty())
      co_return UpstreamReply::failure(std::move(problem));
    auto result = co_await client_.send(std::move(request));
    if (!result.response) co_return UpstreamReply::failure(describe_unavailable(result.error));
    auto& response = *result.response;
    reply.http_status = response.status();
    auto [ec, body] = co_await response.read_all(max_error_body_bytes);
    reply.body = std::move(body);
    reply.kind = reply.http_status < 300    ? UpstreamReply::Kind::accepted
                 : reply.http_status == 405 ? UpstreamReply::Kind::not_supported
                 : reply.http_status == 404 ? UpstreamReply::Kind::session_not_found
                                            : UpstreamReply::Kind::rejected;
    co_return reply;
  }

  awaitable<void> stop() override {
    client_.close_idle();
    co_return;
  }

 private:
  // The gateway's own access token for this upstream, when it has one configured; an error
  // text when none could be had.
  awaitable<std::string> add_credentials(http::OutgoingRequest& request) {
    if (!options_.credentials) co_return std::string();
    auto credentials = co_await options_.credentials->authorization();
    if (!credentials.error.empty()) co_return std::move(credentials.error);
    request.set(bhttp::field::authorization, credentials.authorization);
    co_return std::string();
  }

  http::OutgoingRequest make_request(bhttp::verb verb, const mcp::SessionClaims* session,
                                     const ForwardContext& context) const {
    http::OutgoingRequest request(verb, client_.url().target);
    for (const auto& [name, value] : options_.headers)
      request.set(name, value);
    if (session && !session->upstream_session.empty()) {
      request.set(mcp::header::session_id, session->upstream_session);
    }
    if (!context.protocol_version.empty())
      request.set(mcp::header::protocol_version, context.protocol_version);
    if (!context.txn_token.empty()) request.set("Txn-Token", context.txn_token);
    if (!context.traceparent.empty()) request.set("traceparent", context.traceparent);
    if (!context.tracestate.empty()) request.set("tracestate", context.tracestate);
    for (const auto& [name, value] : context.headers)
      request.set(name, value);
    return request;
  }

  // What the stream of a request does when the upstream stays silent past its limit: a session
  // server is told the request is cancelled (MCP cancellation), as the client itself would; a
  // 2026-07-28 server learns it from its request closing, and initialize may not be cancelled.
  std::function<void()> cancel_on_quiet(const mcp::Message& message,
                                        const mcp::SessionClaims* session,
                                        const ForwardContext& context,
                                        asio::any_io_executor executor) {
    if (message.is_initialize() || mcp::is_stateless_protocol_version(context.protocol_version))
      return {};
    std::optional<mcp::SessionClaims> claims;
    if (session) claims = *session;
    return [this, executor, claims = std::move(claims), id = message.id(),
            version = context.protocol_version] {
      asio::co_spawn(executor, tell_cancelled(claims, id, version), asio::detached);
    };
  }

  awaitable<void> tell_cancelled(std::optional<mcp::SessionClaims> session, mcp::Json id,
                                 std::string protocol_version) {
    const mcp::Json cancelled = {
        {"jsonrpc", "2.0"},
        {"method", "notifications/cancelled"},
        {"params",
         {{"requestId", std::move(id)},
          {"reason", "the gateway gave up waiting (timeouts.upstream_response)"}}}};
    ForwardContext context;
    context.protocol_version = std::move(protocol_version);
    auto request = make_request(bhttp::verb::post, session ? &*session : nullptr, context);
    request.set(bhttp::field::content_type, "application/json");
    request.set(bhttp::field::accept, "application/json, text/event-stream");
    request.body() = cancelled.dump();
    if (auto problem = co_await add_credentials(request); !problem.empty()) co_return;
    auto result = co_await client_.send(std::move(request));
    if (!result.response) {
      log::debug("upstream '", options_.name,
                 "': notifications/cancelled not delivered: ", result.error);
      co_return;
    }
    co_await result.response->read_all(max_error_body_bytes);
  }

  std::string describe_unavailable(const std::string& error) const {
    return "upstream '" + options_.name + "' is unavailable: " + error;
  }

  HttpUpstreamOptions options_;
  http::HttpClient client_;
};

}  // namespace

std::unique_ptr<Upstream> make_http_upstream(HttpUpstreamOptions options, std::size_t workers) {
  std::string error;
  auto url = http::UpstreamUrl::parse(options.url, error);
  if (!url) throw std::runtime_error("upstream '" + options.name + "': " + error);
  http::ClientOptions client_options;
  client_options.connect_timeout = options.connect_timeout;
  client_options.response_timeout = options.response_timeout;
  if (url->tls) {
    client_options.tls = http::make_client_tls_context(options.ca_file, options.verify_tls);
    client_options.verify_host_name = options.verify_tls;
    if (!options.verify_tls) {
      log::warn("upstream '", options.name, "': TLS certificate verification is DISABLED");
    }
  }
  return std::make_unique<HttpUpstream>(std::move(options), std::move(*url),
                                        std::move(client_options), workers);
}

}  // namespace membrane::upstream
