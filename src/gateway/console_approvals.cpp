#include "gateway/console_approvals.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include <algorithm>

#include "membrane/audit/audit_log.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/sealed_session.hpp"

namespace membrane::gateway {

using namespace asio::experimental::awaitable_operators;

struct ConsoleApprovals::Entry {
  Entry(std::string id, mcp::Json summary, const asio::any_io_executor& executor)
      : id(std::move(id)), summary(std::move(summary)), decision(executor, 1), timer(executor) {}
  std::string id;
  mcp::Json summary;  // as listed
  std::string summary_text;
  asio::experimental::concurrent_channel<void(error_code, ApprovalDecision)> decision;
  asio::steady_timer timer;
};

namespace {

std::string dump(const mcp::Json& json) {
  return json.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

}  // namespace

ConsoleApprovals::ConsoleApprovals(Options options) : options_(std::move(options)) {}

ConsoleApprovals::~ConsoleApprovals() {
  stop();
}

ConsoleApprovals::Waiting::Waiting(ConsoleApprovals& owner, std::shared_ptr<Entry> entry)
    : owner_(owner), entry_(std::move(entry)) {}

ConsoleApprovals::Waiting::~Waiting() {
  owner_.forget(entry_->id);
}

const std::string& ConsoleApprovals::Waiting::id() const {
  return entry_->id;
}

awaitable<std::optional<ApprovalDecision>> ConsoleApprovals::Waiting::wait(
    Clock::time_point deadline) {
  entry_->timer.expires_at(deadline);
  auto result = co_await (entry_->decision.async_receive(use_nothrow) ||
                          entry_->timer.async_wait(use_nothrow));
  if (result.index() != 0) co_return std::nullopt;
  auto& [ec, decision] = std::get<0>(result);
  if (ec) co_return std::nullopt;
  co_return std::move(decision);
}

std::unique_ptr<ConsoleApprovals::Waiting> ConsoleApprovals::open(
    mcp::Json summary, const asio::any_io_executor& executor) {
  std::string id = "ap-" + mcp::base64url_encode(mcp::random_bytes(16));
  const auto now = std::chrono::system_clock::now();
  summary["id"] = id;
  summary["replica"] = options_.replica;
  summary["created"] = audit::utc_time(now);
  summary["expires"] = audit::utc_time(now + options_.timeout);
  summary["expires_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                              (now + options_.timeout).time_since_epoch())
                              .count();
  auto entry = std::make_shared<Entry>(id, std::move(summary), executor);
  entry->summary_text = dump(entry->summary);
  if (redis_) share({"HSET", hash_key_, id, entry->summary_text});
  {
    std::lock_guard lock(mutex_);
    entries_.emplace(id, entry);
  }
  return std::make_unique<Waiting>(*this, std::move(entry));
}

void ConsoleApprovals::forget(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    entries_.erase(id);
  }
  if (redis_) share({"HDEL", hash_key_, id});
}

void ConsoleApprovals::share(std::vector<std::string> command) {
  {
    std::lock_guard lock(mutex_);
    shared_commands_.push_back(std::move(command));
    if (sharing_) return;
    sharing_ = true;
  }
  asio::co_spawn(executor_, send_shared_commands(), asio::detached);
}

// One coroutine sends them all, in order: a call's HDEL never overtakes its HSET.
awaitable<void> ConsoleApprovals::send_shared_commands() {
  for (;;) {
    std::vector<std::string> command;
    {
      std::lock_guard lock(mutex_);
      if (shared_commands_.empty()) {
        sharing_ = false;
        co_return;
      }
      command = std::move(shared_commands_.front());
      shared_commands_.pop_front();
    }
    const auto result = co_await redis_->command(std::move(command));
    if (!result.ok() || result.reply.kind == cluster::RedisReply::Kind::error) {
      log::warn("console approvals: Redis refused a change to the shared queue (",
                result.ok() ? result.reply.text : result.error,
                "); other replicas' consoles may list it wrongly until it expires");
    }
  }
}

std::size_t ConsoleApprovals::waiting() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

awaitable<std::vector<mcp::Json>> ConsoleApprovals::list() {
  std::vector<mcp::Json> listed;
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, entry] : entries_) {
      listed.push_back(entry->summary);
      ids.push_back(id);
    }
  }
  if (redis_) {
    std::vector<std::string> command = {"HGETALL", hash_key_};
    const auto result = co_await redis_->command(std::move(command));
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    if (result.ok() && result.reply.kind == cluster::RedisReply::Kind::array) {
      const auto& items = result.reply.elements;
      for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
        const std::string& id = items[i].text;
        if (std::find(ids.begin(), ids.end(), id) != ids.end()) continue;
        mcp::Json summary = json::parse_or_discarded(items[i + 1].text);
        if (!summary.is_object()) continue;
        const auto expires = summary.find("expires_ms");
        // A replica that died leaves its calls behind: past their time nobody waits for them.
        if (expires == summary.end() || !expires->is_number_integer() ||
            expires->get<std::int64_t>() < now_ms) {
          std::vector<std::string> remove = {"HDEL", hash_key_, id};
          share(std::move(remove));
          continue;
        }
        listed.push_back(std::move(summary));
      }
    } else if (!result.ok()) {
      log::warn("console approvals: cannot list other replicas' waiting calls (", result.error,
                ")");
    }
  }
  std::sort(listed.begin(), listed.end(), [](const mcp::Json& a, const mcp::Json& b) {
    return json::string_member(a, "created") < json::string_member(b, "created");
  });
  co_return listed;
}

