#include "gateway/admission.hpp"

#include <algorithm>
#include <functional>

#include "gateway/responses.hpp"
#include "membrane/identity/authenticator.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {
namespace bhttp = http::bhttp;

namespace {
std::int64_t retry_seconds(const Refusal& refusal) {
  return std::max<std::int64_t>(1, refusal.retry_after.count());
}
}  // namespace

std::string overload_error(const Refusal& refusal, const mcp::Json& id) {
  const auto seconds = retry_seconds(refusal);
  mcp::Json data = {{"limit", std::string(http::limit_name(refusal.limit))},
                    {"retryAfter", seconds}};
  mcp::Json body = {
      {"jsonrpc", "2.0"},
      {"id", id},
      {"error",
       {{"code", mcp::error_code::overloaded}, {"message", refusal.message}, {"data", data}}}};
  return body.dump();
}

http::Response overload_response(const Refusal& refusal, const mcp::Json& id) {
  auto response =
      json_response(http::is_per_caller(refusal.limit) ? 429 : 503, overload_error(refusal, id));
  response.set(bhttp::field::retry_after, std::to_string(retry_seconds(refusal)));
  return response;
}

namespace {

std::string address_key(asio::ip::address address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  if (address.is_v4()) return "address " + address.to_string();
  // One host commonly holds a whole /64; counting it as one caller keeps a client from
  // multiplying its quota by changing its interface identifier.
  auto bytes = address.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return "address " + asio::ip::address_v6(bytes).to_string() + "/64";
}

}  // namespace

std::string caller_key(const identity::Identity* identity, const http::RequestOrigin& origin) {
  if (identity) return "subject " + identity->subject;
  // Every request of a connection asks, twice, and formatting an address is an inet_ntop (a
  // sprintf): each worker keeps the last address's key.
  thread_local asio::ip::address last_address;
  thread_local std::string last_key;
  const auto address = origin.peer.address();
  if (last_key.empty() || address != last_address) {
    last_key = address_key(address);
    last_address = address;
  }
  return last_key;
}

StreamSlots::Slot& StreamSlots::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
  }
  return *this;
}

void StreamSlots::Slot::release() {
  if (owner_) owner_->in_use_.fetch_sub(1, std::memory_order_relaxed);
  owner_ = nullptr;
}

StreamSlots::Slot StreamSlots::try_acquire() {
  if (in_use_.fetch_add(1, std::memory_order_relaxed) >= max_) {
    in_use_.fetch_sub(1, std::memory_order_relaxed);
    return {};
  }
  return Slot(this);
}

struct CallerSessions::Entry {
  std::string caller;
  std::uint64_t key = 0;
  bool bound = false;
  bool ended = false;
  int active = 0;
  Clock::time_point last_used;
  Clock::duration idle{};

  bool live(Clock::time_point now) const { return active > 0 || now - last_used < idle; }
};

namespace {
std::uint64_t session_digest(std::string_view session_id) {
  // Sealed ids are AES-GCM output a client cannot choose, so a 64-bit digest does not collide
  // in practice; if two ever did, they would merely count as one session.
  return std::hash<std::string_view>{}(session_id);
}

std::chrono::seconds whole_seconds_until(CallerSessions::Clock::duration wait) {
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(wait);
  return std::max(seconds, std::chrono::seconds(1));
}
}  // namespace

