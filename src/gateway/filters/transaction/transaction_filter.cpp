#include "gateway/filters/transaction/transaction_filter.hpp"

#include <mutex>
#include <unordered_map>

#include "gateway/responses.hpp"
#include "http/background.hpp"
#include "membrane/core/ascii.hpp"
#include "membrane/core/log.hpp"
#include "membrane/core/sha256.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {

// Tokens minted for transactions, and incoming tokens already verified, shared by every worker;
// and the thread that signs and verifies, so the event loops never do.
class TransactionTokenCache {
 public:
  struct Token {
    std::string token;
    std::shared_ptr<const mcp::Json> claims;
    std::int64_t reuse_until = 0;  // unix seconds
  };

  // Shared, not copied: a token is several hundred bytes and every call of its transaction
  // uses it.
  using Shared = std::shared_ptr<const Token>;

  Shared minted(const std::string& key, std::int64_t now) const { return find(minted_, key, now); }
  void keep_minted(std::string key, Shared token, std::int64_t now) {
    keep(minted_, std::move(key), std::move(token), now, max_minted);
  }
  Shared verified(const std::string& token, std::int64_t now) const {
    return find(verified_, token, now);
  }
  void keep_verified(Shared token, std::int64_t now) {
    // A long token is verified each time rather than kept: the cache stays small.
    if (token->token.size() > max_kept_token_bytes) return;
    std::string key = token->token;
    keep(verified_, std::move(key), std::move(token), now, max_verified);
  }

  http::BackgroundThreads& signer() { return signer_; }

 private:
  using Map = std::unordered_map<std::string, Shared>;
  static constexpr std::size_t max_minted = 65536;
  static constexpr std::size_t max_verified = 4096;
  static constexpr std::size_t max_kept_token_bytes = 4096;

  Shared find(const Map& map, const std::string& key, std::int64_t now) const {
    std::lock_guard lock(mutex_);
    const auto it = map.find(key);
    if (it == map.end() || now >= it->second->reuse_until) return nullptr;
    return it->second;
  }
  void keep(Map& map, std::string key, Shared token, std::int64_t now, std::size_t capacity) {
    std::lock_guard lock(mutex_);
    if (map.size() >= capacity) {
      std::erase_if(map, [now](const auto& entry) { return now >= entry.second->reuse_until; });
      // Still full of live entries: start over rather than grow (they are minted again).
      if (map.size() >= capacity) map.clear();
    }
    map.insert_or_assign(std::move(key), std::move(token));
  }

  mutable std::mutex mutex_;
  Map minted_;
  Map verified_;
  http::BackgroundThreads signer_{1};
};

namespace {

std::string short_digest(std::string_view text) {
  const auto digest = core::sha256(text);
  return mcp::base64url_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), 16));
}

std::string_view subject_of(const Exchange& exchange) {
  return exchange.identity ? std::string_view(exchange.identity->subject) : "anonymous";
}

std::string scope_of(const Exchange& exchange) {
  std::string scope;
  if (exchange.identity) {
    for (const auto& granted : exchange.identity->scopes) {
      if (!scope.empty()) scope += ' ';
      scope += granted;
    }
  }
  return scope.empty() ? "mcp" : scope;
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

// params._meta["io.membrane/transaction"], or null when the request declares none.
const mcp::Json* declared_transaction(const mcp::Message& message) {
  const auto* params = message.params();
  if (!params || !params->is_object()) return nullptr;
  const auto meta = params->find("_meta");
  if (meta == params->end() || !meta->is_object()) return nullptr;
  const auto declared = meta->find(declared_transaction_key);
  return declared == meta->end() ? nullptr : &*declared;
}

bool valid_transaction_name(const mcp::Json& declared) {
  if (!declared.is_string()) return false;
  const auto& name = declared.get_ref<const std::string&>();
  if (name.empty() || name.size() > 128) return false;
  for (const unsigned char c : name)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

// Bounds what a transaction's cache key may hold of a call's context arguments.
constexpr std::size_t max_cached_context_bytes = 1024;
// Longer session ids are put in a cache key as their digest.
constexpr std::size_t max_keyed_session_id_bytes = 512;

class TransactionFilter final : public Filter {
 public:
  TransactionFilter(const TransactionFilterOptions& options,
                    std::shared_ptr<TransactionTokenCache> cache)
      : options_(options), cache_(std::move(cache)) {}
  FilterStep on_request(Exchange& exchange) override;
  awaitable<FilterStep> resume(Exchange& exchange, ClientAsker&) override;

 private:
  // What the token says: the caller, the context and where the request came from.
  identity::TransactionRequest describe(const Exchange& exchange, bool whole_transaction) const;
  // The context arguments of this call ({} when it carries none).
  mcp::Json context_arguments(const mcp::Message& message) const;
  // Appends to `key` what a minted token of the transaction named by `name` is cached under;
  // false when it is not to be cached.
  bool cache_key(const Exchange& exchange, std::string_view name, std::string& key) const;
  void use(Exchange& exchange, const TransactionTokenCache::Token& token) const {
    exchange.txn.token = token.token;
    exchange.txn.claims = token.claims;
  }

  const TransactionFilterOptions& options_;
  std::shared_ptr<TransactionTokenCache> cache_;
  // What resume() does: verify the incoming token, or mint `request` (kept under `key`).
  enum class Pending { nothing, verify, mint } pending_ = Pending::nothing;
  identity::TransactionRequest request_;
  std::string key_;
  std::int64_t now_ = 0;
};

}  // namespace

TransactionFilterFactory::TransactionFilterFactory(TransactionFilterOptions options)
    : options_(std::move(options)), cache_(std::make_shared<TransactionTokenCache>()) {}

TransactionFilterFactory::~TransactionFilterFactory() = default;

std::unique_ptr<Filter> TransactionFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message || !exchange.message->is_request()) return nullptr;
  const bool in_transaction =
      !options_.per_call &&
      (!exchange.session_id.empty() || declared_transaction(*exchange.message) != nullptr);
  const bool wanted = !exchange.incoming_txn_token.empty() || in_transaction ||
                      mcp::is_call_method(exchange.message->method());
  return wanted ? std::make_unique<TransactionFilter>(options_, cache_) : nullptr;
}

