// Admission control: the overload limits on what clients can make the gateway hold at once,
// checked before a request is forwarded. Beyond a limit the client gets 503 (429 for a caller's
// own session limit) with Retry-After and a JSON-RPC error naming the limit; each refusal is
// counted for /metrics and logged, rate-limited (http/overload.hpp).
//
// - streams (limits.max_streams): SSE response streams open at once, and the requests waiting
//   for an upstream's answer, which may turn into one. A slot is taken before the request is
//   forwarded, so a refused call never reaches the upstream, and the count of open streams
//   never exceeds the limit.
// - sessions (limits.max_sessions, limits.max_sessions_per_caller): the live sessions this
//   replica holds, see CallerSessions.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http/overload.hpp"
#include "http/server.hpp"
#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::identity {
struct Identity;
}

namespace membrane::gateway {

struct AdmissionOptions {
  std::size_t max_streams = 2048;
  std::size_t max_sessions = 10'000;
  std::size_t max_sessions_per_caller = 256;
  // A session with no request and no stream for this long stops counting (for stdio upstreams
  // at least as long as their idle child is kept, see Gateway).
  std::chrono::seconds session_idle{30 * 60};
  // What 503 answers say in Retry-After: the capacity limits free up as soon as any exchange
  // ends.
  std::chrono::seconds retry_after{1};
};

// Why a request was refused and when to come back.
struct Refusal {
  http::OverloadLimit limit = http::OverloadLimit::streams;
  std::chrono::seconds retry_after{1};
  std::string message;
};

// The JSON-RPC error -32004 whose data names the limit: {"limit": "streams", "retryAfter": 1}.
// Alone for transports that answer on a stream already open (legacy SSE).
std::string overload_error(const Refusal& refusal, const mcp::Json& id);
// 503 (429 for the per-caller limits) with Retry-After and overload_error as the body.
http::Response overload_response(const Refusal& refusal, const mcp::Json& id);

// Who a caller is for the per-caller limit: the token's subject when auth is on, else the client
// address (an IPv6 client by its /64, the block one host usually holds).
std::string caller_key(const identity::Identity* identity, const http::RequestOrigin& origin);

// A counting semaphore that never waits: a slot or nothing.
class StreamSlots {
 public:
  explicit StreamSlots(std::size_t max) : max_(max) {}

  class Slot {
   public:
    Slot() = default;
    explicit Slot(StreamSlots* owner) : owner_(owner) {}
    Slot(Slot&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { release(); }
    explicit operator bool() const { return owner_ != nullptr; }

   private:
    void release();
    StreamSlots* owner_ = nullptr;
  };

  Slot try_acquire();
  std::size_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  std::size_t max() const { return max_; }

 private:
  std::size_t max_;
  std::atomic<std::size_t> in_use_{0};
};

// The live sessions of each caller on this replica. A session is live while a request or stream
// uses it, and for its idle window after its last use; it stops counting at once when it is ended
// (DELETE, the legacy stream closing). A new session counts from the moment it is asked for
// (initialize), before the upstream sees it, so re-initializing in a loop only fills the caller's
// own quota: every session so made stays counted for the idle window even if never used again.
// A session made elsewhere (another replica, before a restart) counts here from its first use
// here, subject to the same limits.
//
// Bounded: at most max_sessions entries (each a few dozen bytes: sessions are kept by a 64-bit
// digest of their id, never the id itself), at most max_per_caller per caller.
class CallerSessions {
 public:
  using Clock = std::chrono::steady_clock;
  struct Entry;

  // `clock` is for tests; the steady clock otherwise.
  CallerSessions(std::size_t max_sessions, std::size_t max_per_caller,
                 std::function<Clock::time_point()> clock = &Clock::now)
      : max_sessions_(max_sessions), max_per_caller_(max_per_caller), clock_(std::move(clock)) {}

  // One request's or stream's hold on a session.
  class Use {
   public:
    Use() = default;
    Use(CallerSessions* owner, std::shared_ptr<Entry> entry)
        : owner_(owner), entry_(std::move(entry)) {}
    Use(Use&& other) noexcept = default;
    Use& operator=(Use&& other) noexcept;
    ~Use() { release(); }
    explicit operator bool() const { return entry_ != nullptr; }

   private:
    friend class CallerSessions;
    void release();
    CallerSessions* owner_ = nullptr;
    std::shared_ptr<Entry> entry_;
  };

