// The rate-limit filter: before a judged call is forwarded, takes one token from each bucket the
// policy named for it (LimitsFact), all or nothing, from the gateway's store (this process, or
// Redis shared by every replica). The call pauses while the store answers. A call over a limit is
// refused with when to retry; when the store cannot answer, the call goes on (fail open, the
// default) or is refused, as configured. Shadow mode only records.
#pragma once

#include <atomic>
#include <memory>

#include "cluster/rate_limiter.hpp"
#include "gateway/exchange/filter.hpp"

namespace membrane::gateway {

class RateLimitFilterFactory final : public FilterFactory {
 public:
  // When the rate-limit store cannot answer (Redis unreachable): forward the call or refuse it.
  enum class StoreDown { allow, deny };

  RateLimitFilterFactory(std::shared_ptr<cluster::RateLimiter> store, bool shadow,
                         StoreDown when_store_down);

  std::string_view name() const override { return "rate_limit"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;

  struct Shared;

 private:
  std::shared_ptr<cluster::RateLimiter> store_;
  bool shadow_;
  StoreDown when_store_down_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace membrane::gateway