bool TransactionFilter::cache_key(const Exchange& exchange, std::string_view name,
                                  std::string& key) const {
  // What names the transaction (the transaction id is a digest of it, computed only to mint),
  // and everything its token says that may differ between two of its requests: the caller, and
  // the context describe() puts in `tctx`. Each part is length-prefixed, so no subject or
  // argument can make two different tokens' keys equal.
  const auto add = [&key](std::string_view part) {
    ascii::append_decimal(key, part.size());
    key += ':';
    key += part;
  };
  add(name);
  add(subject_of(exchange));
  add(scope_of(exchange));
  add(exchange.upstream);
  const auto* params = exchange.message->params();
  if (!params || options_.context_arguments.empty()) return true;
  const auto arguments = params->find("arguments");
  if (arguments == params->end() || !arguments->is_object()) return true;
  const std::size_t context_from = key.size();
  for (const auto& argument : options_.context_arguments) {
    const auto value = arguments->find(argument);
    if (value == arguments->end() || argument == "server") continue;
    add(argument);
    add(value->dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
    // A token per distinct large argument is not worth keeping.
    if (key.size() - context_from > max_cached_context_bytes) return false;
  }
  return true;
}

mcp::Json TransactionFilter::context_arguments(const mcp::Message& message) const {
  mcp::Json found = mcp::Json::object();
  const auto* params = message.params();
  if (!params || options_.context_arguments.empty()) return found;
  const auto arguments = params->find("arguments");
  if (arguments == params->end() || !arguments->is_object()) return found;
  for (const auto& name : options_.context_arguments) {
    if (const auto value = arguments->find(name); value != arguments->end()) found[name] = *value;
  }
  return found;
}

identity::TransactionRequest TransactionFilter::describe(const Exchange& exchange,
                                                         bool whole_transaction) const {
  identity::TransactionRequest request;
  const mcp::Message& message = *exchange.message;
  request.subject = subject_of(exchange);
  request.scope = scope_of(exchange);
  // A transaction's token is about the transaction, not one of its calls: the call itself is
  // in the message the token travels with.
  request.context = {{"server", exchange.upstream}};
  if (!whole_transaction) {
    request.context["method"] = message.method();
    if (const auto target = target_name(exchange); !target.empty())
      request.context[message.method() == "resources/read" ? "uri" : "tool"] = target;
  }
  mcp::Json arguments = context_arguments(message);
  for (auto& [name, value] : arguments.items()) {
    if (!request.context.contains(name)) request.context[name] = std::move(value);
  }
  request.requester = {{"client_ip", host_of(exchange.client_address)},
                       {"authn", exchange.identity ? exchange.identity->method : "none"}};
  if (exchange.identity && !exchange.identity->client_id.empty())
    request.requester["client_id"] = exchange.identity->client_id;
  if (exchange.session && !exchange.session->client_name.empty())
    request.requester["agent"] = exchange.session->client_name;
  return request;
}

FilterStep TransactionFilter::on_request(Exchange& exchange) {
  now_ = unix_now();
  const mcp::Message& message = *exchange.message;
  if (!exchange.incoming_txn_token.empty()) {
    const std::string token(exchange.incoming_txn_token);
    if (auto known = cache_->verified(token, now_)) {
      use(exchange, *known);
      return FilterStep::proceed();
    }
    pending_ = Pending::verify;
    return FilterStep::pause();
  }

  // The transaction this request belongs to: one its caller declared, or its session's.
  const mcp::Json* declared = nullptr;
  bool in_session = false;
  if (!options_.per_call) {
    declared = declared_transaction(message);
    if (declared && !valid_transaction_name(*declared)) {
      return FilterStep::answer(
          400, mcp::make_error_response(
                   message.id(), mcp::error_code::invalid_params,
                   "params._meta[\"" + std::string(declared_transaction_key) +
                       "\"] names the request's transaction: a string of 1 to 128 visible "
                       "ASCII characters"));
    }
    in_session = !declared && !exchange.session_id.empty();
  }
  if (!declared && !in_session && !mcp::is_call_method(message.method()))
    return FilterStep::proceed();

  std::string txn;
  if (declared || in_session) {
    // A call of a transaction whose token is minted already builds no request to find it, and
    // allocates nothing: the key is written into a buffer the thread keeps.
    thread_local std::string key;
    std::string_view name =
        declared ? std::string_view(declared->get_ref<const std::string&>()) : exchange.session_id;
    // A long session id (a stdio session's carries the client's initialize parameters) is
    // named by its digest instead, which keeps the cache's keys small.
    std::string session_digest;
    if (!declared && name.size() > max_keyed_session_id_bytes) {
      session_digest = short_digest(name);
      name = session_digest;
    }
    // Declared names, session ids and session digests are told apart in the key.
    key.assign(declared ? "c" : session_digest.empty() ? "s" : "d");
    if (cache_key(exchange, name, key)) {
      if (auto known = cache_->minted(key, now_)) {
        use(exchange, *known);
        return FilterStep::proceed();
      }
      key_ = key;
    }
    // Scoped to the caller: another caller declaring the same name is another transaction.
    txn =
        declared
            ? "c-" + short_digest(std::string(subject_of(exchange)) + '\0' + std::string(name))
            : "s-" + (session_digest.empty() ? short_digest(exchange.session_id) : session_digest);
  }
  request_ = describe(exchange, !txn.empty());
  request_.txn = std::move(txn);
  pending_ = Pending::mint;
  return FilterStep::pause();
}

awaitable<FilterStep> TransactionFilter::resume(Exchange& exchange, ClientAsker&) {
  const auto service = options_.service;
  const auto now = now_;
  if (pending_ == Pending::verify) {
    std::string token(exchange.incoming_txn_token);
    // A named lambda, not one built in the co_await's arguments (GCC 12 coroutines).
    auto verify = [service, token, now] { return service->verify(token, now); };
    auto check = co_await cache_->signer().run(std::move(verify));
    if (!check || !*check) {
      const std::string why = check ? check->error : "the token could not be checked";
      log::info("refused an incoming Txn-Token (", identity::token_fingerprint(token), ") from ",
                exchange.client_address, ": ", why);
      co_return FilterStep::answer(
          401, mcp::make_error_response(exchange.message->id(), mcp::error_code::invalid_request,
                                        "Unauthorized: invalid Txn-Token: " + why));
    }
    auto verified = std::make_shared<TransactionTokenCache::Token>();
    verified->token = std::move(token);
    verified->reuse_until = check->token->claims.value("exp", std::int64_t{0});
    verified->claims = std::make_shared<const mcp::Json>(std::move(check->token->claims));
    use(exchange, *verified);
    cache_->keep_verified(std::move(verified), now);
    co_return FilterStep::proceed();
  }

  auto request = std::move(request_);
  auto sign = [service, request = std::move(request), now] { return service->issue(request, now); };
  auto issued = co_await cache_->signer().run(std::move(sign));
  if (!issued) {
    // Fail closed: a call that should carry a token does not go without one.
    log::error("transaction token for '", exchange.upstream, "': signing failed");
    co_return FilterStep::answer(
        500, mcp::make_error_response(exchange.message->id(), mcp::error_code::internal_error,
                                      "the gateway could not sign a transaction token"));
  }
  auto minted = std::make_shared<TransactionTokenCache::Token>();
  minted->token = std::move(issued->token);
  minted->claims = std::make_shared<const mcp::Json>(std::move(issued->claims));
  use(exchange, *minted);
  if (!key_.empty()) {
    // Reused until a fifth of its lifetime is left: a call never carries an almost-expired token.
    minted->reuse_until = now + options_.service->options().lifetime.count() * 4 / 5;
    cache_->keep_minted(std::move(key_), std::move(minted), now);
  }
  co_return FilterStep::proceed();
}

}  // namespace membrane::gateway
