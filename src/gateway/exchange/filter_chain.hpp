// The configured filter factories, in order, and the filters made from them for one exchange.
#pragma once

#include <boost/container/small_vector.hpp>

#include <memory>
#include <vector>

#include "gateway/exchange/filter.hpp"

namespace membrane::gateway {

// The filters of one exchange: held inline, so that an exchange costs no allocation for the list.
using ExchangeFilters = boost::container::small_vector<std::unique_ptr<Filter>, 8>;

class FilterChain {
 public:
  void add(std::unique_ptr<FilterFactory> factory);
  // The filters for one exchange, in chain order (factories with nothing to do left out).
  ExchangeFilters make(const Exchange& exchange) const;
  bool wants_request_headers() const { return wants_request_headers_; }
  std::size_t size() const { return factories_.size(); }

 private:
  std::vector<std::unique_ptr<FilterFactory>> factories_;
  bool wants_request_headers_ = false;
};

}  // namespace membrane::gateway
