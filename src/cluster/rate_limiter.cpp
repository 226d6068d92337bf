#include "cluster/rate_limiter.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <list>
#include <mutex>
#include <unordered_map>

#include "cluster/redis_client.hpp"

namespace membrane::cluster {
namespace {

using Clock = std::chrono::steady_clock;

// Float drift must not turn a whole token into 0.9999999999 of one.
constexpr double whole_token = 1.0 - 1e-9;
// Waits and expiries are clamped to about 30 years: a refill of 1e-300 per second must not
// overflow a millisecond count.
constexpr double longest_wait_ms = 1e12;

RateDecision unavailable(std::string why) {
  RateDecision decision;
  decision.kind = RateDecision::Kind::unavailable;
  decision.error = std::move(why);
  return decision;
}

RateDecision limited(std::size_t index, double tokens, double refill_per_second) {
  RateDecision decision;
  decision.kind = RateDecision::Kind::limited;
  decision.exhausted = index;
  // Rounded up, less the float noise that would turn an exact 1 ms into 2.
  const double wait = std::ceil((1.0 - tokens) / refill_per_second * 1000.0 - 1e-6);
  decision.retry_after =
      std::chrono::milliseconds(static_cast<long long>(std::clamp(wait, 1.0, longest_wait_ms)));
  return decision;
}

std::string number_text(double value) {
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  return ec == std::errc{} ? std::string(text, end) : std::string("?");
}

// Both stores reject what would make the arithmetic meaningless (a division by zero, a bucket
// that can never hold a token) instead of guessing.
std::string invalid_bucket(const std::vector<BucketRequest>& buckets) {
  for (const auto& bucket : buckets) {
    if (!std::isfinite(bucket.refill_per_second) || bucket.refill_per_second <= 0) {
      return "rate limit bucket '" + bucket.key + "': refill_per_second must be > 0 (got " +
             number_text(bucket.refill_per_second) + ")";
    }
    if (!std::isfinite(bucket.capacity) || bucket.capacity < 1) {
      return "rate limit bucket '" + bucket.key + "': capacity must be >= 1 (got " +
             number_text(bucket.capacity) + ")";
    }
  }
  return {};
}

// ---- local ----------------------------------------------------------------------------------

class LocalRateLimiter final : public RateLimiter {
 public:
  LocalRateLimiter(std::size_t max_buckets, std::function<Clock::time_point()> now)
      : max_buckets_(std::max<std::size_t>(max_buckets, 1)), now_(std::move(now)) {}

  awaitable<RateDecision> take(std::vector<BucketRequest> buckets) override {
    co_return decide(buckets);
  }
  std::string_view store_name() const override { return "local"; }

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point updated;
    double refill_per_second = 0;
    double capacity = 0;
    std::list<const std::string*>::iterator recency;

    double tokens_at(Clock::time_point now, double refill, double limit) const {
      const double elapsed =
          std::chrono::duration<double>(std::max(now - updated, Clock::duration::zero())).count();
      return std::min(limit, tokens + elapsed * refill);
    }
  };

  // What this request does to one bucket; a key listed twice shares one entry.
  struct Step {
    const BucketRequest* request;
    double tokens_after;
  };

  RateDecision decide(const std::vector<BucketRequest>& requests) {
    if (auto error = invalid_bucket(requests); !error.empty()) return unavailable(error);
    std::vector<Step> steps;
    steps.reserve(requests.size());
    std::lock_guard lock(mutex_);
    const auto now = now_ ? now_() : Clock::now();
    // First decide, touching nothing, so that a limited request consumes no token anywhere.
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const auto& request = requests[i];
      auto step = std::find_if(steps.begin(), steps.end(),
                               [&](const Step& s) { return s.request->key == request.key; });
      double tokens = 0;
      if (step != steps.end()) {
        tokens = step->tokens_after;
      } else if (const auto it = buckets_.find(request.key); it != buckets_.end()) {
        tokens = it->second.tokens_at(now, request.refill_per_second, request.capacity);
      } else {
        tokens = request.capacity;  // never seen, or dropped once full: full
      }
      if (tokens < whole_token) return limited(i, tokens, request.refill_per_second);
      if (step != steps.end()) {
        step->tokens_after = tokens - 1;
      } else {
        steps.push_back(Step{&request, tokens - 1});
      }
    }
    for (const auto& step : steps) {
      auto [it, inserted] = buckets_.try_emplace(step.request->key);
      auto& bucket = it->second;
      if (inserted) {
        recency_.push_front(&it->first);
        bucket.recency = recency_.begin();
      } else {
        recency_.splice(recency_.begin(), recency_, bucket.recency);
      }
      // The request's rates win over stored ones: a configuration reload applies at once.
      bucket.tokens = step.tokens_after;
      bucket.updated = now;
      bucket.refill_per_second = step.request->refill_per_second;
      bucket.capacity = step.request->capacity;
    }
    trim(now);
    return {};
  }

  void trim(Clock::time_point now) {
    if (buckets_.size() <= max_buckets_) return;
    if (sweeps_to_skip_ > 0) {
      --sweeps_to_skip_;
    } else {
      for (auto it = buckets_.begin(); it != buckets_.end();) {
        const auto& bucket = it->second;
        if (bucket.tokens_at(now, bucket.refill_per_second, bucket.capacity) >= bucket.capacity) {
          recency_.erase(bucket.recency);
          it = buckets_.erase(it);
        } else {
          ++it;
        }
      }
      // A full scan under the lock is fine once in a while, not for every new key: under a
      // flood of distinct keys whose buckets are all in use, the next evictions are by recency
      // alone (amortised O(1) per key).
      sweeps_to_skip_ = max_buckets_ / 16;
    }
    while (buckets_.size() > max_buckets_) {
      const auto victim = buckets_.find(*recency_.back());
      recency_.pop_back();
      buckets_.erase(victim);
    }
  }

