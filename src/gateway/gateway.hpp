// The gateway's HTTP handler: routes /mcp/<name> (Streamable HTTP, sessions and 2026-07-28
// stateless), /sse/<name> (legacy HTTP+SSE), /healthz and /readyz; validates Origin/Host first.
// Every MCP message becomes an exchange that an ExchangeRunner carries through the filter chain
// to its upstream; the transports (transports/) only speak their wire format.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "cluster/rate_limiter.hpp"
#include "gateway/admission.hpp"
#include "gateway/bridging.hpp"
#include "gateway/client_requests.hpp"
#include "gateway/ended_sessions.hpp"
#include "gateway/exchange/filter_chain.hpp"
#include "gateway/exchange/runner.hpp"
#include "gateway/remote_jwks.hpp"
#include "gateway/result_cache.hpp"
#include "gateway/revision.hpp"
#include "gateway/tool_param_headers.hpp"
#include "http/server.hpp"
#include "membrane/http/origin_policy.hpp"
#include "membrane/identity/authenticator.hpp"
#include "membrane/identity/token_exchange.hpp"
#include "membrane/mcp/sealed_session.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway {

struct GatewayOptions {
  // Also served at /mcp and /sse (default_upstream); empty = none.
  std::string default_upstream;
  http::OriginPolicy origin_policy{{}, {}, true};
  std::shared_ptr<const mcp::SessionSealer> sealer;
  std::chrono::seconds session_max_age{24 * 3600};
  std::chrono::milliseconds sse_keep_alive{15'000};
  std::size_t max_buffered_messages = 1024;
  // How long a confirmation asked of the human (a policy `ask`) may stay unanswered.
  std::chrono::milliseconds approval_timeout{120'000};
  // OAuth resource server; null = every caller is anonymous.
  std::shared_ptr<const identity::Authenticator> authenticator;
  // The issuer's keys when auth.jwks is a URL; null when they come from a file.
  std::shared_ptr<RemoteJwks> remote_jwks;
  // Scopes a caller needs for one upstream, on top of the authenticator's.
  std::map<std::string, std::vector<std::string>, std::less<>> upstream_scopes;
  // The gateway's public base URL (https://host[:port]) for protected-resource metadata; empty =
  // from the request's Host header.
  std::string public_url;
  // The transaction-token service's public keys (a JWKS document) for /.well-known/jwks.json;
  // empty when transaction tokens are off.
  std::string published_keys;
  // The token-exchange endpoint at POST /txn/token; null when not configured.
  std::shared_ptr<const identity::TokenExchange> token_exchange;
  // Session ids ended with DELETE (null: kept in this process only). Upstreams disagree on how
  // they answer a dead session (the spec says 404; some say 400), so the gateway answers 404.
  std::shared_ptr<EndedSessions> ended_sessions;
  // Where policy rate limits keep their buckets: this process (null: a local store is made) or
  // Redis, shared by every replica.
  std::shared_ptr<cluster::RateLimiter> rate_limiter;
  // Why this replica should take no traffic now besides draining ("" = none), for /readyz: e.g.
  // an audit log that refuses calls while it cannot be written.
  std::function<std::string()> readiness_problem;
  // Overload limits (limits.max_streams, max_sessions, max_sessions_per_caller, session_idle),
  // and where their refusals are counted (null: counted here only).
  AdmissionOptions admission;
  std::shared_ptr<http::OverloadStats> overload_stats;
  // A stdio session counts as live at least as long as its idle child is kept.
  std::chrono::milliseconds stdio_session_idle{30 * 60'000};
};

using Caller = std::shared_ptr<const identity::Identity>;

class LegacySseTransport;
class HttpPort;
class SessionClientPort;
struct CheckedPost;  // a POST checked before it is forwarded (transports/streamable.cpp)

// One request of a stateless (2026-07-28) client on its way through the gateway.
struct StatelessCall {
  const http::Request* request = nullptr;
  upstream::Upstream* upstream = nullptr;
  const mcp::Message* message = nullptr;
  const mcp::SessionClaims* client = nullptr;  // the client as this request describes it
  mcp::Json client_info;
  std::string digest;                     // request_digest(message)
  mcp::Json state = mcp::Json::object();  // the gateway's own requestState, opened
  mcp::Json input_responses = mcp::Json::object();
  bool approved = false;        // a policy `ask` was answered yes for this request
  bool limits_charged = false;  // this call spent its rate-limit tokens on an earlier round
  std::string sealed_state;     // the requestState as the client sent it (empty: first round)
  std::string parked_id;        // the call parked while the client answers the upstream
  std::string caller;           // caller_key(): per-caller limits of stdio upstreams
};

// Counts an SSE response stream while it is open.
class StreamCount {
 public:
  explicit StreamCount(std::atomic<int>& count) : count_(count) { ++count_; }
  ~StreamCount() { --count_; }
  StreamCount(const StreamCount&) = delete;
  StreamCount& operator=(const StreamCount&) = delete;

 private:
  std::atomic<int>& count_;
};

// One message of a session client whose server speaks only 2026-07-28, as the bridge needs it,
// whichever transport (Streamable HTTP, legacy HTTP+SSE) it came by.
struct BridgedMessage {
  upstream::Upstream* upstream = nullptr;
  const mcp::Message* message = nullptr;
  Caller caller;
  DownstreamTransport transport = DownstreamTransport::streamable_http;
  // Where the request came from: the HTTP request itself (Streamable HTTP), or what the legacy
  // transport copied of it before answering the POST.
  const http::Request* http = nullptr;
  const http::RequestOrigin* origin = nullptr;
  std::shared_ptr<const ExchangeRequest::Sender> sender;
  std::string protocol_version;
  // What keys the session's state on this replica (its log level, its subscriptions, its calls
  // in flight): the session id the client sends.
  std::string_view session_id;
  const mcp::SessionClaims* claims = nullptr;  // null for initialize
  // initialize: told of the session the bridge opened, before the client gets the answer (unset:
  // the session is only sealed into the answer's Mcp-Session-Id).
  std::function<void(const mcp::SessionClaims&)> on_opened;
};

// The session bridge (session_bridge.cpp) as the legacy transport reaches it.
class SessionClientBridge {
 public:
  virtual ~SessionClientBridge() = default;
  // Whether a session client of `upstream` is bridged (it speaks only 2026-07-28).
  virtual awaitable<bool> bridges_session_clients(upstream::Upstream& upstream) = 0;
  // Answers one message, or judges it and sends it on; what the client gets goes to `out`.
  virtual awaitable<void> serve_bridged(http::Responder& out, const BridgedMessage& bridged) = 0;
  // The session's server-initiated messages (its standalone stream), until either side ends.
  virtual awaitable<void> listen_for_session_client(http::Responder& out,
                                                    upstream::Upstream& upstream,
                                                    const mcp::SessionClaims& claims,
                                                    std::string session_id) = 0;
  // The session ended: what the bridge kept for it goes.
  virtual void end_bridged_session(std::string_view session_id) = 0;
};

// What the downstream transports share with the gateway that routes to them.
struct TransportServices {
  const GatewayOptions& options;
  const FilterChain& filters;
  ClientRequests& client_requests;
  AdmissionControl& admission;
  std::atomic<int>& streams;  // SSE response streams open now
  SessionClientBridge& bridge;
  // How long a session of `upstream` counts as live after its last use.
  std::chrono::seconds session_idle_window(const upstream::Upstream& upstream) const;
};

class Gateway final : private SessionClientBridge {
 public:
  Gateway(GatewayOptions options, std::vector<std::unique_ptr<upstream::Upstream>> upstreams,
          FilterChain filters);
  ~Gateway();

  awaitable<void> handle(http::Request& request, const http::RequestOrigin& origin,
                         http::Responder& out);

  void set_draining() { draining_ = true; }
  bool draining() const { return draining_; }
  // "" when ready; else what /readyz reports with 503 ("draining", "audit_unavailable", …).
  std::string not_ready_reason() const;
  // SSE response streams open now (request streams, listen streams, legacy sessions).
  int active_streams() const { return active_streams_.load(std::memory_order_relaxed); }
  std::size_t legacy_sessions() const;
  // Stops every upstream (children, pools). Run on worker 0 during shutdown.
  awaitable<void> stop_upstreams();
  // The overload limits (admission.hpp), read by /metrics.
  AdmissionControl& admission() const { return admission_; }
  // The questions the gateway asks clients, whose answers may be relayed between replicas.
  ClientRequests& client_requests() const { return client_requests_; }

 private:
  upstream::Upstream* find_upstream(std::string_view name) const;
  std::string upstream_names() const;
  std::chrono::seconds session_idle_window(const upstream::Upstream& upstream) const {
    return services_.session_idle_window(upstream);
  }
  // The upstream of a request that goes straight to the Streamable HTTP transport: /mcp/<name>
  // (or /mcp for the default upstream) with authorization off.
  upstream::Upstream* unauthenticated_mcp_route(const http::Request& request) const;
  awaitable<void> route_request(http::Request& request, const http::RequestOrigin& origin,
                                http::Responder& out);
  std::optional<http::Response> refuse_foreign_origin(const http::Request& request,
                                                      const http::RequestOrigin& origin) const;
  // The caller of an MCP endpoint, or the 401/403 answer when auth is on and they fail it.
  struct Authentication {
    Caller caller;
    std::optional<http::Response> refusal;
  };
  awaitable<Authentication> authenticate(const http::Request& request,
                                         const http::RequestOrigin& origin,
                                         std::string_view upstream, std::string_view resource_path);
  // Fetches the issuer's keys again (auth.jwks is a URL); false when nothing new was installed.
  awaitable<bool> refresh_issuer_keys();
  http::Response token_endpoint(const http::Request& request,
                                const http::RequestOrigin& origin) const;
  http::Response protected_resource_metadata(const http::Request& request,
                                             const http::RequestOrigin& origin,
                                             std::string_view resource_path) const;
  std::string base_url(const http::Request& request, const http::RequestOrigin& origin) const;
  awaitable<void> handle_streamable(http::Request& request, const http::RequestOrigin& origin,
                                    http::Responder& out, upstream::Upstream& upstream,
                                    const Caller& caller);
  awaitable<void> streamable_post(http::Request& request, const http::RequestOrigin& origin,
                                  http::Responder& out, upstream::Upstream& upstream,
                                  const Caller& caller, RequestAdmission& admitted);
  CheckedPost check_post(const http::Request& request, const http::RequestOrigin& origin,
                         const upstream::Upstream& upstream, const Caller& caller,
                         RequestAdmission& admitted);
  ExchangeRequest session_exchange_request(const upstream::Upstream& upstream,
                                           const mcp::Message& message,
                                           const mcp::SessionClaims* claims, const Caller& caller,
                                           std::string protocol_version,
                                           const http::Request& request,
                                           const http::RequestOrigin& origin) const;
  awaitable<void> streamable_stateless_post(http::Request& request,
                                            const http::RequestOrigin& origin, http::Responder& out,
                                            upstream::Upstream& upstream, const Caller& caller,
                                            const mcp::Message& message);
  // A session client's message to an upstream that speaks only 2026-07-28.
  awaitable<void> bridge_session_post(http::Responder& out, upstream::Upstream& upstream,
                                      const mcp::Message& message, const Caller& caller,
                                      http::Request& request, const http::RequestOrigin& origin,
                                      std::string protocol_version,
                                      const mcp::SessionClaims* claims);
  // Overload limits for a POSTed message before anything is forwarded (gateway_admission.cpp):
  // a stream slot for a request, a new session for initialize.
  std::optional<Refusal> admit_message(RequestAdmission& admitted, const http::Request& request,
                                       const mcp::Message& message,
                                       const http::RequestOrigin& origin, const Caller& caller,
                                       const upstream::Upstream& upstream);
  // A request on an opened session: it counts toward its caller's live sessions.
  // `message` is null for a GET.
  std::optional<Refusal> admit_session(RequestAdmission& admitted, const http::Request& request,
                                       const mcp::Message* message,
                                       const http::RequestOrigin& origin, const Caller& caller,
                                       const upstream::Upstream& upstream);
  // A session client's message on its way to a session-era upstream.
  awaitable<void> forward_to_session_upstream(SessionClientPort& port, ExchangeRunner& runner,
                                              upstream::Upstream& upstream, http::Request& request,
                                              const Caller& caller);
  // The upstream's reply to the exchange's message; none when the client left while waiting.
  awaitable<std::optional<upstream::UpstreamReply>> send_session_message(
      SessionClientPort& port, ExchangeRunner& runner, upstream::Upstream& upstream,
      http::Request& request);
  // An upstream's SSE reply relayed to a session client until it ends.
  awaitable<void> relay_session_stream(SessionClientPort& port, ExchangeRunner& runner,
                                       upstream::Upstream& upstream,
                                       std::unique_ptr<upstream::ReplyStream> stream,
                                       std::string sealed_session);
  SessionClientPort session_client_port(http::Responder& out,
                                        const mcp::SessionClaims* session) const;
  awaitable<void> streamable_get(http::Request& request, const http::RequestOrigin& origin,
                                 http::Responder& out, upstream::Upstream& upstream,
                                 const Caller& caller, RequestAdmission& admitted);
  awaitable<void> streamable_delete(http::Request& request, http::Responder& out,
                                    upstream::Upstream& upstream, const Caller& caller);

  // MCP 2026-07-28 (stateless.cpp, session_bridge.cpp).
  awaitable<UpstreamRevision::Era> upstream_era(upstream::Upstream& upstream);
  // Whether a session-era client's initialize is answered by the bridge (the upstream speaks only
  // 2026-07-28) instead of opening a session of its own upstream.
  awaitable<bool> bridges_session_clients(upstream::Upstream& upstream) override;
  awaitable<void> serve_bridged(http::Responder& out, const BridgedMessage& bridged) override;
  void end_bridged_session(std::string_view session_id) override;
  ExchangeRequest bridged_exchange(const BridgedMessage& bridged) const;
  awaitable<UpstreamRevision::Sessions> probe_sessions(upstream::Upstream& upstream);
  // The upstream's server/discover result; *reached says whether it answered at all.
  awaitable<std::optional<mcp::Json>> discover_upstream(upstream::Upstream& upstream,
                                                        const mcp::Json& envelope,
                                                        bool* reached = nullptr);
  awaitable<std::shared_ptr<const PooledSession>> pooled_session(
      upstream::Upstream& upstream, const std::string& key, const mcp::SessionClaims& client,
      const mcp::Json& client_info, const std::string& caller, std::string& error,
      upstream::UpstreamReply* overload);
  awaitable<void> stateless_post(http::Request& request, const http::RequestOrigin& origin,
                                 http::Responder& out, upstream::Upstream& upstream,
                                 const Caller& caller, const mcp::Message& message,
                                 StatelessRequest checked);
  awaitable<bool> first_use_of_request_state(const std::string& sealed_state) const;
  std::string seal_request_state(const StatelessCall& call, const mcp::Json& upstream_state,
                                 bool asking_approval = false) const;
  mcp::Json upstream_body(ExchangeRunner& runner, const StatelessCall& call) const;
  void finish_stateless_result(mcp::Json& response, const StatelessCall& call) const;
  awaitable<void> stateless_to_stateless(HttpPort& port, ExchangeRunner& runner,
                                         StatelessCall& call);
  awaitable<void> stateless_to_session(HttpPort& port, ExchangeRunner& runner, StatelessCall& call);
  awaitable<void> relay_bridged(HttpPort& port, ExchangeRunner& runner, StatelessCall& call,
                                std::shared_ptr<EventPump> pump,
                                std::shared_ptr<const PooledSession> session,
                                mcp::Json upstream_request_id);
  awaitable<void> listen_bridged(HttpPort& port, ExchangeRunner& runner, StatelessCall& call,
                                 std::shared_ptr<const PooledSession> session);
  awaitable<bool> subscribe_in_session(upstream::Upstream& upstream, const PooledSession& session,
                                       const std::string& uri);
  awaitable<void> lower_session_log_level(upstream::Upstream& upstream,
                                          const PooledSession& session,
                                          const mcp::Message& message);
  void invalidate_cached_lists(std::string_view upstream, std::string_view data);
  // SEP-2243 for servers that never see a 2026-07-28 client's headers (stdio, or a session
  // server behind the bridge): what a tools/call's Mcp-Param-* headers say differently from its
  // arguments, as declared by the tool in the last tools/list relayed for `upstream` (nothing
  // when it was not listed); the 400 / -32020 answer to it; learning from a relayed list.
  std::optional<mcp::Json> param_header_mismatch(const upstream::Upstream& upstream,
                                                 const mcp::Message& message,
                                                 const http::Request& request) const;
  awaitable<bool> refused_param_headers(ExchangeRunner& runner, const upstream::Upstream& upstream,
                                        const mcp::Message& message, const http::Request& request);
  void learn_param_headers(const upstream::Upstream& upstream, std::string_view method,
                           const mcp::Json& response);
  // A session client in front of a stateless upstream: what the gateway answers itself
  // (initialize, ping, logging/setLevel, subscriptions, notifications); false when the message is
  // to be forwarded.
  awaitable<bool> answer_for_stateless_upstream(http::Responder& out,
                                                const BridgedMessage& bridged);
  awaitable<void> answer_subscription(http::Responder& out, const BridgedMessage& bridged);
  awaitable<void> follow_session_stream(upstream::Upstream& upstream,
                                        std::shared_ptr<const PooledSession> session);
  awaitable<void> read_session_stream(upstream::Upstream& upstream,
                                      std::shared_ptr<const PooledSession> session);
  awaitable<void> answer_server_request(upstream::Upstream& upstream,
                                        std::shared_ptr<const PooledSession> session,
                                        mcp::Json request);
  awaitable<void> expire_parked_call(std::string parked_id, Clock::time_point expires);
  // A session client's standalone (GET) stream: relayed until either side ends it.
  awaitable<void> relay_standalone_stream(http::Responder& out,
                                          std::unique_ptr<upstream::ReplyStream> stream);
  awaitable<void> listen_for_session_client(http::Responder& out, upstream::Upstream& upstream,
                                            const mcp::SessionClaims& claims,
                                            std::string session_id) override;
  awaitable<void> forward_to_stateless(SessionClientPort& port, ExchangeRunner& runner,
                                       upstream::Upstream& upstream);

  GatewayOptions options_;
  std::map<std::string, std::unique_ptr<upstream::Upstream>, std::less<>> upstreams_;
  FilterChain filters_;
  std::unique_ptr<LegacySseTransport> legacy_;
  std::map<std::string, std::unique_ptr<UpstreamRevision>, std::less<>> revisions_;
  ResultCache result_cache_;
  UpstreamSessionPool session_pool_;
  ParkedCalls parked_calls_;
  InFlightCalls in_flight_calls_;
  BridgedSessions bridged_sessions_;
  ToolParamHeaders tool_param_headers_;
  mutable ClientRequests client_requests_;
  std::atomic<bool> draining_{false};
  mutable std::atomic<int> active_streams_{0};
  mutable AdmissionControl admission_;
  TransportServices services_;
};

}  // namespace membrane::gateway
