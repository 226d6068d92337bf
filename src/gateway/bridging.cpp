#include "gateway/bridging.hpp"

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <iterator>

#include "gateway/responses.hpp"
#include "gateway/revision.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/sha256.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {

void UpstreamRevision::learn(Era era, mcp::Json discover) {
  {
    std::lock_guard lock(mutex_);
    discover_ = std::move(discover);
    learnt_at_ = std::chrono::steady_clock::now();
  }
  era_.store(era, std::memory_order_release);
}

bool UpstreamRevision::claim_refresh(std::chrono::steady_clock::time_point now) {
  {
    std::lock_guard lock(mutex_);
    if (now - learnt_at_ < refresh_after) return false;
  }
  return !refreshing_.exchange(true, std::memory_order_acq_rel);
}

void UpstreamRevision::refresh_done() {
  refreshing_.store(false, std::memory_order_release);
}

mcp::Json UpstreamRevision::discover() const {
  std::lock_guard lock(mutex_);
  return discover_;
}

void BridgedSessions::ListenFeed::feeding(std::shared_ptr<EventPump> pump) {
  pump_ = std::move(pump);
}

void BridgedSessions::ListenFeed::listen_again() {
  again_.store(true, std::memory_order_release);
  // The pump belongs to the stream's executor; whatever it is by then gets stopped there.
  asio::post(executor_, [self = shared_from_this()] {
    if (const auto pump = self->pump_.lock()) pump->stop();
  });
}

bool BridgedSessions::ListenFeed::take_listen_again() {
  return again_.exchange(false, std::memory_order_acq_rel);
}

BridgedSessions::Entry& BridgedSessions::entry_locked(const std::string& session) {
  if (const auto found = entries_.find(session); found != entries_.end()) return found->second;
  if (entries_.size() >= max_sessions) {
    // The oldest session's settings go: a bounded table against clients that never end theirs.
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.serial < oldest->second.serial) oldest = it;
    erase_locked(oldest);
  }
  auto& entry = entries_[session];
  entry.serial = next_serial_++;
  return entry;
}

void BridgedSessions::erase_locked(std::unordered_map<std::string, Entry>::iterator entry) {
  for (const auto& uri : entry->second.uris)
    uri_bytes_ -= uri.size();
  entries_.erase(entry);
}

void BridgedSessions::changed_locked(const Entry& entry) {
  if (const auto feed = entry.feed.lock()) feed->listen_again();
}

void BridgedSessions::set_log_level(const std::string& session, std::string level) {
  std::lock_guard lock(mutex_);
  entry_locked(session).log_level = std::move(level);
}

std::string BridgedSessions::log_level(const std::string& session) const {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(session);
  return found == entries_.end() ? std::string() : found->second.log_level;
}

bool BridgedSessions::subscribe(const std::string& session, const std::string& uri) {
  std::lock_guard lock(mutex_);
  auto& entry = entry_locked(session);
  if (std::find(entry.uris.begin(), entry.uris.end(), uri) != entry.uris.end()) return true;
  if (entry.uris.size() >= max_subscriptions || uri_bytes_ + uri.size() > max_uri_bytes)
    return false;
  entry.uris.push_back(uri);
  uri_bytes_ += uri.size();
  changed_locked(entry);
  return true;
}

void BridgedSessions::unsubscribe(const std::string& session, const std::string& uri) {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(session);
  if (found == entries_.end()) return;
  auto& uris = found->second.uris;
  const auto it = std::find(uris.begin(), uris.end(), uri);
  if (it == uris.end()) return;
  uri_bytes_ -= it->size();
  uris.erase(it);
  changed_locked(found->second);
}

std::vector<std::string> BridgedSessions::subscriptions(const std::string& session) const {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(session);
  return found == entries_.end() ? std::vector<std::string>() : found->second.uris;
}

void BridgedSessions::attach(const std::string& session, const std::shared_ptr<ListenFeed>& feed) {
  std::lock_guard lock(mutex_);
  entry_locked(session).feed = feed;
}

void BridgedSessions::forget(const std::string& session) {
  std::lock_guard lock(mutex_);
  if (const auto found = entries_.find(session); found != entries_.end()) erase_locked(found);
}