  const std::size_t max_buckets_;
  const std::function<Clock::time_point()> now_;
  std::mutex mutex_;  // held for a few map operations per request
  std::unordered_map<std::string, Bucket> buckets_;
  // Most recently used first; points at the keys in buckets_ (node keys never move).
  std::list<const std::string*> recency_;
  std::size_t sweeps_to_skip_ = 0;
};

// ---- Redis ----------------------------------------------------------------------------------

// KEYS[i] is bucket i's hash, ARGV[2i-1] and ARGV[2i] its refill per second and capacity.
// Returns {1} when every bucket gave a token, else {0, index of the first empty bucket
// (0-based), ms until it holds one}: integers only, since Redis truncates Lua numbers in
// replies. Time is Redis' own (TIME), so replicas' clocks do not matter; Redis 7 replicates a
// script's effects, not the script, which makes TIME safe here. Tokens and ts are stored with
// %.17g, which round-trips a double exactly. A bucket expires when it would be full again (+1 s)
// since a full bucket and a missing one mean the same.
// With Redis Cluster every key of one request would need the same hash slot; this targets a
// single Redis (or a primary with replicas).
constexpr std::string_view take_script_source = R"lua(
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local longest = 1e12
local tokens, rates, capacities, order = {}, {}, {}, {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local rate = tonumber(ARGV[2 * i - 1])
  local capacity = tonumber(ARGV[2 * i])
  local available = tokens[key]
  if available == nil then
    local stored = redis.call('HMGET', key, 'tokens', 'ts')
    local level, ts = tonumber(stored[1]), tonumber(stored[2])
    if level == nil or ts == nil then
      available = capacity
    else
      available = math.min(capacity, level + math.max(0, now - ts) * rate / 1000)
    end
    order[#order + 1] = key
  end
  if available < 1 - 1e-9 then
    local wait = math.ceil((1 - available) * 1000 / rate - 1e-6)
    return {0, i - 1, math.min(math.max(wait, 1), longest)}
  end
  tokens[key] = available - 1
  rates[key] = rate
  capacities[key] = capacity
end
for _, key in ipairs(order) do
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens[key]),
             'ts', string.format('%.17g', now))
  local refill_ms = math.ceil((capacities[key] - tokens[key]) * 1000 / rates[key])
  redis.call('PEXPIRE', key, math.min(refill_ms, longest) + 1000)
end
return {1}
)lua";

class RedisRateLimiter final : public RateLimiter {
 public:
  RedisRateLimiter(std::shared_ptr<RedisClient> client, std::string key_prefix)
      : client_(std::move(client)),
        key_prefix_(std::move(key_prefix)),
        script_(std::string(take_script_source)) {}

  awaitable<RateDecision> take(std::vector<BucketRequest> buckets) override {
    if (auto error = invalid_bucket(buckets); !error.empty()) co_return unavailable(error);
    if (buckets.empty()) co_return RateDecision{};
    std::vector<std::string> keys;
    std::vector<std::string> args;
    keys.reserve(buckets.size());
    args.reserve(buckets.size() * 2);
    for (const auto& bucket : buckets) {
      keys.push_back(key_prefix_ + bucket.key);
      args.push_back(number_text(bucket.refill_per_second));
      args.push_back(number_text(bucket.capacity));
    }
    auto result = co_await client_->run_script(script_, std::move(keys), std::move(args));
    if (!result.ok()) co_return unavailable(std::move(result.error));
    co_return interpret(result.reply, buckets.size());
  }

  std::string_view store_name() const override { return "redis"; }

 private:
  RateDecision interpret(const RedisReply& reply, std::size_t bucket_count) const {
    using Kind = RedisReply::Kind;
    if (reply.kind == Kind::error) {
      return unavailable("redis " + client_->url().endpoint() +
                         ": rate limit script failed: " + reply.text);
    }
    const auto& e = reply.elements;
    const bool integers = std::all_of(e.begin(), e.end(), [](const RedisReply& element) {
      return element.kind == Kind::integer;
    });
    if (reply.kind == Kind::array && integers && e.size() == 1 && e[0].integer == 1) return {};
    if (reply.kind == Kind::array && integers && e.size() == 3 && e[0].integer == 0 &&
        e[1].integer >= 0 && static_cast<std::size_t>(e[1].integer) < bucket_count) {
      RateDecision decision;
      decision.kind = RateDecision::Kind::limited;
      decision.exhausted = static_cast<std::size_t>(e[1].integer);
      decision.retry_after = std::chrono::milliseconds(std::max<long long>(e[2].integer, 1));
      return decision;
    }
    return unavailable("redis " + client_->url().endpoint() +
                       ": unexpected reply from the rate limit script");
  }

  std::shared_ptr<RedisClient> client_;
  std::string key_prefix_;
  RedisScript script_;
};

}  // namespace

std::unique_ptr<RateLimiter> make_local_rate_limiter(std::size_t max_buckets,
                                                     std::function<Clock::time_point()> now) {
  return std::make_unique<LocalRateLimiter>(max_buckets, std::move(now));
}

std::unique_ptr<RateLimiter> make_redis_rate_limiter(std::shared_ptr<RedisClient> client,
                                                     std::string key_prefix) {
  return std::make_unique<RedisRateLimiter>(std::move(client), std::move(key_prefix));
}

}  // namespace membrane::cluster
