// Streamable HTTP upstream (MCP 2025-11-25 transports): each downstream message becomes one POST
// on a pooled keep-alive connection; an SSE reply is decoded event by event as bytes arrive.
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <deque>

#include "http/client.hpp"
#include "http/tls.hpp"
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

class HttpEventStream final : public ReplyStream {
 public:
  HttpEventStream(std::unique_ptr<http::ClientResponse> response, std::string upstream_name,
                  std::size_t max_event_bytes)
      : response_(std::move(response)),
        upstream_name_(std::move(upstream_name)),
        decoder_(max_event_bytes) {}

  awaitable<StreamRead> next() override {
    while (events_.empty()) {
      if (finished_) co_return StreamRead{};
      auto [ec, piece] = co_await response_->read_some();
      if (ec) {
        finished_ = true;
        StreamRead read;
        read.status = aborted_ ? ReadStatus::end : ReadStatus::failed;
        read.error = "upstream '" + upstream_name_ + "' broke off the stream: " + ec.message();
        co_return read;
      }
      if (piece.empty()) {
        finished_ = true;
        continue;
      }
      std::vector<http::SseEvent> decoded;
      if (!decoder_.feed(piece, decoded)) {
        finished_ = true;
        response_->abort();
        StreamRead read;
        read.status = ReadStatus::failed;
        read.error = "upstream '" + upstream_name_ + "' sent an event larger than the limit";
        co_return read;
      }
      for (auto& event : decoded) {
        if (event.has_id) saw_event_id_ = true;
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
  std::unique_ptr<http::ClientResponse> response_;
  std::string upstream_name_;
  http::SseDecoder decoder_;
  std::deque<http::SseEvent> events_;
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
  bool needs_initialize_replay() const override { return false; }
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
    // A request that changes nothing goes out once more, on a fresh connection, when the first
    // attempt failed before any answer.
    std::optional<bhttp::request<bhttp::string_body>> retry;
    if (context.idempotent) retry = request;
    auto result = co_await client_.send(std::move(request));
    if (!result.response && retry) {
      log::debug("upstream '", options_.name, "': retrying ", message.method(),
                 " after: ", result.error);
      result = co_await client_.send(std::move(*retry));
    }
    if (!result.response) co_return UpstreamReply::failure(describe_unavailable(result.error));
    auto& response = *result.response;

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
      reply.stream = std::make_unique<HttpEventStream>(std::move(result.response), options_.name,
                                                       options_.max_message_bytes);
      co_return reply;
    }
    auto [ec, body] = co_await response.read_all(options_.max_message_bytes);
    if (ec) {
      std::string reason = "upstream '" + options_.name + "' failed while sending its response: ";
      reason += ec == bhttp::error::body_limit ? std::string("larger than the message limit")
                                               : ec.message();
      co_return UpstreamReply::failure(std::move(reason));
    }
    reply.body = std::move(body);
    reply.kind = reply.body.empty() ? UpstreamReply::Kind::accepted : UpstreamReply::Kind::message;
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
  awaitable<std::string> add_credentials(bhttp::request<bhttp::string_body>& request) {
    if (!options_.credentials) co_return std::string();
    auto credentials = co_await options_.credentials->authorization();
    if (!credentials.error.empty()) co_return std::move(credentials.error);
    request.set(bhttp::field::authorization, credentials.authorization);
    co_return std::string();
  }

  bhttp::request<bhttp::string_body> make_request(bhttp::verb verb,
                                                  const mcp::SessionClaims* session,
                                                  const ForwardContext& context) const {
    bhttp::request<bhttp::string_body> request{verb, client_.url().target, 11};
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
