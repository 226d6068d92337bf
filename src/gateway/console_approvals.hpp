// Calls waiting for an approver at the security console: a policy `ask` rule with
// `approver: console` puts the call here, the console lists it, and an approver's answer wakes
// the waiting exchange. With Redis (cluster.redis) every replica's waiting calls are listed by
// every replica's console, and an answer given at one replica reaches the replica holding the
// call through a Redis channel.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/redis_client.hpp"
#include "http/asio.hpp"
#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::gateway {

struct ApprovalDecision {
  bool approved = false;
  std::string approver;  // who answered: the console user's token subject
  std::string reason;
};

class ConsoleApprovals {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::chrono::milliseconds timeout{300'000};  // an unanswered call is refused after this
    std::string replica;                         // this replica's name, shown to approvers
  };
  explicit ConsoleApprovals(Options options);
  ~ConsoleApprovals();
  ConsoleApprovals(const ConsoleApprovals&) = delete;
  ConsoleApprovals& operator=(const ConsoleApprovals&) = delete;

  struct Entry;
  // One call in the queue; leaves the queue when destroyed.
  class Waiting {
   public:
    Waiting(ConsoleApprovals& owner, std::shared_ptr<Entry> entry);
    ~Waiting();
    Waiting(const Waiting&) = delete;
    Waiting& operator=(const Waiting&) = delete;
    const std::string& id() const;
    // The approver's answer, or nullopt when `deadline` passes first or the wait is cancelled.
    awaitable<std::optional<ApprovalDecision>> wait(Clock::time_point deadline);

   private:
    ConsoleApprovals& owner_;
    std::shared_ptr<Entry> entry_;
  };

  // Queues a call. `summary` is what approvers see (arguments already redacted); the queue adds
  // id, replica, created and expires.
  std::unique_ptr<Waiting> open(mcp::Json summary, const asio::any_io_executor& executor);

  // The calls waiting now: this replica's, and with Redis every replica's.
  awaitable<std::vector<mcp::Json>> list();

  enum class Answered {
    delivered,  // the call waits here and takes the decision
    relayed,    // it waits at another replica: the decision went out through Redis
    unknown,    // no call waits under this id (answered already, timed out, or never asked)
  };
  awaitable<Answered> answer(const std::string& id, ApprovalDecision decision);

  // Shares the queue with the other replicas through Redis (before serving).
  void share_through(std::shared_ptr<cluster::RedisClient> redis,
                     const cluster::RedisOptions& options, const std::string& key_prefix,
                     asio::any_io_executor executor);
  void stop();

  std::chrono::milliseconds timeout() const { return options_.timeout; }
  std::size_t waiting() const;

 private:
  bool deliver(const std::string& id, ApprovalDecision decision);
  // Changes to the Redis copy of the queue, sent one after another in the order made.
  void share(std::vector<std::string> command);
  awaitable<void> send_shared_commands();
  void forget(const std::string& id);
  void on_relayed(std::string_view payload);

  Options options_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> entries_;
  std::deque<std::vector<std::string>> shared_commands_;  // mutex_ held
  bool sharing_ = false;                                  // mutex_ held: a sender runs
  // Cluster sharing (all set once, before serving).
  std::shared_ptr<cluster::RedisClient> redis_;
  std::string hash_key_;
  std::string channel_;
  std::unique_ptr<cluster::RedisSubscriber> subscriber_;
  asio::any_io_executor executor_;
};

}  // namespace membrane::gateway
