// State the gateway keeps to bridge MCP revisions: which revision each upstream speaks, the
// upstream sessions it holds for stateless clients of session-era servers, and the calls parked
// while a stateless client answers an upstream's question (`input_required`).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/transports/event_relay.hpp"
#include "membrane/mcp/jsonrpc.hpp"
#include "membrane/mcp/listen.hpp"
#include "membrane/mcp/sealed_session.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway {

// What one upstream speaks: declared by the operator, or learnt from the upstream itself and
// learnt again once `refresh_after` has passed (a server redeployed with another revision is
// seen without restarting the gateway).
//   era       whether it speaks 2026-07-28 (server/discover lists it) or only sessions
//   sessions  for a 2026-07-28 server: whether it also takes `initialize` (a dual-revision
//             server), learnt by the first session client that needs to know
class UpstreamRevision {
 public:
  enum class Era { unknown, session, stateless };
  enum class Sessions { unknown, accepted, refused };
  static constexpr std::chrono::minutes refresh_after{5};

  Era era() const { return era_.load(std::memory_order_acquire); }
  Sessions sessions() const { return sessions_.load(std::memory_order_acquire); }
  void learn(Era era, mcp::Json discover = {});
  void learn_sessions(Sessions sessions) { sessions_.store(sessions, std::memory_order_release); }
  // The server/discover result the revision was learnt from (null for session-era servers).
  mcp::Json discover() const;
  // True for the one caller that is to learn the revision again: what was learnt is older than
  // `refresh_after` and nobody else is at it. The others go on with what is known.
  bool claim_refresh(std::chrono::steady_clock::time_point now);
  void refresh_done();

 private:
  std::atomic<Era> era_{Era::unknown};
  std::atomic<Sessions> sessions_{Sessions::unknown};
  std::atomic<bool> refreshing_{false};
  mutable std::mutex mutex_;
  mcp::Json discover_;
  std::chrono::steady_clock::time_point learnt_at_;
};

// A session-era client's session with a 2026-07-28-only server, which the gateway bridges: it
// answered initialize itself, so the negotiated revision is sealed in the session (a session of
// the upstream's own leaves that to the upstream).
inline bool is_bridged_session(const mcp::SessionClaims& claims) {
  return !claims.protocol_version.empty();
}

// The standalone (GET) stream of a pooled upstream session over HTTP, read once and shared: a
// question the server sends on it (roots/list outside the call's own stream, …) goes to the latest
// call in flight on the session that may carry it to the client, or waits for the next one (see
// HeldQuestion); its notifications go to every subscriptions/listen it feeds. A
// server allows one such stream per session, so nobody else opens it. It stays open while the
// session is in use, and is closed at the first keep-alive tick that finds nobody attached: busy
// sessions do not open a stream per call.
class SessionStream {
 public:
  enum class Role { call, listen };
  // A question (roots/list, sampling, elicitation) the server asked on the standalone stream while
  // no call that can carry it to the client was attached: it often comes a moment before the call
  // it belongs to attaches. Kept, a few at most and until `expires`, for the next call that can.
  struct HeldQuestion {
    upstream::StreamRead read;
    mcp::Json request;
    std::chrono::steady_clock::time_point expires;
  };
  static constexpr std::size_t max_held_questions = 8;
  class Attachment {
   public:
    Attachment(SessionStream& stream, std::uint64_t serial) : stream_(&stream), serial_(serial) {}
    Attachment(Attachment&&) = delete;
    ~Attachment() { stream_->detach(serial_); }

   private:
    SessionStream* stream_;
    std::uint64_t serial_;
  };

  // A call that `takes_questions` (it may require input) also receives, in `held`, the questions
  // held for the next such call.
  [[nodiscard]] std::unique_ptr<Attachment> attach(Role role, std::weak_ptr<EventPump> pump,
                                                   bool takes_questions = false,
                                                   std::vector<HeldQuestion>* held = nullptr);
  // The latest attached call that takes questions; without one, `question` is held and, when
  // that pushed out the oldest held question, the one pushed out is returned in `evicted`.
  std::shared_ptr<EventPump> route_question(HeldQuestion question,
                                            std::optional<HeldQuestion>& evicted);
  // Held questions whose time is up (or all of them), to be refused.
  std::vector<HeldQuestion> take_expired(std::chrono::steady_clock::time_point now,
                                         bool all = false);
  // True for the one caller that is to start the reader (none is running, and the server has not
  // said it offers no such stream).
  bool claim_reader();
  void reader_ended(bool not_offered = false);
  bool idle() const;
  std::vector<std::shared_ptr<EventPump>> listeners() const;

