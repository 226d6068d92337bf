// Each filter of the exchange chain on its own, made by its factory for one exchange: the policy
// (deny, ask with its pause, a deferred question, listings, redaction), rate limits (spent,
// exhausted, store down), transaction tokens, the audit record, metrics, spans and the access log.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cluster/rate_limiter.hpp"
#include "gateway/filters/access_log/access_log_filter.hpp"
#include "gateway/filters/audit/audit_filter.hpp"
#include "gateway/filters/metrics/metrics_filter.hpp"
#include "gateway/filters/policy/policy_filter.hpp"
#include "gateway/filters/rate_limit/rate_limit_filter.hpp"
#include "gateway/filters/trace/trace_filter.hpp"
#include "gateway/filters/transaction/transaction_filter.hpp"
#include "gateway/responses.hpp"
#include "http/asio.hpp"
#include "membrane/core/log.hpp"
#include "membrane/core/sha256.hpp"

namespace gw = membrane::gateway;
namespace asio = membrane::asio;
using membrane::awaitable;
using membrane::mcp::Json;
using membrane::mcp::Message;
using membrane::mcp::MessageKind;
using Kind = gw::FilterStep::Kind;

namespace {

Message request(std::string method, Json params) {
  return Message(MessageKind::request, Json{{"jsonrpc", "2.0"},
                                            {"id", 1},
                                            {"method", std::move(method)},
                                            {"params", std::move(params)}});
}

Message tool_call(std::string tool, Json arguments = Json::object()) {
  return request("tools/call", {{"name", std::move(tool)}, {"arguments", std::move(arguments)}});
}

gw::Exchange exchange_for(const Message& message, const membrane::mcp::SessionClaims* session) {
  gw::Exchange exchange;
  exchange.upstream = "fs";
  exchange.message = &message;
  exchange.session = session;
  exchange.client_address = "127.0.0.1:5000";
  exchange.protocol_version = "2025-11-25";
  return exchange;
}

std::shared_ptr<const membrane::policy::Policy> policy_of(const std::string& yaml) {
  return std::make_shared<const membrane::policy::Policy>(
      membrane::policy::Policy::parse(yaml, "test.yaml"));
}

// Answers every question the way it was told to, and counts them.
class ScriptedClient final : public gw::ClientAsker {
 public:
  explicit ScriptedClient(gw::ClientAnswer answer) : answer_(std::move(answer)) {}
  awaitable<gw::ClientAnswer> ask_client(std::string_view method, const Json& params) override {
    asked = std::string(method);
    question = params;
    co_return answer_;
  }
  std::string asked;
  Json question;

 private:
  gw::ClientAnswer answer_;
};

template <class T>
T await(awaitable<T> work) {
  asio::io_context io;
  std::optional<T> result;
  asio::co_spawn(
      io, [&]() -> awaitable<void> { result.emplace(co_await std::move(work)); }, asio::detached);
  io.run();
  REQUIRE(result);
  return std::move(*result);
}

membrane::mcp::SessionClaims elicitation_capable() {
  membrane::mcp::SessionClaims session;
  session.client_capabilities = {{"elicitation", Json::object()}};
  return session;
}

const char* const rules = R"(
- rule: no-secrets
  condition: tool.name == "read_secret"
  verdict: deny
  message: Secrets stay put.
- rule: confirm-deletes
  condition: tool.name == "delete_file"
  verdict: ask
- rule: mask-keys
  condition: tool.name == "read_file"
  verdict: redact
  redact: ['AKIA[0-9A-Z]{16}']
- limit: per-session
  condition: tool.name == "write_file"
  by: [session.id]
  rate: 1/hour
)";

// A delete_file call from a client that can be asked, paused by the confirm-deletes rule. The
// exchange points at the message and session beside it: made in place, never copied.
struct PausedOnAsk {
  explicit PausedOnAsk(Json arguments = Json::object())
      : message(tool_call("delete_file", std::move(arguments))),
        exchange(exchange_for(message, &session)),
        filter(factory.make(exchange)) {
    REQUIRE(filter->on_request(exchange).kind == Kind::pause);
  }
  PausedOnAsk(const PausedOnAsk&) = delete;
  PausedOnAsk& operator=(const PausedOnAsk&) = delete;