CallerSessions::Use& CallerSessions::Use::operator=(Use&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

void CallerSessions::Use::release() {
  if (owner_ && entry_) owner_->done(entry_);
  owner_ = nullptr;
  entry_.reset();
}

void CallerSessions::done(const std::shared_ptr<Entry>& entry) {
  std::lock_guard lock(mutex_);
  if (entry->ended) return;
  --entry->active;
  entry->last_used = clock_();
  if (!entry->bound && entry->active == 0) remove_locked(entry);
}

void CallerSessions::remove_locked(const std::shared_ptr<Entry>& entry) {
  if (entry->ended) return;
  entry->ended = true;
  --count_;
  if (entry->bound) {
    const auto it = by_id_.find(entry->key);
    if (it != by_id_.end() && it->second == entry) by_id_.erase(it);
  }
  const auto list = by_caller_.find(entry->caller);
  if (list == by_caller_.end()) return;
  std::erase(list->second, entry);
  if (list->second.empty()) by_caller_.erase(list);
}

void CallerSessions::prune_caller_locked(const std::string& caller, Clock::time_point now) {
  const auto list = by_caller_.find(caller);
  if (list == by_caller_.end()) return;
  std::vector<std::shared_ptr<Entry>> dead;
  for (const auto& entry : list->second) {
    if (!entry->live(now)) dead.push_back(entry);
  }
  for (const auto& entry : dead)
    remove_locked(entry);
}

void CallerSessions::sweep_locked(Clock::time_point now) {
  // At most once a second: a caller hammering a full table must not buy a full scan per request.
  if (now - last_sweep_ < std::chrono::seconds(1)) return;
  last_sweep_ = now;
  std::vector<std::shared_ptr<Entry>> dead;
  for (const auto& [caller, list] : by_caller_) {
    for (const auto& entry : list) {
      if (!entry->live(now)) dead.push_back(entry);
    }
  }
  for (const auto& entry : dead)
    remove_locked(entry);
}

std::optional<Refusal> CallerSessions::admit_locked(std::string_view caller_view,
                                                    Clock::time_point now,
                                                    std::chrono::seconds retry_after) {
  const std::string caller(caller_view);
  const auto at_limit = [&] {
    const auto list = by_caller_.find(caller);
    return list != by_caller_.end() && list->second.size() >= max_per_caller_ ? list
                                                                              : by_caller_.end();
  };
  // Only a caller at its limit has its idle sessions looked at: a scan of every session of the
  // caller on every initialize made opening sessions cost more the more a caller held.
  if (at_limit() != by_caller_.end()) prune_caller_locked(caller, now);
  if (const auto list = at_limit(); list != by_caller_.end()) {
    // The earliest moment one of this caller's idle sessions stops counting.
    std::optional<Clock::duration> soonest;
    for (const auto& entry : list->second) {
      if (entry->active > 0) continue;
      const auto left = entry->last_used + entry->idle - now;
      if (!soonest || left < *soonest) soonest = left;
    }
    Refusal refusal;
    refusal.limit = http::OverloadLimit::sessions_per_caller;
    refusal.retry_after = soonest ? whole_seconds_until(*soonest) : retry_after;
    refusal.message = "Too many sessions: this caller already holds " +
                      std::to_string(list->second.size()) +
                      " live sessions on this gateway (the limit); end one with DELETE, or retry "
                      "when an idle one expires";
    return refusal;
  }
  if (count_ >= max_sessions_) sweep_locked(now);
  if (count_ >= max_sessions_) {
    Refusal refusal;
    refusal.limit = http::OverloadLimit::sessions;
    refusal.retry_after = retry_after;
    refusal.message = "Overloaded: the gateway holds " + std::to_string(count_) +
                      " live sessions (the limit); retry later";
    return refusal;
  }
  return std::nullopt;
}

std::shared_ptr<CallerSessions::Entry> CallerSessions::add_locked(std::string_view caller,
                                                                  Clock::duration idle,
                                                                  Clock::time_point now) {
  auto entry = std::make_shared<Entry>();
  entry->caller = std::string(caller);
  entry->active = 1;
  entry->last_used = now;
  entry->idle = idle;
  by_caller_[entry->caller].push_back(entry);
  ++count_;
  return entry;
}

std::optional<Refusal> CallerSessions::open(std::string_view caller, Clock::duration idle, Use& use,
                                            std::chrono::seconds retry_after) {
  use = Use();  // released before the lock is taken: releasing takes it too
  std::lock_guard lock(mutex_);
  const auto now = clock_();
  if (auto refusal = admit_locked(caller, now, retry_after)) return refusal;
  use = Use(this, add_locked(caller, idle, now));
  return std::nullopt;
}

void CallerSessions::bind(Use& use, std::string_view session_id) {
  if (!use.entry_) return;
  std::lock_guard lock(mutex_);
  auto& entry = use.entry_;
  if (entry->ended || entry->bound) return;
  entry->key = session_digest(session_id);
  entry->bound = true;
  // An entry already there under this digest is the same session (or a harmless collision):
  // keep one.
  if (const auto it = by_id_.find(entry->key); it != by_id_.end()) remove_locked(it->second);
  by_id_[entry->key] = entry;
}

std::optional<Refusal> CallerSessions::use(std::string_view caller, std::string_view session_id,
                                           Clock::duration idle, Use& use,
                                           std::chrono::seconds retry_after) {
  const auto key = session_digest(session_id);
  use = Use();
  std::lock_guard lock(mutex_);
  const auto now = clock_();
  if (const auto it = by_id_.find(key); it != by_id_.end()) {
    ++it->second->active;
    it->second->last_used = now;
    use = Use(this, it->second);
    return std::nullopt;
  }
  if (auto refusal = admit_locked(caller, now, retry_after)) return refusal;
  auto entry = add_locked(caller, idle, now);
  entry->key = key;
  entry->bound = true;
  by_id_[key] = entry;
  use = Use(this, std::move(entry));
  return std::nullopt;
}

void CallerSessions::touch(std::string_view session_id, Use& use) {
  const auto key = session_digest(session_id);
  use = Use();
  std::lock_guard lock(mutex_);
  const auto now = clock_();
  const auto it = by_id_.find(key);
  if (it == by_id_.end()) return;
  ++it->second->active;
  it->second->last_used = now;
  use = Use(this, it->second);
}

void CallerSessions::end(std::string_view session_id) {
  std::lock_guard lock(mutex_);
  const auto it = by_id_.find(session_digest(session_id));
  if (it == by_id_.end()) return;
  const auto entry = it->second;
  remove_locked(entry);
}

std::size_t CallerSessions::live() {
  std::lock_guard lock(mutex_);
  sweep_locked(clock_());
  return count_;
}

std::size_t CallerSessions::live_for(std::string_view caller_view) {
  const std::string caller(caller_view);
  std::lock_guard lock(mutex_);
  prune_caller_locked(caller, clock_());
  const auto list = by_caller_.find(caller);
  return list == by_caller_.end() ? 0 : list->second.size();
}

AdmissionControl::AdmissionControl(AdmissionOptions options,
                                   std::shared_ptr<http::OverloadStats> stats)
    : options_(options),
      stats_(stats ? std::move(stats) : std::make_shared<http::OverloadStats>()),
      streams_(options.max_streams),
      sessions_(options.max_sessions, options.max_sessions_per_caller) {}

std::optional<Refusal> AdmissionControl::counted(std::optional<Refusal> refusal,
                                                 std::string_view caller) {
  // The log names the caller (the client's message does not need to).
  if (refusal) {
    stats_->refused(refusal->limit, caller.empty() ? refusal->message
                                                   : std::string(caller) + ": " + refusal->message);
  }
  return refusal;
}

std::optional<Refusal> AdmissionControl::admit_stream(StreamSlots::Slot& slot) {
  auto& budget = http::BufferBudget::process();
  if (!budget.room_for_new_stream()) {
    Refusal refusal;
    refusal.limit = http::OverloadLimit::buffered_bytes;
    refusal.retry_after = options_.retry_after;
    refusal.message = "Overloaded: " + std::to_string(budget.used()) +
                      " bytes of events are queued for slow clients (the limit is " +
                      std::to_string(budget.total()) + "); retry later";
    return counted(std::move(refusal));
  }
  slot = streams_.try_acquire();
  if (slot) return std::nullopt;
  Refusal refusal;
  refusal.limit = http::OverloadLimit::streams;
  refusal.retry_after = options_.retry_after;
  refusal.message = "Overloaded: " + std::to_string(streams_.max()) +
                    " streams and requests are open on this gateway (the limit); retry later";
  return counted(std::move(refusal));
}

std::optional<Refusal> AdmissionControl::open_session(const std::string& caller,
                                                      std::chrono::seconds idle,
                                                      CallerSessions::Use& use) {
  return counted(sessions_.open(caller, idle, use, options_.retry_after), caller);
}

std::optional<Refusal> AdmissionControl::use_session(const std::string& caller,
                                                     std::string_view session_id,
                                                     std::chrono::seconds idle,
                                                     CallerSessions::Use& use) {
  return counted(sessions_.use(caller, session_id, idle, use, options_.retry_after), caller);
}

template <class Message>
void AdmittingResponder::bind_session(const Message& message) {
  if (!admission_.opening_session) return;
  const auto status = message.result_int();
  const std::string_view session_id = message[mcp::header::session_id];
  if (status < 200 || status > 299 || session_id.empty()) return;
  sessions_.bind(admission_.session, session_id);
}

awaitable<bool> AdmittingResponder::send(http::Response response) {
  bind_session(response);
  return inner_.send(std::move(response));
}

awaitable<bool> AdmittingResponder::begin_stream(http::ResponseHeader header) {
  bind_session(header);
  return inner_.begin_stream(std::move(header));
}

}  // namespace membrane::gateway
