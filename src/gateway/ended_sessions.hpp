// Session ids the client ended with DELETE. A sealed id carries its whole state, so without a
// record of the deletion the id would work again elsewhere: on another replica, or on this one
// after a restart with the same session key. Deletions are kept until the id would have expired
// anyway (created_at + session.max_age), by their digest, never the id itself (a capability):
// - in this process (bounded, oldest first out), always;
// - in an append-only file (session.ended_file), replayed and compacted at start-up, so a
//   restarted gateway still refuses them;
// - in Redis (cluster.redis), as keys that expire with the id and a message on a channel that
//   every replica subscribes to, so every replica refuses them at once and a new replica loads
//   them at start-up.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cluster/redis_client.hpp"

namespace membrane::gateway {

class EndedSessions {
 public:
  struct Options {
    std::size_t capacity = 100'000;
    std::string file;                             // empty: not persisted on disk
    std::shared_ptr<cluster::RedisClient> redis;  // null: not shared
    cluster::RedisOptions redis_options;
    std::string key_prefix =
        "membrane:";  // Redis keys <prefix>ended:<digest>, channel <prefix>ended
  };

  EndedSessions();  // in process only
  explicit EndedSessions(Options options);
  ~EndedSessions();
  EndedSessions(const EndedSessions&) = delete;
  EndedSessions& operator=(const EndedSessions&) = delete;

  // Reads the file (throws std::runtime_error at start-up when it cannot be read or written) and
  // loads what Redis holds, then subscribes to other replicas' deletions on `executor`.
  void start(asio::any_io_executor executor);
  // Loads the file only: for start-up without Redis, and for tests.
  void load_file();
  void stop();

  // Records a deletion until `expires_at` (unix seconds): here at once, in the file and in Redis
  // (published in the background).
  void add(std::string_view sealed_id, std::int64_t expires_at);
  bool contains(std::string_view sealed_id) const;
  std::size_t size() const;

  // The name a deletion is kept under: 128 bits of SHA-256 over the id, hex.
  static std::string digest_of(std::string_view sealed_id);

 private:
  void remember(std::string digest, std::int64_t expires_at);
  void append_to_file(const std::string& digest, std::int64_t expires_at);
  awaitable<void> share(std::string digest, std::int64_t expires_at);
  awaitable<void> load_from_redis();
  void on_message(std::string_view payload);

  Options options_;
  std::atomic<bool> any_{false};
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> expiry_;  // digest -> unix time
  std::deque<std::string> order_;
  int file_fd_ = -1;
  std::unique_ptr<cluster::RedisSubscriber> subscriber_;
  asio::any_io_executor executor_;
};

}  // namespace membrane::gateway
