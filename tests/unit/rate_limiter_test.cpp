#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <optional>
#include <thread>

#include "cluster/rate_limiter.hpp"
#include "cluster/redis_client.hpp"
#include "live_redis.hpp"

using membrane::cluster::BucketRequest;
using membrane::cluster::make_local_rate_limiter;
using membrane::cluster::make_redis_rate_limiter;
using membrane::cluster::RateDecision;
using membrane::cluster::RateLimiter;
using membrane::cluster::RedisClient;
using membrane::cluster::RedisUrl;
using Kind = membrane::cluster::RateDecision::Kind;
namespace asio = boost::asio;
using namespace std::chrono_literals;

using membrane::cluster::testing::free_loopback_port;
using membrane::cluster::testing::live_redis_port;
using membrane::cluster::testing::start_live_redis;

namespace {

using Clock = std::chrono::steady_clock;

RateDecision take(asio::io_context& io, RateLimiter& limiter, std::vector<BucketRequest> buckets) {
  std::optional<RateDecision> decision;
  asio::co_spawn(io, limiter.take(std::move(buckets)),
                 [&](std::exception_ptr failure, RateDecision value) {
                   if (failure) std::rethrow_exception(failure);
                   decision = std::move(value);
                 });
  io.restart();
  io.run();
  REQUIRE(decision);
  return *decision;
}

// A clock the test moves by hand.
struct ManualClock {
  Clock::time_point now = Clock::time_point() + 1h;
  std::function<Clock::time_point()> function() {
    return [this] { return now; };
  }
};

BucketRequest bucket(std::string key, double refill_per_second, double capacity) {
  return BucketRequest{std::move(key), refill_per_second, capacity};
}

membrane::cluster::RedisResult command(asio::io_context& io, RedisClient& client,
                                       std::vector<std::string> args) {
  std::optional<membrane::cluster::RedisResult> result;
  asio::co_spawn(io, client.command(std::move(args)),
                 [&](std::exception_ptr failure, membrane::cluster::RedisResult value) {
                   if (failure) std::rethrow_exception(failure);
                   result = std::move(value);
                 });
  io.restart();
  io.run();
  REQUIRE(result);
  return *result;
}

std::shared_ptr<RedisClient> client_for(std::uint16_t port) {
  std::string error;
  auto url = RedisUrl::parse("redis://127.0.0.1:" + std::to_string(port), error);
  REQUIRE(url);
  return std::make_shared<RedisClient>(*url, membrane::cluster::RedisOptions{}, 1);
}

// The same for both stores: a request that one bucket cannot serve takes nothing from the others,
// and `exhausted` names the first empty bucket in request order. `wait`: the expected
// retry_after when the store's clock stands still.
void check_all_or_nothing(asio::io_context& io, RateLimiter& limiter,
                          std::optional<std::chrono::milliseconds> wait) {
  const auto tool = bucket("tool:search", 0.001, 1);
  const auto user = bucket("user:bob", 0.001, 2);
  CHECK(take(io, limiter, {tool, user}).kind == Kind::allowed);

  const auto limited = take(io, limiter, {tool, user});
  CHECK(limited.kind == Kind::limited);
  CHECK(limited.exhausted == 0);
  if (wait) CHECK(limited.retry_after == *wait);
  // user:bob still has the token the limited request did not take.
  CHECK(take(io, limiter, {user}).kind == Kind::allowed);
  CHECK(take(io, limiter, {user}).kind == Kind::limited);

  const auto fresh = bucket("tool:fetch", 0.001, 1);
  const auto second = take(io, limiter, {fresh, user});
  CHECK(second.kind == Kind::limited);
  CHECK(second.exhausted == 1);
  CHECK(take(io, limiter, {fresh}).kind == Kind::allowed);
}

}  // namespace

// ---- local ----------------------------------------------------------------------------------