  gw::PolicyFilterFactory factory{policy_of(rules), false};
  const membrane::mcp::SessionClaims session = elicitation_capable();
  const Message message;
  gw::Exchange exchange;
  std::unique_ptr<gw::Filter> filter;
};

}  // namespace

TEST_CASE("the policy filter refuses a denied call with a tool result naming the rule") {
  gw::PolicyFilterFactory factory(policy_of(rules), false);
  const auto message = tool_call("read_secret");
  auto exchange = exchange_for(message, nullptr);
  auto filter = factory.make(exchange);
  REQUIRE(filter);
  const auto step = filter->on_request(exchange);
  REQUIRE(step.kind == Kind::answer);
  const auto answer = Json::parse(step.body);
  CHECK(answer["result"]["isError"] == true);
  CHECK(answer["result"]["content"][0]["text"].get<std::string>().find("Secrets stay put") !=
        std::string::npos);
  CHECK(answer["result"]["_meta"]["io.membrane/policy"]["rule"] == "no-secrets");
  CHECK(exchange.policy.verdict == "deny");
  CHECK(exchange.policy.rule == "no-secrets");
  CHECK(exchange.policy.judged);
}

TEST_CASE("in shadow mode the policy filter only records what it would have refused") {
  gw::PolicyFilterFactory factory(policy_of(rules), true);
  const auto message = tool_call("read_secret");
  auto exchange = exchange_for(message, nullptr);
  auto filter = factory.make(exchange);
  CHECK(filter->on_request(exchange).kind == Kind::proceed);
  CHECK(exchange.policy.verdict == "deny");
  CHECK(exchange.policy.note == "shadow");
}

TEST_CASE("an ask verdict pauses the call while the human is asked, and an accept lets it go") {
  PausedOnAsk call(Json{{"path", "/tmp/x"}});
  auto& exchange = call.exchange;
  auto& filter = call.filter;
  ScriptedClient client({gw::ClientAnswer::Kind::answered, {{"result", {{"action", "accept"}}}}});
  const auto step = await(filter->resume(exchange, client));
  CHECK(step.kind == Kind::proceed);
  CHECK(client.asked == "elicitation/create");
  CHECK(client.question["message"].get<std::string>().find("delete_file") != std::string::npos);
  CHECK(exchange.policy.note == "approved");
}

TEST_CASE("a declined approval refuses the call, and says so") {
  PausedOnAsk call;
  auto& exchange = call.exchange;
  auto& filter = call.filter;
  ScriptedClient client({gw::ClientAnswer::Kind::answered, {{"result", {{"action", "decline"}}}}});
  const auto step = await(filter->resume(exchange, client));
  REQUIRE(step.kind == Kind::answer);
  CHECK(step.body.find("The user declined this call") != std::string::npos);
  CHECK(exchange.policy.note == "declined");
}

TEST_CASE("a question the client answers with its next request defers the call") {
  PausedOnAsk call;
  auto& exchange = call.exchange;
  auto& filter = call.filter;
  ScriptedClient client({gw::ClientAnswer::Kind::deferred, {}});
  CHECK(await(filter->resume(exchange, client)).kind == Kind::deferred);
}

TEST_CASE("a client that cannot show an approval request is refused without pausing") {
  gw::PolicyFilterFactory factory(policy_of(rules), false);
  const auto message = tool_call("delete_file");
  auto exchange = exchange_for(message, nullptr);
  const auto step = factory.make(exchange)->on_request(exchange);
  REQUIRE(step.kind == Kind::answer);
  CHECK(step.body.find("cannot show approval requests") != std::string::npos);
}

TEST_CASE("the policy filter names the rate-limit tokens of a call it lets through") {
  gw::PolicyFilterFactory factory(policy_of(rules), false);
  const auto message = tool_call("write_file");
  auto exchange = exchange_for(message, nullptr);
  exchange.session_id = "session-1";
  CHECK(factory.make(exchange)->on_request(exchange).kind == Kind::proceed);
  REQUIRE(exchange.limits.charges.size() == 1);
  CHECK(exchange.limits.charges[0].limit_id == "per-session");
  CHECK(exchange.limits.charges[0].rate == "1/hour");
  REQUIRE(exchange.limits.charges[0].by.size() == 1);
  CHECK(exchange.limits.charges[0].by[0] == "session.id");
}