std::string UpstreamSessionPool::key(std::string_view upstream, std::string_view subject,
                                     const mcp::Json& capabilities, const mcp::Json& client_info) {
  std::string key(upstream);
  key.push_back('\0');
  key.append(subject);
  key.push_back('\0');
  key += capabilities.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  key.push_back('\0');
  key += client_info.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  return key;
}

std::shared_ptr<const PooledSession> UpstreamSessionPool::find(const std::string& key) const {
  std::lock_guard lock(mutex_);
  const auto it = sessions_.find(key);
  return it == sessions_.end() ? nullptr : it->second;
}

void UpstreamSessionPool::put(const std::string& key,
                              std::shared_ptr<const PooledSession> session) {
  std::lock_guard lock(mutex_);
  // Bounded: when full, start over (the upstream times idle sessions out on its side).
  if (sessions_.size() >= capacity_ && !sessions_.contains(key)) sessions_.clear();
  sessions_[key] = std::move(session);
}

void UpstreamSessionPool::drop(const std::string& key, const PooledSession* session) {
  std::lock_guard lock(mutex_);
  const auto it = sessions_.find(key);
  if (it != sessions_.end() && it->second.get() == session) sessions_.erase(it);
}

std::size_t UpstreamSessionPool::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::string ParkedCalls::park(std::shared_ptr<ParkedCall> call) {
  std::string id = mcp::base64url_encode(mcp::random_bytes(18));
  std::lock_guard lock(mutex_);
  sweep_locked(Clock::now());
  calls_.emplace(id, std::move(call));
  return id;
}

std::shared_ptr<ParkedCall> ParkedCalls::take(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  sweep_locked(now);
  const auto it = calls_.find(id);
  if (it == calls_.end()) return nullptr;
  auto call = std::move(it->second);
  calls_.erase(it);
  return call;
}

std::shared_ptr<ParkedCall> ParkedCalls::take_expired(const std::string& id) {
  std::lock_guard lock(mutex_);
  const auto it = calls_.find(id);
  if (it == calls_.end()) return nullptr;
  auto call = std::move(it->second);
  calls_.erase(it);
  return call;
}

std::size_t ParkedCalls::size() const {
  std::lock_guard lock(mutex_);
  return calls_.size();
}

void ParkedCalls::sweep_locked(Clock::time_point now) {
  // Each call's own timer ends it (and tells the upstream); this only catches a timer that could
  // not run, e.g. during shutdown.
  constexpr auto timer_grace = std::chrono::seconds(5);
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second->expires + timer_grace <= now) {
      // Closing the upstream stream is how the upstream learns nobody will answer.
      it->second->pump->stop();
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
}

void add_stateless_headers(upstream::ForwardContext& context, const mcp::Message& message,
                           const http::Request* downstream) {
  context.protocol_version = std::string(mcp::stateless_protocol_version);
  context.headers.clear();
  if (const auto method = message.method(); !method.empty())
    context.headers.emplace_back(mcp::header::method, std::string(method));
  if (const auto name = expected_name_header(message); name && !name->empty())
    context.headers.emplace_back(mcp::header::name, mcp::encode_header_value(*name));
  if (!downstream) return;
  for (const auto& field : *downstream) {
    const std::string_view name = field.name_string();
    if (name.size() > mcp::header::param_prefix.size() &&
        boost::beast::iequals(name.substr(0, mcp::header::param_prefix.size()),
                              mcp::header::param_prefix))
      context.headers.emplace_back(std::string(name), std::string(field.value()));
  }
}

std::unique_ptr<SessionStream::Attachment> SessionStream::attach(Role role,
                                                                 std::weak_ptr<EventPump> pump,
                                                                 bool takes_questions,
                                                                 std::vector<HeldQuestion>* held) {
  std::lock_guard lock(mutex_);
  const auto serial = ++next_serial_;
  attached_.push_back(Attached{serial, role, std::move(pump), takes_questions});
  // Under the same lock as the attachment: a question is either held before it (and handed over
  // here) or routed to it after.
  if (role == Role::call && takes_questions && held) {
    std::move(held_.begin(), held_.end(), std::back_inserter(*held));
    held_.clear();
  }
  return std::make_unique<Attachment>(*this, serial);
}