  // A new session for `caller`, counted from now; bind() names it once it exists. A use that is
  // released unbound (the upstream refused initialize) leaves no trace.
  std::optional<Refusal> open(std::string_view caller, Clock::duration idle, Use& use,
                              std::chrono::seconds retry_after);
  void bind(Use& use, std::string_view session_id);
  // A request or stream on an existing session.
  std::optional<Refusal> use(std::string_view caller, std::string_view session_id,
                             Clock::duration idle, Use& use, std::chrono::seconds retry_after);
  // Marks a counted session used (the use keeps it live); a session not counted here is left
  // alone.
  void touch(std::string_view session_id, Use& use);
  // The session ended: it stops counting now.
  void end(std::string_view session_id);

  // Live sessions now (idle ones past their window are dropped first).
  std::size_t live();
  std::size_t live_for(std::string_view caller);

 private:
  std::optional<Refusal> admit_locked(std::string_view caller, Clock::time_point now,
                                      std::chrono::seconds retry_after);
  std::shared_ptr<Entry> add_locked(std::string_view caller, Clock::duration idle,
                                    Clock::time_point now);
  void prune_caller_locked(const std::string& caller, Clock::time_point now);
  void sweep_locked(Clock::time_point now);
  void remove_locked(const std::shared_ptr<Entry>& entry);
  void done(const std::shared_ptr<Entry>& entry);

  const std::size_t max_sessions_;
  const std::size_t max_per_caller_;
  const std::function<Clock::time_point()> clock_;
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Entry>> by_id_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Entry>>> by_caller_;
  std::size_t count_ = 0;
  Clock::time_point last_sweep_{};
};

// The limits in one place, as the transports use them.
class AdmissionControl {
 public:
  AdmissionControl(AdmissionOptions options, std::shared_ptr<http::OverloadStats> stats);

  const AdmissionOptions& options() const { return options_; }
  http::OverloadStats& stats() const { return *stats_; }
  StreamSlots& streams() { return streams_; }
  CallerSessions& sessions() { return sessions_; }

  // A stream (or a request that may become one): refused while every slot is taken, or while
  // the events queued for slow clients leave no room for one more stream's budget.
  std::optional<Refusal> admit_stream(StreamSlots::Slot& slot);
  // A new session of `caller` (initialize, a legacy stream). `idle` is its idle window.
  std::optional<Refusal> open_session(const std::string& caller, std::chrono::seconds idle,
                                      CallerSessions::Use& use);
  std::optional<Refusal> use_session(const std::string& caller, std::string_view session_id,
                                     std::chrono::seconds idle, CallerSessions::Use& use);

 private:
  std::optional<Refusal> counted(std::optional<Refusal> refusal, std::string_view caller = {});

  AdmissionOptions options_;
  std::shared_ptr<http::OverloadStats> stats_;
  StreamSlots streams_;
  CallerSessions sessions_;
};

// What one request holds against the limits until it has been answered (or its stream ended).
struct RequestAdmission {
  StreamSlots::Slot stream;
  CallerSessions::Use session;
  bool opening_session = false;  // initialize: the answer's Mcp-Session-Id names the session
};

// Passes everything through to the real responder; the session id an answer to initialize
// carries (Mcp-Session-Id on a 2xx) is bound to the session counted for it.
class AdmittingResponder final : public http::Responder {
 public:
  AdmittingResponder(http::Responder& inner, CallerSessions& sessions, RequestAdmission& admission)
      : inner_(inner), sessions_(sessions), admission_(admission) {}

  awaitable<bool> send(http::Response response) override;
  awaitable<bool> begin_stream(http::ResponseHeader header) override;
  awaitable<bool> write_chunk(std::string_view data) override { return inner_.write_chunk(data); }
  awaitable<bool> end_stream() override { return inner_.end_stream(); }
  void set_interruptible(bool interruptible) override { inner_.set_interruptible(interruptible); }
  bool draining() const override { return inner_.draining(); }
  [[nodiscard]] http::ClientWatch watch_client(std::function<void()> on_gone) override {
    return inner_.watch_client(std::move(on_gone));
  }
  void interrupt() override { inner_.interrupt(); }

 private:
  template <class Message>
  void bind_session(const Message& message);

  http::Responder& inner_;
  CallerSessions& sessions_;
  RequestAdmission& admission_;
};

}  // namespace membrane::gateway