TEST_CASE("the policy filter masks results and gives telemetry the same redactor") {
  gw::PolicyFilterFactory factory(policy_of(rules), false);
  const auto message = tool_call("read_file", {{"key", "AKIAABCDEFGHIJKLMNOP"}});
  auto exchange = exchange_for(message, nullptr);
  auto filter = factory.make(exchange);
  REQUIRE(filter->on_request(exchange).kind == Kind::proceed);
  std::string reply =
      R"({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"AKIAABCDEFGHIJKLMNOP"}]}})";
  filter->on_upstream_message(exchange, reply);
  CHECK(reply.find("AKIAABCDEFGHIJKLMNOP") == std::string::npos);
  CHECK(exchange.policy.redacted);
  REQUIRE(exchange.policy.redactor);
  Json arguments = {{"key", "AKIAABCDEFGHIJKLMNOP"}};
  exchange.policy.redactor->redact(arguments);
  CHECK(arguments.dump().find("AKIAABCDEFGHIJKLMNOP") == std::string::npos);
}

TEST_CASE("the policy filter hides from tools/list the tools a rule never allows") {
  gw::PolicyFilterFactory factory(policy_of(rules), false);
  const auto message = request("tools/list", Json::object());
  auto exchange = exchange_for(message, nullptr);
  auto filter = factory.make(exchange);
  REQUIRE(filter);
  REQUIRE(filter->on_request(exchange).kind == Kind::proceed);
  std::string reply =
      R"({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_secret"},{"name":"read_file"}]}})";
  filter->on_upstream_message(exchange, reply);
  CHECK(reply.find("read_secret") == std::string::npos);
  CHECK(reply.find("read_file") != std::string::npos);
  CHECK(exchange.policy.hidden_tools == 1);
}

TEST_CASE("the policy factory makes no filter for what it neither judges nor filters") {
  gw::PolicyFilterFactory factory(policy_of(rules), false);
  const auto ping = request("ping", Json::object());
  CHECK_FALSE(factory.make(exchange_for(ping, nullptr)));
}

namespace {

// A store that cannot answer (Redis down).
class DownStore final : public membrane::cluster::RateLimiter {
 public:
  awaitable<membrane::cluster::RateDecision> take(
      std::vector<membrane::cluster::BucketRequest>) override {
    membrane::cluster::RateDecision down;
    down.kind = membrane::cluster::RateDecision::Kind::unavailable;
    down.error = "connection refused";
    co_return down;
  }
  std::string_view store_name() const override { return "down"; }
};

const std::vector<std::string> by_session = {"session.id"};

gw::RateLimitCharge one_per_hour() {
  gw::RateLimitCharge charge;
  charge.bucket = "per-session\x1fsession-1";
  charge.refill_per_second = 1.0 / 3600;
  charge.capacity = 1;
  charge.limit_id = "per-session";
  charge.rate = "1/hour";
  charge.by = by_session;
  return charge;
}

}  // namespace

TEST_CASE("the rate-limit filter spends the named tokens, then refuses when they run out") {
  gw::RateLimitFilterFactory factory(membrane::cluster::make_local_rate_limiter(), false,
                                     gw::RateLimitFilterFactory::StoreDown::allow);
  const auto message = tool_call("write_file");
  ScriptedClient nobody({});

  auto first = exchange_for(message, nullptr);
  first.limits.charges.push_back(one_per_hour());
  auto filter = factory.make(first);
  REQUIRE(filter->on_request(first).kind == Kind::pause);
  CHECK(await(filter->resume(first, nobody)).kind == Kind::proceed);
  CHECK(first.limits.charged);

  auto second = exchange_for(message, nullptr);
  second.limits.charges.push_back(one_per_hour());
  filter = factory.make(second);
  REQUIRE(filter->on_request(second).kind == Kind::pause);
  const auto step = await(filter->resume(second, nobody));
  REQUIRE(step.kind == Kind::answer);
  CHECK(step.body.find("Rate limit 'per-session' (1/hour for each session.id) reached") !=
        std::string::npos);
  CHECK(second.policy.note == "rate_limited");
}