TEST_CASE("a local bucket grants its capacity, then says when the next token comes",
          "[rate_limiter]") {
  asio::io_context io;
  ManualClock clock;
  auto limiter = make_local_rate_limiter(100, clock.function());
  CHECK(limiter->store_name() == "local");
  const auto request = [] { return std::vector{bucket("user:alice", 2, 3)}; };
  for (int i = 0; i < 3; ++i)
    CHECK(take(io, *limiter, request()).kind == Kind::allowed);
  auto limited = take(io, *limiter, request());
  CHECK(limited.kind == Kind::limited);
  CHECK(limited.exhausted == 0);
  CHECK(limited.retry_after == 500ms);

  clock.now += 250ms;
  limited = take(io, *limiter, request());
  CHECK(limited.kind == Kind::limited);
  CHECK(limited.retry_after == 250ms);
  clock.now += 249ms;
  CHECK(take(io, *limiter, request()).retry_after == 1ms);
  clock.now += 1ms;
  CHECK(take(io, *limiter, request()).kind == Kind::allowed);
  CHECK(take(io, *limiter, request()).kind == Kind::limited);
}

TEST_CASE("a local bucket refills over time up to its capacity", "[rate_limiter]") {
  asio::io_context io;
  ManualClock clock;
  auto limiter = make_local_rate_limiter(100, clock.function());
  const auto request = [] { return std::vector{bucket("k", 10, 3)}; };
  for (int i = 0; i < 3; ++i)
    REQUIRE(take(io, *limiter, request()).kind == Kind::allowed);
  REQUIRE(take(io, *limiter, request()).kind == Kind::limited);

  clock.now += 200ms;  // two tokens
  CHECK(take(io, *limiter, request()).kind == Kind::allowed);
  CHECK(take(io, *limiter, request()).kind == Kind::allowed);
  CHECK(take(io, *limiter, request()).kind == Kind::limited);

  clock.now += 1h;  // never more than the capacity
  for (int i = 0; i < 3; ++i)
    CHECK(take(io, *limiter, request()).kind == Kind::allowed);
  CHECK(take(io, *limiter, request()).kind == Kind::limited);

  // A fractional rate: one token every 1.5 s.
  CHECK(take(io, *limiter, {bucket("slow", 1.0 / 1.5, 1)}).kind == Kind::allowed);
  CHECK(take(io, *limiter, {bucket("slow", 1.0 / 1.5, 1)}).retry_after == 1500ms);
}

TEST_CASE("a limited request takes no token from any bucket", "[rate_limiter]") {
  asio::io_context io;
  ManualClock clock;
  auto limiter = make_local_rate_limiter(100, clock.function());
  check_all_or_nothing(io, *limiter, 1000s);
}

TEST_CASE("a bucket named twice in one request needs two tokens", "[rate_limiter]") {
  asio::io_context io;
  ManualClock clock;
  auto limiter = make_local_rate_limiter(100, clock.function());
  const auto limited = take(io, *limiter, {bucket("k", 1, 1), bucket("k", 1, 1)});
  CHECK(limited.kind == Kind::limited);
  CHECK(limited.exhausted == 1);
  CHECK(take(io, *limiter, {bucket("k2", 1, 2), bucket("k2", 1, 2)}).kind == Kind::allowed);
  CHECK(take(io, *limiter, {bucket("k2", 1, 2)}).kind == Kind::limited);
}

TEST_CASE("a bucket that could never grant a token is refused, not divided by", "[rate_limiter]") {
  asio::io_context io;
  auto limiter = make_local_rate_limiter();
  for (const auto& bad : {bucket("a", 0, 5), bucket("b", -1, 5), bucket("c", 1, 0.5),
                          bucket("d", NAN, 5), bucket("e", 1, INFINITY)}) {
    INFO(bad.key);
    const auto decision = take(io, *limiter, {bucket("fine", 1, 1), bad});
    CHECK(decision.kind == Kind::unavailable);
    CHECK(decision.error.find("'" + bad.key + "'") != std::string::npos);
  }
  // Nothing was taken from the valid bucket of those requests.
  CHECK(take(io, *limiter, {bucket("fine", 0.001, 1)}).kind == Kind::allowed);
  CHECK(take(io, *limiter, {}).kind == Kind::allowed);
}

