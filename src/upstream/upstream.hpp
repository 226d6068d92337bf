// An upstream is one configured MCP server, reached over Streamable HTTP or a stdio child. The
// gateway hands it one downstream message at a time (an exchange) and gets back a reply in the
// shape the downstream transport needs: accepted, one message, or a stream of messages.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "http/asio.hpp"
#include "http/overload.hpp"
#include "membrane/http/sse.hpp"
#include "membrane/mcp/jsonrpc.hpp"
#include "membrane/mcp/sealed_session.hpp"
#include "upstream/member_routing.hpp"

namespace membrane::upstream {

// What the downstream request carried that the upstream must see too.
struct ForwardContext {
  std::string protocol_version;  // downstream MCP-Protocol-Version (empty when absent)
  std::string last_event_id;     // downstream Last-Event-ID (listen only)
  std::string txn_token;         // the transaction token to send in Txn-Token (empty: none)
  std::string traceparent;       // W3C trace context for the upstream hop (empty: none)
  std::string tracestate;
  // 2026-07-28 request headers (Mcp-Method, Mcp-Name, Mcp-Param-*), sent as given.
  std::vector<std::pair<std::string, std::string>> headers;
  // The request may be sent again on another connection when the first attempt fails before an
  // answer (list and discover calls: they change nothing).
  bool idempotent = false;
  // Who asks: "sub:<subject>" when authenticated, else "addr:<client address>". stdio upstreams
  // cap the processes one caller may hold with it.
  std::string caller;
  // The gateway asks for itself, to learn what the server speaks (server/discover): the answer
  // must come soon, and a stdio upstream spends a short-lived process on it, so that a server
  // that speaks only sessions is not left with a stateless child it will never use.
  bool probe = false;
  // A virtual server's member this message was judged for (the exchange's route), so that it goes
  // exactly where the policy saw it go; unset: the virtual server routes it itself.
  std::optional<MemberTarget> member;
};

enum class ReadStatus { message, end, failed };

struct StreamRead {
  ReadStatus status = ReadStatus::end;
  http::SseEvent event;  // the message (data = one JSON-RPC message; may be empty for priming)
  std::string error;     // failed: why, for the log and the error event
};

// Messages of one reply, in arrival order.
class ReplyStream {
 public:
  virtual ~ReplyStream() = default;
  virtual awaitable<StreamRead> next() = 0;
  // Stop: a pending next() completes (end or failed) promptly. Called on the reader's thread.
  virtual void abort() = 0;
  // True when the upstream assigns SSE event ids the client can resume from.
  virtual bool resumable() const { return false; }
};

struct UpstreamReply {
  enum class Kind {
    accepted,           // 202: notification or response delivered
    message,            // a single JSON-RPC message in `body`
    stream,             // messages arrive over `stream`
    session_not_found,  // the upstream no longer knows the session (downstream gets 404)
    rejected,           // the upstream answered with an HTTP error: `http_status`, `body`
    not_supported,      // the upstream does not offer this (405)
    unavailable,        // the upstream cannot be reached or failed: `body` says why
    overloaded,         // at a capacity limit (`overload_limit`): `body` says which,
                        // `retry_after` when to try again
  };
  Kind kind = Kind::unavailable;
  unsigned http_status = 0;
  std::string content_type;
  std::string body;
  std::unique_ptr<ReplyStream> stream;
  // initialize: what identifies the upstream side of the new session (sealed into the
  // downstream session id).
  std::string upstream_session;
  std::chrono::seconds retry_after{0};  // overloaded
  http::OverloadLimit overload_limit = http::OverloadLimit::processes;

  static UpstreamReply overload(http::OverloadLimit limit, std::string reason,
                                std::chrono::seconds retry) {
    UpstreamReply reply;
    reply.kind = Kind::overloaded;
    reply.overload_limit = limit;
    reply.http_status = http::is_per_caller(limit) ? 429 : 503;
    reply.body = std::move(reason);
    reply.retry_after = retry;
    return reply;
  }

  static UpstreamReply failure(std::string reason) {
    UpstreamReply reply;
    reply.kind = Kind::unavailable;
    reply.body = std::move(reason);
    return reply;
  }
};

// What the gateway's flows may rely on for one kind of upstream. The gateway branches on these,
// never on the transport's name.
struct UpstreamTraits {
  // send() returns once a session's message is written and the answer comes on the returned
  // stream (stdio); otherwise send() waits for the server's reply, and a caller that must notice
  // the client leaving meanwhile races the two. A stateless (2026-07-28) message always waits
  // for the first of the reply.
  bool replies_at_once = false;
  // Dropping a call's reply stream unanswered already tells the server (stdio sends
  // notifications/cancelled to its child); otherwise the gateway tells it.
  bool cancels_dropped_calls = false;
  // A session's server-initiated messages come on one standalone stream the gateway opens per
  // session (Streamable HTTP GET), which that session's calls and listens share.
  bool shared_session_stream = false;
  // Each session is a server process of its own, alive as long as the session is (stdio): an
  // idle session holds it.
  bool process_per_session = false;
  // The server keeps per-session state only in this gateway process (stdio), so the sealed
  // session must carry the client's initialize params to rebuild it elsewhere.
  bool needs_initialize_replay = false;
  // May speak the 2026-07-28 stateless revision (found out by discovery unless declared).
  bool may_be_stateless = false;
  // The server sees the client's HTTP headers (Mcp-Param-*), and checks them itself; over stdio
  // the gateway does it.
  bool sees_request_headers = true;
};

class Upstream {
 public:
  virtual ~Upstream() = default;
  virtual const std::string& name() const = 0;
  // "http" or "stdio", for logs only: flows read traits().
  virtual std::string_view transport() const = 0;
  virtual const UpstreamTraits& traits() const = 0;
  // The MCP revision the operator declared for this server: "" = find out (server/discover),
  // else a revision such as "2026-07-28" or "2025-11-25".
  virtual std::string_view declared_protocol() const { return {}; }
  // A virtual server (several upstreams published as one) routes messages to its members; every
  // other upstream: null.
  virtual const MemberRouting* member_routing() const { return nullptr; }

  // Forwards one message. `session` is null for initialize and for stateless (2026-07-28)
  // messages.
  virtual awaitable<UpstreamReply> send(const mcp::Message& message, std::string raw,
                                        const mcp::SessionClaims* session,
                                        const ForwardContext& context) = 0;
  // The server-initiated message stream of a session (Streamable HTTP GET).
  virtual awaitable<UpstreamReply> listen(const mcp::SessionClaims& session,
                                          const ForwardContext& context) = 0;
  // Ends a session (Streamable HTTP DELETE; the legacy SSE stream closing).
  virtual awaitable<UpstreamReply> end_session(const mcp::SessionClaims& session,
                                               const ForwardContext& context) = 0;
  // Shutdown: stop children, close pooled connections. Called once, from worker 0.
  virtual awaitable<void> stop() = 0;
};

}  // namespace membrane::upstream