TEST_CASE("a call whose tokens are spent already, or that has none to spend, does not pause") {
  gw::RateLimitFilterFactory factory(membrane::cluster::make_local_rate_limiter(), false,
                                     gw::RateLimitFilterFactory::StoreDown::allow);
  const auto message = tool_call("write_file");
  auto none = exchange_for(message, nullptr);
  CHECK(factory.make(none)->on_request(none).kind == Kind::proceed);
  auto charged = exchange_for(message, nullptr);
  charged.limits.charges.push_back(one_per_hour());
  charged.limits.charged = true;  // a re-sent 2026-07-28 request
  CHECK(factory.make(charged)->on_request(charged).kind == Kind::proceed);
}

TEST_CASE("when the rate-limit store is down, calls go on or are refused as configured") {
  const auto message = tool_call("write_file");
  ScriptedClient nobody({});
  for (const auto when_down : {gw::RateLimitFilterFactory::StoreDown::allow,
                               gw::RateLimitFilterFactory::StoreDown::deny}) {
    gw::RateLimitFilterFactory factory(std::make_shared<DownStore>(), false, when_down);
    auto exchange = exchange_for(message, nullptr);
    exchange.limits.charges.push_back(one_per_hour());
    auto filter = factory.make(exchange);
    REQUIRE(filter->on_request(exchange).kind == Kind::pause);
    const auto step = await(filter->resume(exchange, nobody));
    CHECK(exchange.policy.note == "limits_unavailable");
    if (when_down == gw::RateLimitFilterFactory::StoreDown::allow) {
      CHECK(step.kind == Kind::proceed);
    } else {
      REQUIRE(step.kind == Kind::answer);
      CHECK(step.body.find("could not check them") != std::string::npos);
    }
  }
}

namespace {

std::shared_ptr<const membrane::identity::TransactionTokenService> token_service() {
  membrane::identity::TransactionTokenOptions options;
  options.trust_domain = "membrane.test";
  options.signing_keys = {membrane::identity::Jwk::generate_es256("k1")};
  return std::make_shared<const membrane::identity::TransactionTokenService>(std::move(options));
}

}  // namespace

TEST_CASE("per call, the transaction filter mints a token off the loop and publishes its claims") {
  gw::TransactionFilterOptions options;
  options.service = token_service();
  options.per_call = true;
  options.context_arguments = {"customer"};
  gw::TransactionFilterFactory factory(options);
  const auto message = tool_call("lookup", {{"customer", "c-42"}});
  ScriptedClient nobody({});
  std::string first_txn;
  for (int call = 0; call < 2; ++call) {
    auto exchange = exchange_for(message, nullptr);
    exchange.session_id = "session-1";
    auto filter = factory.make(exchange);
    REQUIRE(filter);
    // The signature is made on the background thread the resume awaits.
    REQUIRE(filter->on_request(exchange).kind == Kind::pause);
    CHECK(await(filter->resume(exchange, nobody)).kind == Kind::proceed);
    CHECK_FALSE(exchange.txn.token.empty());
    REQUIRE(exchange.txn.claims);
    const Json& claims = *exchange.txn.claims;
    CHECK(claims["tctx"]["tool"] == "lookup");
    CHECK(claims["tctx"]["method"] == "tools/call");
    CHECK(claims["tctx"]["customer"] == "c-42");
    CHECK(claims["sub"] == "anonymous");
    CHECK(exchange.txn.id() != first_txn);  // every call its own transaction
    first_txn = std::string(exchange.txn.id());
  }
  // A listing carries no transaction of its own.
  const auto listing = request("tools/list", Json::object());
  CHECK_FALSE(factory.make(exchange_for(listing, nullptr)));
}