 private:
  void detach(std::uint64_t serial);
  struct Attached {
    std::uint64_t serial;
    Role role;
    std::weak_ptr<EventPump> pump;
    bool takes_questions;
  };
  mutable std::mutex mutex_;
  std::vector<Attached> attached_;
  std::vector<HeldQuestion> held_;
  std::uint64_t next_serial_ = 0;
  bool reader_running_ = false;
  bool not_offered_ = false;  // the server answered the GET with 405: asked once per session
};

// An upstream session the gateway opened itself for stateless clients of a session-era server.
struct PooledSession {
  mcp::SessionClaims claims;    // what upstream.send needs (the upstream's session id, …)
  mcp::Json initialize_result;  // for server/discover
  std::shared_ptr<SessionStream> stream = std::make_shared<SessionStream>();
  // The most verbose log level a request on the session asked for (`_meta` logLevel, an RFC 5424
  // severity; 8 = none yet): the session's logging/setLevel. Each request still gets only the
  // lines at or above its own level.
  std::shared_ptr<std::atomic<int>> log_level = std::make_shared<std::atomic<int>>(8);
};

// One session per (upstream, caller, client capabilities, client info): a server may answer
// differently depending on what the client can do, and a session never serves two callers.
class UpstreamSessionPool {
 public:
  explicit UpstreamSessionPool(std::size_t capacity = 10'000) : capacity_(capacity) {}
  static std::string key(std::string_view upstream, std::string_view subject,
                         const mcp::Json& capabilities, const mcp::Json& client_info);
  std::shared_ptr<const PooledSession> find(const std::string& key) const;
  void put(const std::string& key, std::shared_ptr<const PooledSession> session);
  // Forgets `session` (the upstream no longer knows it) unless another replaced it already.
  void drop(const std::string& key, const PooledSession* session);
  std::size_t size() const;

 private:
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const PooledSession>> sessions_;
};

// A bridged call to a session-era server that stopped at the server's question: the upstream's
// reply stream stays open (on this replica) until the client re-sends the request with its
// answers, or the wait times out.
struct ParkedCall {
  std::shared_ptr<EventPump> pump;
  std::shared_ptr<const PooledSession> session;
  std::string upstream;
  std::string subject;
  std::string request_digest;  // what the re-sent request must match
  mcp::Json upstream_request_id;
  std::map<std::string, mcp::Json> asked;  // inputRequests key -> the upstream's request id
  Clock::time_point expires;
};

class ParkedCalls {
 public:
  std::string park(std::shared_ptr<ParkedCall> call);
  // Takes the call out (one continuation per parking); null when unknown or expired.
  std::shared_ptr<ParkedCall> take(const std::string& id);
  // Takes the call out when its time is up (its expiry timer); null when it was continued.
  std::shared_ptr<ParkedCall> take_expired(const std::string& id);
  std::size_t size() const;

 private:
  void sweep_locked(Clock::time_point now);
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<ParkedCall>> calls_;
};

// The calls session clients have in flight to stateless servers on this replica, by session and
// request id, so a notifications/cancelled (which a stateless server has no session to receive)
// can close the upstream request instead.
class InFlightCalls {
 public:
  class Tracking {
   public:
    Tracking(InFlightCalls& calls, std::string key, std::uint64_t serial)
        : calls_(&calls), key_(std::move(key)), serial_(serial) {}
    Tracking(Tracking&&) = delete;
    ~Tracking() { calls_->forget(key_, serial_); }

   private:
    InFlightCalls* calls_;
    std::string key_;
    std::uint64_t serial_;
  };

  static std::string key(std::string_view session_id, const mcp::Json& request_id);
  // `call` is cancelled on `executor`, the call's own.
  [[nodiscard]] std::unique_ptr<Tracking> track(std::string key, asio::any_io_executor executor,
                                                std::weak_ptr<CallCancellation> call);
  // False when no such call is in flight here.
  bool cancel(const std::string& key);