TEST_CASE("local buckets are bounded: refilled ones go first, then the least recently used",
          "[rate_limiter]") {
  asio::io_context io;
  ManualClock clock;
  auto limiter = make_local_rate_limiter(2, clock.function());
  const auto slow = [](std::string key) { return std::vector{bucket(std::move(key), 0.001, 1)}; };
  const auto fast = [](std::string key) { return std::vector{bucket(std::move(key), 1000, 1)}; };

  REQUIRE(take(io, *limiter, slow("a")).kind == Kind::allowed);
  REQUIRE(take(io, *limiter, fast("b")).kind == Kind::allowed);
  clock.now += 10ms;  // b is full again, a is not
  REQUIRE(take(io, *limiter, slow("c")).kind == Kind::allowed);
  // b made room for c although a was used less recently: a is still remembered as empty.
  CHECK(take(io, *limiter, slow("a")).kind == Kind::limited);
  CHECK(take(io, *limiter, slow("c")).kind == Kind::limited);

  // Nothing has refilled now: the least recently used bucket (a) goes.
  REQUIRE(take(io, *limiter, slow("d")).kind == Kind::allowed);
  CHECK(take(io, *limiter, slow("a")).kind == Kind::allowed);  // forgotten: full again
  // ... which evicted c, the least recently used of c and d.
  CHECK(take(io, *limiter, slow("d")).kind == Kind::limited);
  CHECK(take(io, *limiter, slow("c")).kind == Kind::allowed);
}

TEST_CASE("local buckets never over-grant under concurrent use", "[rate_limiter]") {
  ManualClock clock;  // frozen: no refill during the test
  auto limiter = make_local_rate_limiter(100, clock.function());
  constexpr int threads = 4;
  constexpr int attempts = 500;
  constexpr int capacity = 1000;
  std::atomic<int> granted{0};
  std::atomic<int> limited{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      asio::io_context io;
      asio::co_spawn(
          io,
          [&]() -> membrane::awaitable<void> {
            for (int i = 0; i < attempts; ++i) {
              std::vector<BucketRequest> request(1, bucket("shared", 1, capacity));
              request.push_back(bucket("other", 1, 2 * capacity));
              const auto decision = co_await limiter->take(std::move(request));
              ++(decision.kind == Kind::allowed ? granted : limited);
            }
          },
          asio::detached);
      io.run();
    });
  }
  for (auto& worker : workers)
    worker.join();
  CHECK(granted == capacity);
  CHECK(limited == threads * attempts - capacity);
}

// ---- Redis ----------------------------------------------------------------------------------

