// Token bucket rate limiting with a choice of store: in-process (the default; each replica
// counts on its own) or Redis (one budget shared by every replica behind a Service).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/asio.hpp"

namespace membrane::cluster {

class RedisClient;

// Take one token from bucket `key`, which holds at most `capacity` tokens and gains
// `refill_per_second` of them per second. A bucket never seen before starts full.
struct BucketRequest {
  std::string key;
  double refill_per_second = 0;
  double capacity = 0;
};

struct RateDecision {
  enum class Kind { allowed, limited, unavailable } kind = Kind::allowed;
  std::size_t exhausted = 0;                 // limited: index of the first bucket without a token
  std::chrono::milliseconds retry_after{0};  // limited: when it holds one again (>= 1 ms)
  std::string error;                         // unavailable: why (store unreachable, bad request)
};

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // All or nothing: tokens are taken from every bucket only when every bucket has one, so a
  // limited request costs nothing. A key listed twice needs two tokens.
  virtual awaitable<RateDecision> take(std::vector<BucketRequest> buckets) = 0;
  virtual std::string_view store_name() const = 0;  // "local" | "redis"
};

// In-process buckets shared by all worker threads. At most `max_buckets` are kept: when full,
// buckets that have refilled completely go first (they are equivalent to absent ones), then the
// least recently used. `now` replaces the steady clock in tests.
std::unique_ptr<RateLimiter> make_local_rate_limiter(
    std::size_t max_buckets = 100'000,
    std::function<std::chrono::steady_clock::time_point()> now = {});

// Buckets in Redis (a hash per bucket at key_prefix + key), updated by one Lua script per
// request on Redis' own clock, so replicas' clocks do not matter. Idle buckets expire once they
// would be full again. When Redis cannot answer the decision is `unavailable`: whether that
// fails open or closed is the caller's policy.
std::unique_ptr<RateLimiter> make_redis_rate_limiter(std::shared_ptr<RedisClient> client,
                                                     std::string key_prefix);

}  // namespace membrane::cluster
