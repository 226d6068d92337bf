#include "gateway/filters/transaction/transaction_filter.hpp"

#include <openssl/sha.h>

#include <unordered_map>

#include "gateway/responses.hpp"
#include "membrane/core/log.hpp"

namespace membrane::gateway {
namespace {

bool is_call(std::string_view method) {
  return method == "tools/call" || method == "resources/read" || method == "prompts/get";
}

// The transaction id of a session: stable for the session, unrelated between sessions.
std::string session_transaction_id(std::string_view session_id) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(session_id.data()), session_id.size(), digest);
  return "s-" + mcp::base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), 16));
}

std::string host_of(std::string_view address) {
  // "ip:port" or "[v6]:port" -> the IP alone.
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    return std::string(
        address.substr(1, close == std::string_view::npos ? address.size() : close - 1));
  }
  return std::string(address.substr(0, address.rfind(':')));
}

class TransactionFilter final : public Filter {
 public:
  explicit TransactionFilter(const TransactionFilterOptions& options) : options_(options) {}
  FilterStep on_request(Exchange& exchange) override;

 private:
  identity::TransactionRequest describe(const Exchange& exchange) const;
  const TransactionFilterOptions& options_;
};

}  // namespace

std::unique_ptr<Filter> TransactionFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message || !exchange.message->is_request()) return nullptr;
  const bool wanted = !exchange.incoming_txn_token.empty() ||
                      (options_.per_session && !exchange.session_id.empty()) ||
                      is_call(exchange.message->method());
  return wanted ? std::make_unique<TransactionFilter>(options_) : nullptr;
}

identity::TransactionRequest TransactionFilter::describe(const Exchange& exchange) const {
  identity::TransactionRequest request;
  const mcp::Message& message = *exchange.message;
  request.subject = exchange.identity ? exchange.identity->subject : "anonymous";
  std::string scope;
  if (exchange.identity) {
    for (const auto& granted : exchange.identity->scopes)
      scope += (scope.empty() ? "" : " ") + granted;
  }
  request.scope = scope.empty() ? "mcp" : scope;
  request.context = {{"method", message.method()}, {"server", exchange.upstream}};
  if (const auto target = message.target_name(); !target.empty())
    request.context[message.method() == "resources/read" ? "uri" : "tool"] = target;
  if (const auto* params = message.params(); params && !options_.context_arguments.empty()) {
    const auto arguments = params->find("arguments");
    if (arguments != params->end() && arguments->is_object()) {
      for (const auto& name : options_.context_arguments) {
        if (const auto value = arguments->find(name);
            value != arguments->end() && !request.context.contains(name))
          request.context[name] = *value;
      }
    }
  }
  request.requester = {{"client_ip", host_of(exchange.client_address)},
                       {"authn", exchange.identity ? exchange.identity->method : "none"}};
  if (exchange.identity && !exchange.identity->client_id.empty())
    request.requester["client_id"] = exchange.identity->client_id;
  if (exchange.session && !exchange.session->client_name.empty())
    request.requester["agent"] = exchange.session->client_name;
  if (options_.per_session && !exchange.session_id.empty())
    request.txn = session_transaction_id(exchange.session_id);
  return request;
}

FilterStep TransactionFilter::on_request(Exchange& exchange) {
  const auto now = unix_now();
  if (!exchange.incoming_txn_token.empty()) {
    auto check = options_.service->verify(exchange.incoming_txn_token, now);
    if (!check) {
      log::info("refused an incoming Txn-Token (",
                identity::token_fingerprint(exchange.incoming_txn_token), ") from ",
                exchange.client_address, ": ", check.error);
      return FilterStep::answer(
          401, mcp::make_error_response(exchange.message->id(), mcp::error_code::invalid_request,
                                        "Unauthorized: invalid Txn-Token: " + check.error));
    }
    exchange.txn.token = std::string(exchange.incoming_txn_token);
    exchange.txn.claims = std::move(check.token->claims);
    return FilterStep::proceed();
  }
  const bool per_session = options_.per_session && !exchange.session_id.empty();
  if (!per_session && !is_call(exchange.message->method())) return FilterStep::proceed();

  if (per_session) {
    // A session's token is reused on this thread until a fifth of its lifetime is left.
    struct Cached {
      const TransactionFilterOptions* owner;
      std::string token;
      mcp::Json claims;
      std::int64_t refresh_at;
    };
    thread_local std::unordered_map<std::string, Cached> by_session;
    const std::string key(exchange.session_id);
    if (const auto it = by_session.find(key);
        it != by_session.end() && it->second.owner == &options_ && now < it->second.refresh_at) {
      exchange.txn.token = it->second.token;
      exchange.txn.claims = it->second.claims;
      return FilterStep::proceed();
    }
    auto issued = options_.service->issue(describe(exchange), now);
    if (by_session.size() >= 4096) by_session.clear();
    const auto lifetime = options_.service->options().lifetime.count();
    by_session[key] = Cached{&options_, issued.token, issued.claims, now + lifetime * 4 / 5};
    exchange.txn.token = std::move(issued.token);
    exchange.txn.claims = std::move(issued.claims);
    return FilterStep::proceed();
  }
  auto issued = options_.service->issue(describe(exchange), now);
  exchange.txn.token = std::move(issued.token);
  exchange.txn.claims = std::move(issued.claims);
  return FilterStep::proceed();
}

}  // namespace membrane::gateway