TEST_CASE("per transaction, a session's requests share one token, minted once") {
  gw::TransactionFilterOptions options;
  options.service = token_service();
  options.context_arguments = {"customer"};
  gw::TransactionFilterFactory factory(options);
  const auto message = tool_call("lookup");
  const auto listing = request("tools/list", Json::object());
  ScriptedClient nobody({});

  auto first = exchange_for(message, nullptr);
  first.session_id = "session-1";
  auto filter = factory.make(first);
  REQUIRE(filter->on_request(first).kind == Kind::pause);
  CHECK(await(filter->resume(first, nobody)).kind == Kind::proceed);
  CHECK((*first.txn.claims)["tctx"] == Json{{"server", "fs"}});
  CHECK(first.txn.id().starts_with("s-"));

  // The session's next request, a listing too, reuses it without a signature.
  for (const auto* next_message : {&message, &listing}) {
    auto next = exchange_for(*next_message, nullptr);
    next.session_id = "session-1";
    auto next_filter = factory.make(next);
    REQUIRE(next_filter);
    CHECK(next_filter->on_request(next).kind == Kind::proceed);
    CHECK(next.txn.token == first.txn.token);
  }

  // A context argument: a token of the same transaction that adds it.
  const auto with_customer = tool_call("lookup", {{"customer", "c-7"}});
  auto replaced = exchange_for(with_customer, nullptr);
  replaced.session_id = "session-1";
  auto replaced_filter = factory.make(replaced);
  REQUIRE(replaced_filter->on_request(replaced).kind == Kind::pause);
  CHECK(await(replaced_filter->resume(replaced, nobody)).kind == Kind::proceed);
  CHECK(replaced.txn.id() == first.txn.id());
  CHECK((*replaced.txn.claims)["tctx"]["customer"] == "c-7");
  // The same argument again reuses that token; another value needs another.
  auto again = exchange_for(with_customer, nullptr);
  again.session_id = "session-1";
  CHECK(factory.make(again)->on_request(again).kind == Kind::proceed);
  CHECK(again.txn.token == replaced.txn.token);
  const auto other_customer = tool_call("lookup", {{"customer", "c-8"}});
  auto changed = exchange_for(other_customer, nullptr);
  changed.session_id = "session-1";
  CHECK(factory.make(changed)->on_request(changed).kind == Kind::pause);

  // Another session is another transaction.
  auto other = exchange_for(message, nullptr);
  other.session_id = "session-2";
  auto other_filter = factory.make(other);
  REQUIRE(other_filter->on_request(other).kind == Kind::pause);
  CHECK(await(other_filter->resume(other, nobody)).kind == Kind::proceed);
  CHECK(other.txn.id() != first.txn.id());
}

TEST_CASE("a long session id names its transaction as a short one does, one token per session") {
  gw::TransactionFilterOptions options;
  options.service = token_service();
  gw::TransactionFilterFactory factory(options);
  const auto message = tool_call("lookup");
  ScriptedClient nobody({});
  // Long ids (a stdio session's carries the client's initialize parameters) are cached under
  // their digest; the transaction id is the same digest either way.
  std::string long_id(2000, 'a');
  std::string other_long_id = long_id;
  other_long_id.back() = 'b';

  auto first = exchange_for(message, nullptr);
  first.session_id = long_id;
  auto filter = factory.make(first);
  REQUIRE(filter->on_request(first).kind == Kind::pause);
  CHECK(await(filter->resume(first, nobody)).kind == Kind::proceed);
  CHECK(first.txn.id().starts_with("s-"));
  CHECK(first.txn.id().size() < 40);

  auto next = exchange_for(message, nullptr);
  next.session_id = long_id;
  CHECK(factory.make(next)->on_request(next).kind == Kind::proceed);
  CHECK(next.txn.token == first.txn.token);

  auto other = exchange_for(message, nullptr);
  other.session_id = other_long_id;
  auto other_filter = factory.make(other);
  REQUIRE(other_filter->on_request(other).kind == Kind::pause);
  CHECK(await(other_filter->resume(other, nobody)).kind == Kind::proceed);
  CHECK(other.txn.id() != first.txn.id());
  CHECK(other.txn.token != first.txn.token);
}

