#include "gateway/exchange/filter_chain.hpp"

namespace membrane::gateway {

void FilterChain::add(std::unique_ptr<FilterFactory> factory) {
  wants_request_headers_ = wants_request_headers_ || factory->wants_request_headers();
  factories_.push_back(std::move(factory));
}

ExchangeFilters FilterChain::make(const Exchange& exchange) const {
  ExchangeFilters filters;
  for (const auto& factory : factories_) {
    if (auto filter = factory->make(exchange)) filters.push_back(std::move(filter));
  }
  return filters;
}

}  // namespace membrane::gateway