bool ConsoleApprovals::deliver(const std::string& id, ApprovalDecision decision) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  // A second answer finds the channel full: the first one decided.
  return it->second->decision.try_send(error_code(), std::move(decision));
}

awaitable<ConsoleApprovals::Answered> ConsoleApprovals::answer(const std::string& id,
                                                               ApprovalDecision decision) {
  if (deliver(id, decision)) co_return Answered::delivered;
  if (!redis_) co_return Answered::unknown;
  std::vector<std::string> exists = {"HEXISTS", hash_key_, id};
  const auto found = co_await redis_->command(std::move(exists));
  if (!found.ok() || found.reply.kind != cluster::RedisReply::Kind::integer ||
      found.reply.integer != 1)
    co_return Answered::unknown;
  const mcp::Json message = {{"id", id},
                             {"approved", decision.approved},
                             {"approver", decision.approver},
                             {"reason", decision.reason}};
  std::vector<std::string> publish = {"PUBLISH", channel_, dump(message)};
  const auto published = co_await redis_->command(std::move(publish));
  if (!published.ok() || published.reply.kind == cluster::RedisReply::Kind::error) {
    log::warn("console approvals: could not pass the answer to ", id, " to the other replicas (",
              published.ok() ? published.reply.text : published.error, ")");
    co_return Answered::unknown;
  }
  co_return Answered::relayed;
}

void ConsoleApprovals::on_relayed(std::string_view payload) {
  const mcp::Json message = json::parse_or_discarded(payload);
  if (!message.is_object()) return;
  const auto approved = message.find("approved");
  if (approved == message.end() || !approved->is_boolean()) return;
  ApprovalDecision decision{approved->get<bool>(),
                            std::string(json::string_member(message, "approver")),
                            std::string(json::string_member(message, "reason"))};
  const std::string id(json::string_member(message, "id"));
  if (deliver(id, std::move(decision)))
    log::info("console approvals: the answer to ", id, " arrived through another replica");
}

void ConsoleApprovals::share_through(std::shared_ptr<cluster::RedisClient> redis,
                                     const cluster::RedisOptions& options,
                                     const std::string& key_prefix,
                                     asio::any_io_executor executor) {
  redis_ = std::move(redis);
  hash_key_ = key_prefix + "console-approvals";
  channel_ = key_prefix + "console-answers";
  executor_ = executor;
  std::vector<std::string> channels = {channel_};
  subscriber_ = std::make_unique<cluster::RedisSubscriber>(
      redis_->url(), options, std::move(channels),
      [this](std::string_view, std::string_view payload) { on_relayed(payload); });
  subscriber_->start(executor);
}

void ConsoleApprovals::stop() {
  if (subscriber_) subscriber_->stop();
}

}  // namespace membrane::gateway