TEST_CASE("a declared transaction is checked and scoped to its caller") {
  gw::TransactionFilterOptions options;
  options.service = token_service();
  gw::TransactionFilterFactory factory(options);
  ScriptedClient nobody({});
  const auto declared = [](Json name) {
    return request("tools/call", {{"name", "lookup"},
                                  {"arguments", Json::object()},
                                  {"_meta", {{"io.membrane/transaction", std::move(name)}}}});
  };
  for (const Json& bad : {Json(""), Json(std::string(129, 'x')), Json("a b"), Json(7)}) {
    const auto message = declared(bad);
    auto exchange = exchange_for(message, nullptr);
    const auto step = factory.make(exchange)->on_request(exchange);
    REQUIRE(step.kind == Kind::answer);
    CHECK(step.http_status == 400);
    CHECK(step.body.find("1 to 128 visible ASCII") != std::string::npos);
  }
  const auto message = declared("order-7");
  std::string txn;
  for (const char* session : {"session-a", "session-b"}) {
    auto exchange = exchange_for(message, nullptr);
    exchange.session_id = session;
    auto filter = factory.make(exchange);
    auto step = filter->on_request(exchange);
    if (step.kind == Kind::pause) step = await(filter->resume(exchange, nobody));
    CHECK(step.kind == Kind::proceed);
    CHECK(exchange.txn.id().starts_with("c-"));
    if (txn.empty()) txn = std::string(exchange.txn.id());
    CHECK(exchange.txn.id() == txn);  // the same transaction across sessions
  }
}

TEST_CASE("the transaction filter refuses an incoming Txn-Token it cannot verify") {
  gw::TransactionFilterOptions options;
  options.service = token_service();
  gw::TransactionFilterFactory factory(options);
  const auto message = tool_call("lookup");
  ScriptedClient nobody({});
  auto exchange = exchange_for(message, nullptr);
  exchange.incoming_txn_token = "not.a.token";
  auto filter = factory.make(exchange);
  REQUIRE(filter->on_request(exchange).kind == Kind::pause);
  const auto step = await(filter->resume(exchange, nobody));
  REQUIRE(step.kind == Kind::answer);
  CHECK(step.http_status == 401);
  CHECK(step.body.find("invalid Txn-Token") != std::string::npos);
}

namespace {

std::string temp_audit_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("membrane-filters-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

std::vector<Json> records_in(const std::string& path) {
  std::vector<Json> records;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) records.push_back(Json::parse(line));
  return records;
}

}  // namespace

TEST_CASE("the audit filter writes one record before the answer, and none again at the end") {
  const std::string path = temp_audit_path("audit.log");
  std::filesystem::remove(path);
  {
    auto log =
        std::make_shared<membrane::audit::AuditLog>(path, membrane::audit::FsyncPolicy::none);
    gw::AuditFilterFactory factory(log, gw::AuditOnError::refuse);
    const auto message = tool_call("read_file", {{"path", "/etc/hosts"}});
    auto exchange = exchange_for(message, nullptr);
    exchange.policy.judged = true;
    exchange.http_status = 200;
    exchange.session_id = "session-1";
    auto filter = factory.make(exchange);
    REQUIRE(filter);
    CHECK(filter->on_request(exchange).kind == Kind::proceed);
    REQUIRE(filter->gates_answer());
    // The answer is released once the writer thread has written the line.
    CHECK(await(filter->on_answer(exchange)).empty());
    CHECK(records_in(path).size() == 1);
    CHECK_FALSE(filter->gates_answer());
    filter->on_complete(exchange);
    // A notification is not a call: no filter, no record.
    const Message notification(MessageKind::notification,
                               Json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
    CHECK_FALSE(factory.make(exchange_for(notification, nullptr)));
  }
  const auto records = records_in(path);
  REQUIRE(records.size() == 1);
  CHECK(records[0]["method"] == "tools/call");
  CHECK(records[0]["tool"] == "read_file");
  CHECK(records[0]["verdict"] == "allow");
  CHECK(records[0]["status"] == 200);
  CHECK(records[0].contains("args_sha256"));
  // The session's digest, never its id.
  CHECK(records[0]["session"] == membrane::core::sha256_hex("session-1", 8));
  std::filesystem::remove(path);
}

TEST_CASE("an exchange that ends without an answer gets its audit record when it completes") {
  const std::string path = temp_audit_path("gone.log");
  std::filesystem::remove(path);
  {
    auto log =
        std::make_shared<membrane::audit::AuditLog>(path, membrane::audit::FsyncPolicy::none);
    gw::AuditFilterFactory factory(log, gw::AuditOnError::log);
    const auto message = tool_call("slow");
    auto exchange = exchange_for(message, nullptr);
    auto filter = factory.make(exchange);
    exchange.outcome = gw::Outcome::client_gone;
    filter->on_complete(exchange);
  }
  const auto records = records_in(path);
  REQUIRE(records.size() == 1);
  CHECK(records[0]["outcome"] == "client_gone");
  std::filesystem::remove(path);
}

namespace {
// True when the exposition has a `family{…} value` line with every one of `labels`.
bool has_series(const std::string& exposition, const std::string& family,
                const std::vector<std::string>& labels, const std::string& value) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(family + "{") || !line.ends_with("} " + value)) continue;
    if (std::all_of(labels.begin(), labels.end(), [&](const std::string& label) {
          return line.find(label) != std::string::npos;
        }))
      return true;
  }
  return false;
}
}  // namespace

