#include "gateway/filters/rate_limit/rate_limit_filter.hpp"

#include "gateway/filters/refusal.hpp"
#include "membrane/core/log.hpp"

namespace membrane::gateway {

// What every filter of the factory shares: one report of a store outage per interval, from any
// worker thread, with the count of the calls it concerned.
struct RateLimitFilterFactory::Shared {
  bool report_due(Clock::time_point now) {
    auto due = next_report.load(std::memory_order_relaxed);
    return now.time_since_epoch().count() >= due &&
           next_report.compare_exchange_strong(
               due, (now + std::chrono::seconds(10)).time_since_epoch().count(),
               std::memory_order_relaxed);
  }
  std::atomic<Clock::rep> next_report{0};
  std::atomic<std::uint64_t> store_down_calls{0};
};

namespace {

class RateLimitFilter final : public Filter {
 public:
  RateLimitFilter(cluster::RateLimiter& store, bool shadow,
                  RateLimitFilterFactory::StoreDown when_store_down,
                  RateLimitFilterFactory::Shared& shared)
      : store_(store), shadow_(shadow), when_store_down_(when_store_down), shared_(shared) {}

  FilterStep on_request(Exchange& exchange) override {
    if (exchange.limits.charged || exchange.limits.charges.empty()) return FilterStep::proceed();
    return FilterStep::pause();
  }

  awaitable<FilterStep> resume(Exchange& exchange, ClientAsker&) override {
    std::vector<cluster::BucketRequest> buckets;
    buckets.reserve(exchange.limits.charges.size());
    for (auto& charge : exchange.limits.charges) {
      cluster::BucketRequest bucket;
      // The bucket's name is not needed after this: a refusal names the limit.
      bucket.key = std::move(charge.bucket);
      bucket.refill_per_second = charge.refill_per_second;
      bucket.capacity = charge.capacity;
      buckets.push_back(std::move(bucket));
    }
    const cluster::RateDecision taken = co_await store_.take(std::move(buckets));
    co_return decide(exchange, taken);
  }

 private:
  FilterStep decide(Exchange& exchange, const cluster::RateDecision& taken) const;

  cluster::RateLimiter& store_;
  bool shadow_;
  RateLimitFilterFactory::StoreDown when_store_down_;
  RateLimitFilterFactory::Shared& shared_;
};

FilterStep RateLimitFilter::decide(Exchange& exchange, const cluster::RateDecision& taken) const {
  using Kind = cluster::RateDecision::Kind;
  const std::string_view method = exchange.message->method();
  if (taken.kind == Kind::allowed) {
    exchange.limits.charged = true;
    return FilterStep::proceed();
  }
  if (taken.kind == Kind::unavailable) {
    const bool refuse = when_store_down_ == RateLimitFilterFactory::StoreDown::deny && !shadow_;
    // During an outage every limited call lands here: one line per interval says it, with the
    // count since the last one, instead of one line per call.
    ++shared_.store_down_calls;
    if (shared_.report_due(Clock::now())) {
      log::warn("policy: the rate-limit store did not answer (", taken.error, "); ", method, " ",
                target_name(exchange), " on '", exchange.upstream, "' is ",
                refuse ? "refused" : "forwarded unlimited", " (",
                shared_.store_down_calls.exchange(0), " such call(s) since the last report)");
    }
    exchange.policy.note = shadow_ ? "shadow:limits_unavailable" : "limits_unavailable";
    if (!refuse) return FilterStep::proceed();
    exchange.policy.verdict = "deny";
    exchange.policy.rule = "(rate limits)";
    return refuse_call(exchange,
                       "Rate limits apply to this call, and the gateway could not check them (its "
                       "rate-limit store is unavailable), so the call was not forwarded. Try again "
                       "shortly.",
                       {{"verdict", "deny"}, {"limit", "unavailable"}});
  }
  const auto& charges = exchange.limits.charges;
  const RateLimitCharge* limit =
      taken.exhausted < charges.size() ? &charges[taken.exhausted] : nullptr;
  const std::string limit_id = limit ? std::string(limit->limit_id) : std::string("(unknown)");
  const auto retry_seconds = (taken.retry_after.count() + 999) / 1000;
  if (shadow_) {
    log::info("policy (shadow): rate limit '", limit_id, "' would refuse ", method, " ",
              target_name(exchange), " on '", exchange.upstream, "'");
    exchange.policy.note = "shadow:rate_limited";
    if (exchange.policy.rule.empty()) exchange.policy.rule = limit_id;
    return FilterStep::proceed();
  }
  log::info("policy: rate limit '", limit_id, "' refuses ", method, " ", target_name(exchange),
            " on '", exchange.upstream, "' (retry in ", retry_seconds, " s)");
  exchange.policy.verdict = "deny";
  exchange.policy.rule = limit_id;
  exchange.policy.note = "rate_limited";
  std::string text = "Rate limit '" + limit_id + "'";
  if (limit) {
    text += " (" + std::string(limit->rate);
    if (!limit->by.empty()) {
      text += " for each";
      for (std::size_t i = 0; i < limit->by.size(); ++i)
        text += (i == 0 ? " " : ", ") + limit->by[i];
    }
    text += ")";
  }
  text += " reached";
  if (limit && !limit->reason.empty()) text += ": " + std::string(limit->reason);
  text += ". The call was not forwarded; try again in " + std::to_string(retry_seconds) +
          (retry_seconds == 1 ? " second." : " seconds.");
  return refuse_call(exchange, text,
                     {{"rule", limit_id},
                      {"verdict", "deny"},
                      {"limit", limit_id},
                      {"retryAfterMs", taken.retry_after.count()}});
}

}  // namespace

RateLimitFilterFactory::RateLimitFilterFactory(std::shared_ptr<cluster::RateLimiter> store,
                                               bool shadow, StoreDown when_store_down)
    : store_(std::move(store)),
      shadow_(shadow),
      when_store_down_(when_store_down),
      shared_(std::make_shared<Shared>()) {}

std::unique_ptr<Filter> RateLimitFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message || !exchange.message->is_request()) return nullptr;
  const std::string_view method = exchange.message->method();
  if (method != "tools/call" && method != "resources/read" && method != "prompts/get")
    return nullptr;
  return std::make_unique<RateLimitFilter>(*store_, shadow_, when_store_down_, *shared_);
}

}  // namespace membrane::gateway
