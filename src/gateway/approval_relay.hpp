// With several replicas, the client's answer to an approval the gateway asked (a policy `ask`)
// may reach another replica than the one waiting for it. The replica that finds no waiter
// publishes the answer on a Redis channel every replica subscribes to, and the one holding the
// question delivers it. The question stays bound to its session: a relayed answer counts only on
// the session it was asked on.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "cluster/redis_client.hpp"
#include "gateway/client_requests.hpp"

namespace membrane::gateway {

class ApprovalRelay {
 public:
  ApprovalRelay(ClientRequests& requests, std::shared_ptr<cluster::RedisClient> redis,
                cluster::RedisOptions options, std::string channel);
  ~ApprovalRelay();
  ApprovalRelay(const ApprovalRelay&) = delete;
  ApprovalRelay& operator=(const ApprovalRelay&) = delete;

  // Subscribes on `executor`, and from then on relays the answers `requests` cannot deliver.
  void start(asio::any_io_executor executor);
  void stop();

  std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }
  std::uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }

 private:
  awaitable<void> publish(std::string payload, std::string id);
  void on_message(std::string_view payload);

  ClientRequests& requests_;
  std::shared_ptr<cluster::RedisClient> redis_;
  std::string channel_;
  cluster::RedisSubscriber subscriber_;
  asio::any_io_executor executor_;
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> delivered_{0};
};

}  // namespace membrane::gateway