std::shared_ptr<EventPump> SessionStream::route_question(HeldQuestion question,
                                                         std::optional<HeldQuestion>& evicted) {
  std::lock_guard lock(mutex_);
  for (auto it = attached_.rbegin(); it != attached_.rend(); ++it) {
    if (it->role != Role::call || !it->takes_questions) continue;
    if (auto pump = it->pump.lock()) return pump;
  }
  if (held_.size() >= max_held_questions) {
    evicted = std::move(held_.front());
    held_.erase(held_.begin());
  }
  held_.push_back(std::move(question));
  return nullptr;
}

std::vector<SessionStream::HeldQuestion> SessionStream::take_expired(
    std::chrono::steady_clock::time_point now, bool all) {
  std::vector<HeldQuestion> expired;
  std::lock_guard lock(mutex_);
  for (auto it = held_.begin(); it != held_.end();) {
    if (all || it->expires <= now) {
      expired.push_back(std::move(*it));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

void SessionStream::detach(std::uint64_t serial) {
  std::lock_guard lock(mutex_);
  std::erase_if(attached_, [serial](const Attached& a) { return a.serial == serial; });
}

bool SessionStream::claim_reader() {
  std::lock_guard lock(mutex_);
  if (reader_running_ || not_offered_) return false;
  reader_running_ = true;
  return true;
}

void SessionStream::reader_ended(bool not_offered) {
  std::lock_guard lock(mutex_);
  reader_running_ = false;
  not_offered_ = not_offered_ || not_offered;
}

bool SessionStream::idle() const {
  std::lock_guard lock(mutex_);
  return attached_.empty();
}

std::vector<std::shared_ptr<EventPump>> SessionStream::listeners() const {
  std::vector<std::shared_ptr<EventPump>> out;
  std::lock_guard lock(mutex_);
  for (const auto& a : attached_) {
    if (a.role != Role::listen) continue;
    if (auto pump = a.pump.lock()) out.push_back(std::move(pump));
  }
  return out;
}

std::string InFlightCalls::key(std::string_view session_id, const mcp::Json& request_id) {
  std::string key(session_id);
  key += '\n';
  key += mcp::id_key(request_id);
  return key;
}

std::unique_ptr<InFlightCalls::Tracking> InFlightCalls::track(
    std::string key, asio::any_io_executor executor, std::weak_ptr<CallCancellation> call) {
  std::uint64_t serial = 0;
  {
    std::lock_guard lock(mutex_);
    serial = ++next_serial_;
    calls_[key] = Entry{std::move(executor), std::move(call), serial};
  }
  return std::make_unique<Tracking>(*this, std::move(key), serial);
}

bool InFlightCalls::cancel(const std::string& key) {
  std::lock_guard lock(mutex_);
  const auto found = calls_.find(key);
  if (found == calls_.end()) return false;
  asio::post(found->second.executor, [call = found->second.call] {
    if (const auto alive = call.lock()) alive->cancel();
  });
  return true;
}

void InFlightCalls::forget(const std::string& key, std::uint64_t serial) {
  std::lock_guard lock(mutex_);
  if (const auto found = calls_.find(key); found != calls_.end() && found->second.serial == serial)
    calls_.erase(found);
}

mcp::Json client_info_of(const mcp::SessionClaims& claims) {
  if (claims.initialize_params.is_object()) {
    if (const auto info = claims.initialize_params.find("clientInfo");
        info != claims.initialize_params.end() && info->is_object())
      return *info;
  }
  return mcp::Json();
}

std::optional<std::string> json_rpc_answer(const upstream::UpstreamReply& reply,
                                           const mcp::Json& id) {
  if (reply.kind != upstream::UpstreamReply::Kind::rejected) return std::nullopt;
  const auto answer = json::parse_or_discarded(reply.body);
  if (!answer.is_object() || answer.value("id", mcp::Json()) != id) return std::nullopt;
  const auto error = answer.find("error");
  if (error == answer.end() || !error->is_object()) return std::nullopt;
  return reply.body;
}

std::string request_digest(const mcp::Message& message) {
  mcp::Json what = {{"m", message.method()}, {"n", message.target_name()}};
  if (const auto* params = message.params(); params && params->is_object()) {
    if (const auto arguments = params->find("arguments"); arguments != params->end())
      what["a"] = *arguments;
  }
  return core::sha256_hex(what.dump(-1, ' ', false, mcp::Json::error_handler_t::replace), 16);
}

}  // namespace membrane::gateway
