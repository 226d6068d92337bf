// The access log: one line per exchange at info level: who called what on which upstream, and how
// it ended.
#pragma once

#include "gateway/exchange/filter.hpp"

namespace membrane::gateway {

class AccessLogFilterFactory final : public FilterFactory {
 public:
  std::string_view name() const override { return "access_log"; }
  std::unique_ptr<Filter> make(const Exchange& exchange) const override;
};

}  // namespace membrane::gateway