 private:
  // Only the entry `serial` made: a client reusing a request id replaced it meanwhile.
  void forget(const std::string& key, std::uint64_t serial);
  struct Entry {
    asio::any_io_executor executor;
    std::weak_ptr<CallCancellation> call;
    std::uint64_t serial = 0;
  };
  std::mutex mutex_;
  std::uint64_t next_serial_ = 0;
  std::unordered_map<std::string, Entry> calls_;
};

// What a bridged session client (2025) asked of a 2026-07-28-only server that 2026-07-28 keeps
// per request, not per session: its log level (sent as `_meta` logLevel on each request) and
// its resource subscriptions (the `resourceSubscriptions` of the listen behind its GET stream).
// Kept on this replica, by session id: a sealed session cannot take them in after initialize.
class BridgedSessions {
 public:
  static constexpr std::size_t max_sessions = 10'000;
  static constexpr std::size_t max_subscriptions = mcp::ListenFilter::max_resource_uris;
  // Every session's subscribed URIs together, at most: the table is the clients' to fill.
  static constexpr std::size_t max_uri_bytes = 32 * 1024 * 1024;

  // The GET stream a session has open here: told when its subscriptions change, so it listens
  // again with the new set.
  class ListenFeed : public std::enable_shared_from_this<ListenFeed> {
   public:
    explicit ListenFeed(asio::any_io_executor executor) : executor_(std::move(executor)) {}
    // The upstream listen now feeding the stream (null between listens). Its executor only.
    void feeding(std::shared_ptr<EventPump> pump);
    // Any thread: the current upstream listen is stopped; the stream listens again.
    void listen_again();
    // Whether the listen that just ended was stopped by listen_again().
    bool take_listen_again();
    bool listen_again_pending() const { return again_.load(std::memory_order_acquire); }

   private:
    asio::any_io_executor executor_;
    std::weak_ptr<EventPump> pump_;  // touched on executor_ only
    std::atomic<bool> again_{false};
  };

  void set_log_level(const std::string& session, std::string level);
  std::string log_level(const std::string& session) const;
  // False when the session has max_subscriptions already, or the table max_uri_bytes.
  bool subscribe(const std::string& session, const std::string& uri);
  void unsubscribe(const std::string& session, const std::string& uri);
  std::vector<std::string> subscriptions(const std::string& session) const;
  void attach(const std::string& session, const std::shared_ptr<ListenFeed>& feed);
  void forget(const std::string& session);

 private:
  struct Entry {
    std::string log_level;
    std::vector<std::string> uris;
    std::weak_ptr<ListenFeed> feed;
    std::uint64_t serial = 0;  // insertion order, for eviction
  };
  Entry& entry_locked(const std::string& session);
  void erase_locked(std::unordered_map<std::string, Entry>::iterator entry);
  void changed_locked(const Entry& entry);
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t next_serial_ = 0;
  std::size_t uri_bytes_ = 0;
};

// The 2026-07-28 headers of a request the gateway sends a stateless upstream: the revision,
// Mcp-Method, Mcp-Name (encoded when not plain ASCII), and the `Mcp-Param-*` headers of the
// downstream request when there is one (intermediaries forward them).
void add_stateless_headers(upstream::ForwardContext& context, const mcp::Message& message,
                           const http::Request* downstream);

// Rounds of input_required the gateway answers for a session client before giving up.
inline constexpr int max_input_rounds = 8;

// The client as a stateless server's requests carry it: initialize params.clientInfo (null when
// the session has none).
mcp::Json client_info_of(const mcp::SessionClaims& claims);

// The upstream's JSON-RPC answer to request `id` in a reply refused with an HTTP error status (a
// 2026-07-28 server gives some errors a status too, 404 for an unknown method); nullopt when the
// reply is no such answer.
std::optional<std::string> json_rpc_answer(const upstream::UpstreamReply& reply,
                                           const mcp::Json& id);

// SHA-256 over what identifies a request for a continuation: method, target and arguments.
std::string request_digest(const mcp::Message& message);

}  // namespace membrane::gateway