TEST_CASE("Redis buckets grant their capacity, then say when the next token comes",
          "[rate_limiter]") {
  auto redis = start_live_redis();
  asio::io_context io;
  auto client = client_for(live_redis_port(*redis));
  auto limiter = make_redis_rate_limiter(client, "membrane:rl:");
  CHECK(limiter->store_name() == "redis");
  for (int i = 0; i < 3; ++i)
    CHECK(take(io, *limiter, {bucket("user:alice", 0.01, 3)}).kind == Kind::allowed);
  const auto limited = take(io, *limiter, {bucket("user:alice", 0.01, 3)});
  REQUIRE(limited.kind == Kind::limited);
  CHECK(limited.exhausted == 0);
  CHECK(limited.retry_after > 99s);
  CHECK(limited.retry_after <= 100s);

  // A hash per bucket, expiring when it would be full again (+1 s): 3 tokens at 0.01/s.
  const auto ttl = command(io, *client, {"PTTL", "membrane:rl:user:alice"});
  REQUIRE(ttl.ok());
  CHECK(ttl.reply.integer > 299'000);
  CHECK(ttl.reply.integer <= 301'000);
  const auto fields = command(io, *client, {"HGET", "membrane:rl:user:alice", "tokens"});
  CHECK(std::abs(std::stod(fields.reply.text)) < 0.01);
}

TEST_CASE("Redis buckets refill on the Redis server clock", "[rate_limiter]") {
  auto redis = start_live_redis();
  asio::io_context io;
  auto limiter = make_redis_rate_limiter(client_for(live_redis_port(*redis)), "rl:");
  const auto request = [] { return std::vector{bucket("k", 20, 1)}; };
  REQUIRE(take(io, *limiter, request()).kind == Kind::allowed);
  const auto limited = take(io, *limiter, request());
  REQUIRE(limited.kind == Kind::limited);
  CHECK(limited.retry_after >= 1ms);
  CHECK(limited.retry_after <= 50ms);
  std::this_thread::sleep_for(limited.retry_after + 10ms);
  CHECK(take(io, *limiter, request()).kind == Kind::allowed);
}

TEST_CASE("a limited Redis request takes no token from any bucket", "[rate_limiter]") {
  auto redis = start_live_redis();
  asio::io_context io;
  auto limiter = make_redis_rate_limiter(client_for(live_redis_port(*redis)), "rl:");
  // Redis' clock moves on between the calls: the wait is a little under 1000 s.
  check_all_or_nothing(io, *limiter, std::nullopt);

  const auto twice = take(io, *limiter, {bucket("once", 1, 1), bucket("once", 1, 1)});
  CHECK(twice.kind == Kind::limited);
  CHECK(twice.exhausted == 1);
}

TEST_CASE("replicas sharing one Redis share one budget", "[rate_limiter]") {
  auto redis = start_live_redis();
  asio::io_context io;
  // Two gateways: their own clients, connections and limiters; the same Redis and prefix.
  auto first = make_redis_rate_limiter(client_for(live_redis_port(*redis)), "membrane:rl:");
  auto second = make_redis_rate_limiter(client_for(live_redis_port(*redis)), "membrane:rl:");
  int granted = 0;
  for (int i = 0; i < 10; ++i) {
    auto& limiter = i % 2 == 0 ? *first : *second;
    if (take(io, limiter, {bucket("tool:deploy", 0.001, 5)}).kind == Kind::allowed) ++granted;
  }
  CHECK(granted == 5);
  // Another prefix is another budget.
  auto other = make_redis_rate_limiter(client_for(live_redis_port(*redis)), "staging:rl:");
  CHECK(take(io, *other, {bucket("tool:deploy", 0.001, 5)}).kind == Kind::allowed);
}

TEST_CASE("the Redis store is unavailable, with the reason, when Redis cannot answer",
          "[rate_limiter]") {
  asio::io_context io;
  const auto port = free_loopback_port();
  auto limiter = make_redis_rate_limiter(client_for(port), "rl:");
  const auto down = take(io, *limiter, {bucket("k", 1, 1)});
  CHECK(down.kind == Kind::unavailable);
  CHECK(down.error.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  CHECK(down.error.find("cannot connect") != std::string::npos);

  // Invalid buckets are refused before Redis is asked.
  const auto invalid = take(io, *limiter, {bucket("k", 0, 1)});
  CHECK(invalid.kind == Kind::unavailable);
  CHECK(invalid.error.find("refill_per_second") != std::string::npos);
}

TEST_CASE("a script error in Redis makes the store unavailable", "[rate_limiter]") {
  auto redis = start_live_redis();
  asio::io_context io;
  auto client = client_for(live_redis_port(*redis));
  auto limiter = make_redis_rate_limiter(client, "rl:");
  REQUIRE(command(io, *client, {"SET", "rl:not-a-hash", "x"}).ok());
  const auto decision = take(io, *limiter, {bucket("not-a-hash", 1, 1)});
  CHECK(decision.kind == Kind::unavailable);
  CHECK(decision.error.find("rate limit script failed") != std::string::npos);
  CHECK(decision.error.find("WRONGTYPE") != std::string::npos);
}