TEST_CASE("the metrics filter counts each exchange by method, upstream, status and outcome") {
  auto metrics = std::make_shared<membrane::telemetry::Metrics>();
  gw::MetricsFilterFactory factory(metrics);
  const auto message = tool_call("x");
  auto exchange = exchange_for(message, nullptr);
  exchange.http_status = 502;
  exchange.outcome = gw::Outcome::upstream_unavailable;
  exchange.policy.verdict = "deny";
  exchange.policy.rule = "r1";
  factory.make(exchange)->on_complete(exchange);
  const std::string text = metrics->exposition();
  INFO(text);
  CHECK(has_series(text, "membrane_requests_total",
                   {R"(method="tools/call")", R"(upstream="fs")", R"(status="502")",
                    R"(outcome="upstream_unavailable")"},
                   "1"));
  CHECK(has_series(text, "membrane_policy_decisions_total", {R"(verdict="deny")", R"(rule="r1")"},
                   "1"));
  CHECK(has_series(text, "membrane_upstream_errors_total",
                   {R"(upstream="fs")", R"(outcome="upstream_unavailable")"}, "1"));
  // A listen stream is counted as a stream, not as a request: no filter for it.
  auto listen = exchange_for(message, nullptr);
  listen.message = nullptr;
  CHECK_FALSE(factory.make(listen));
}

TEST_CASE("the trace filter carries the trace context upstream and queues both spans") {
  membrane::otel::OtlpOptions options;
  options.endpoint = "http://127.0.0.1:1";  // never exported: the queue is what is checked
  auto exporter = std::make_shared<membrane::otel::OtlpExporter>(std::move(options));
  gw::TraceFilterFactory factory(exporter);
  const auto message = tool_call("x");
  auto exchange = exchange_for(message, nullptr);
  exchange.incoming_traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  auto filter = factory.make(exchange);
  REQUIRE(filter);
  CHECK(filter->on_request(exchange).kind == Kind::proceed);
  CHECK(exchange.trace.trace_id == "0af7651916cd43dd8448eb211c80319c");
  CHECK(exchange.trace.parent_span_id == "b7ad6b7169203331");
  REQUIRE(exchange.forwarded_meta.size() == 1);
  CHECK(exchange.forwarded_meta[0] ==
        std::pair<std::string, std::string>("traceparent", exchange.trace.upstream_traceparent));
  exchange.forwarded_at = gw::Clock::now();  // the upstream hop happened: a CLIENT span too
  filter->on_complete(exchange);
  CHECK(exporter->queued() == 2);
}

TEST_CASE("the access-log filter is made only when info lines are logged") {
  gw::AccessLogFilterFactory factory;
  const auto message = tool_call("x");
  const auto saved = membrane::log::level();
  membrane::log::set_level(membrane::log::Level::warn);
  CHECK_FALSE(factory.make(exchange_for(message, nullptr)));
  membrane::log::set_level(membrane::log::Level::info);
  CHECK(factory.make(exchange_for(message, nullptr)));
  membrane::log::set_level(saved);
}
