#include "gateway/filters/policy/policy_filter.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include <optional>

#include "gateway/client_requests.hpp"
#include "gateway/filters/refusal.hpp"
#include "gateway/responses.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/core/sha256.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {
namespace {

// Who is calling, from where, on which session: the same for calls and listings.
void describe_caller(const Exchange& exchange, policy::CallContext& call) {
  call.client_address = exchange.client_address;
  call.protocol_version = exchange.protocol_version;
  call.session_id = exchange.session_id;
  if (exchange.request_headers.is_object()) call.request_headers = &exchange.request_headers;
  if (exchange.identity) {
    call.identity_subject = exchange.identity->subject;
    call.identity_claims = &exchange.identity->claims;
  }
  if (exchange.txn.claims && exchange.txn.claims->is_object()) call.txn = exchange.txn.claims.get();
  call.virtual_server = exchange.route.virtual_server;
  call.published_name = exchange.route.published_name;
}

// Where the catalogue keeps an upstream's tools: a virtual server's listing of them apart from
// the upstream's own, since it publishes them renamed and re-described and each listing is pinned
// as its clients' models see it. Upstream names hold no '/'.
std::string catalog_key(std::string_view upstream, std::string_view virtual_server) {
  if (virtual_server.empty()) return std::string(upstream);
  std::string key(virtual_server);
  key.push_back('/');
  key.append(upstream);
  return key;
}

// What the policy knows of the listed tool: its definition (argument roles for the views) and
// whether it still matches its pin.
void describe_tool(const ToolCatalog::Entry* tool, policy::CallContext& call) {
  call.tool_changed = false;
  call.tool_changes = call.tool_digest = call.tool_pinned_digest = {};
  if (!tool) return;
  if (!tool->definition.is_null()) {
    call.tool_definition = &tool->definition;
    if (!call.tool_annotations) {
      if (const auto annotations = tool->definition.find("annotations");
          annotations != tool->definition.end())
        call.tool_annotations = &*annotations;
    }
  }
  call.tool_digest = tool->digest.digest;
  call.tool_pinned_digest = tool->pinned.digest;
  call.tool_changed = tool->changed();
  call.tool_changes = tool->changes;
}

policy::CallContext call_context(const Exchange& exchange, const mcp::Message& message,
                                 const ToolCatalog::Entry* tool = nullptr) {
  policy::CallContext call;
  call.method = message.method();
  call.server = exchange.upstream;
  call.tool = &message == exchange.message ? target_name(exchange) : message.target_name();
  if (const auto* params = message.params()) {
    if (call.method == "resources/read") {
      call.arguments = params;  // args.uri
    } else if (const auto arguments = params->find("arguments"); arguments != params->end()) {
      call.arguments = &*arguments;
    }
  }
  describe_caller(exchange, call);
  describe_tool(tool, call);
  return call;
}

// A call kept for its task's result is at most this large: arguments are the client's, and the
// table holds thousands. A larger one is not kept; its task's result is then masked by every
// redact rule.
constexpr std::size_t max_kept_call = 64 * 1024;

std::string why(const policy::RuleInfo* rule) {
  if (!rule) return {};
  return rule->message.empty() ? rule->description : rule->message;
}

std::string rule_name(const policy::RuleInfo* rule) {
  return rule ? rule->id : std::string("(default)");
}

// "policy rule 'x': message", or the default verdict when no rule decided.
std::string decided_by(const policy::RuleInfo* rule) {
  if (!rule) return "the policy's default verdict (no rule allows this call)";
  const std::string reason = why(rule);
  return "policy rule '" + rule->id + "'" + (reason.empty() ? "" : ": " + reason);
}

std::string dump(const mcp::Json& json) {
  return json.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

// The elicitation the human sees: what would run, where, and which rule asks.
mcp::Json approval_request(const Exchange& exchange, const policy::RuleInfo* rule) {
  const mcp::Message& message = *exchange.message;
  const std::string_view method = message.method();
  std::string text = "Allow this call? " + decided_by(rule) + "\n\nServer: " + exchange.upstream;
  if (!exchange.route.virtual_server.empty())
    text += " (through virtual server " + exchange.route.virtual_server + ")";
  const std::string target(target_name(exchange));
  if (method == "tools/call") {
    text += "\nTool: " + target;
    if (const auto* params = message.params()) {
      if (const auto arguments = params->find("arguments"); arguments != params->end()) {
        constexpr std::size_t shown = 2000;
        std::string rendered = arguments->dump(2, ' ', false, mcp::Json::error_handler_t::replace);
        if (rendered.size() > shown) rendered = rendered.substr(0, shown) + "\n…";
        text += "\nArguments: " + rendered;
      }
    }
  } else if (method == "resources/read") {
    text += "\nRead resource: " + target;
  } else {
    text += "\nGet prompt: " + target;
  }
  // Accept or decline is the whole answer: the form asks for nothing more.
  return {{"message", std::move(text)},
          {"requestedSchema", {{"type", "object"}, {"properties", mcp::Json::object()}}}};
}

// What an approver at the console sees of a call: who asks for what, and why it waits. The
// arguments are masked by the redact rules that hold for the call, as a result would be, and cut
// at a size a person can read.
mcp::Json console_summary(const Exchange& exchange, const policy::RuleInfo* rule,
                          mcp::Json arguments) {
  const mcp::Message& message = *exchange.message;
  mcp::Json summary = {
      {"caller", exchange.identity ? mcp::Json(exchange.identity->subject) : mcp::Json()},
      {"client", exchange.client_address},
      {"upstream", exchange.upstream},
      {"method", message.method()},
      {"tool", std::string(target_name(exchange))},
      {"rule", rule_name(rule)},
      {"rule_message", decided_by(rule)},
      {"txn", exchange.txn.id().empty() ? mcp::Json() : mcp::Json(exchange.txn.id())},
      {"session", exchange.session_id.empty()
                      ? mcp::Json()
                      : mcp::Json(core::sha256_hex(exchange.session_id, 8))}};
  if (!exchange.route.virtual_server.empty())
    summary["virtual_server"] = exchange.route.virtual_server;
  constexpr std::size_t shown = 16 * 1024;
  const std::string text = dump(arguments);
  if (text.size() > shown) {
    summary["arguments"] = {
        {"truncated", true}, {"bytes", text.size()}, {"text", text.substr(0, shown)}};
  } else {
    summary["arguments"] = std::move(arguments);
  }
  return summary;
}

bool client_can_be_asked(const Exchange& exchange) {
  return exchange.session && can_elicit_form(exchange.session->client_capabilities);
}

// A reply the policy must look into (to mask secrets, to hide tools) but cannot read is not
// passed on unexamined: the client gets an error for its request instead.
void withhold_uninspectable(Exchange& exchange, std::string& message, const std::string& reason) {
  log::warn("policy: withheld a reply from upstream '", exchange.upstream, "' to ",
            exchange.message->method(), ": it cannot be inspected (", reason, ")");
  exchange.policy.note = "withheld";
  message = mcp::make_error_response(exchange.message->id(), mcp::error_code::internal_error,
                                     "upstream '" + exchange.upstream +
                                         "' sent a reply the gateway cannot inspect (" + reason +
                                         "); it was withheld");
}

// The upstream's answer to the exchange's own request, parsed; nothing for any other message. A
// reply the policy cannot read is withheld instead (see withhold_uninspectable).
std::optional<mcp::Json> answer_to_request(Exchange& exchange, std::string& message) {
  auto parsed = json::parse(message);
  if (!parsed.ok()) {
    withhold_uninspectable(exchange, message, parsed.reason());
    return std::nullopt;
  }
  if (!parsed.value.is_object() || parsed.value.value("id", mcp::Json()) != exchange.message->id())
    return std::nullopt;
  return std::move(parsed.value);
}

// One exchange under one policy snapshot: a reload never changes an exchange midway.
class PolicyFilter final : public Filter, public Redactor {
 public:
  PolicyFilter(std::shared_ptr<const policy::Policy> policy, bool shadow,
               std::shared_ptr<TaskCalls> task_calls, std::shared_ptr<ToolCatalog> catalog,
               std::shared_ptr<ConsoleApprovals> approvals)
      : policy_(std::move(policy)),
        shadow_(shadow),
        task_calls_(std::move(task_calls)),
        catalog_(std::move(catalog)),
        approvals_(std::move(approvals)) {}

  FilterStep on_request(Exchange& exchange) override;
  awaitable<FilterStep> resume(Exchange& exchange, ClientAsker& client) override;
  void on_upstream_message(Exchange& exchange, std::string& message) override;
  void redact(mcp::Json& value) const override {
    if (exchange_ && exchange_->message && policy_->has_redactions())
      policy_->redact(call_context(*exchange_), value);
  }

  // The exchange's own call, with what the catalog knows of its tool.
  policy::CallContext call_context(const Exchange& exchange) const {
    return gateway::call_context(exchange, *exchange.message, tool_.get());
  }

 private:
  // The call goes on; the tokens of the rate limits that apply to it are named for the
  // rate-limit filter.
  FilterStep proceed_with_limits(Exchange& exchange) const;
  // The human's answer to an `ask` verdict: forward on accept, refuse otherwise.
  FilterStep answered(Exchange& exchange, const Confirmation& confirmation) const;
  // An approver's answer at the security console.
  FilterStep console_answered(Exchange& exchange, const ApprovalDecision& decision) const;
  // The call waits in the console's queue (and, with Approver::either, for its user too).
  awaitable<FilterStep> wait_for_console(Exchange& exchange, ClientAsker& client);
  // The call's arguments as the console may show them (redacted).
  mcp::Json shown_arguments(const Exchange& exchange) const;
  void filter_tool_list(Exchange& exchange, std::string& message) const;
  // A call whose answer is a task: kept, so that the task's result is judged as its result.
  void remember_task(const Exchange& exchange, const mcp::Json& result) const;
  // tasks/result, and tasks/get of the 2026-07-28 extension (it carries the result inline).
  void mask_task_result(Exchange& exchange, std::string& message) const;

  std::shared_ptr<const policy::Policy> policy_;
  bool shadow_;
  std::shared_ptr<TaskCalls> task_calls_;
  std::shared_ptr<ToolCatalog> catalog_;
  std::shared_ptr<const ToolCatalog::Entry> tool_;  // the called tool as last listed, if known
  const Exchange* exchange_ = nullptr;
  std::shared_ptr<ConsoleApprovals> approvals_;
  const policy::RuleInfo* rule_ = nullptr;  // the rule whose `ask` is being carried out
  mcp::Json approval_;                      // the elicitation that asks the human
  // Who is asked to approve the call.
  enum class Approver { user, console, either } approver_ = Approver::user;
};

bool carries_task_result(std::string_view method) {
  return method == "tasks/result" || method == "tasks/get";
}

// The id of the task a result is or wraps (2025-11-25 `task`, 2026-07-28 resultType "task").
std::string task_id_of(const mcp::Json& result) {
  if (!result.is_object()) return {};
  const auto wrapped = result.find("task");
  const mcp::Json& task = wrapped != result.end() && wrapped->is_object() ? *wrapped : result;
  const auto id = task.find("taskId");
  return id != task.end() && id->is_string() ? id->get<std::string>() : std::string();
}

}  // namespace

std::string TaskCalls::key(const Exchange& exchange, std::string_view task_id) {
  std::string key = exchange.upstream;
  key.push_back('\0');
  // Sessionless (2026-07-28) callers are told apart by who they are.
  if (!exchange.session_id.empty()) {
    key.append(exchange.session_id);
  } else if (exchange.identity) {
    key.append(exchange.identity->subject);
  }
  key.push_back('\0');
  key.append(task_id);
  return key;
}

void TaskCalls::remember(std::string key, mcp::Json call, std::size_t size) {
  std::lock_guard lock(mutex_);
  if (const auto found = calls_.find(key); found != calls_.end()) {
    bytes_ -= found->second.size;
    found->second = Kept{std::move(call), size};
  } else {
    calls_.emplace(key, Kept{std::move(call), size});
    order_.push_back(std::move(key));
  }
  bytes_ += size;
  while (!order_.empty() && (order_.size() > capacity || bytes_ > max_bytes)) {
    if (const auto oldest = calls_.find(order_.front()); oldest != calls_.end()) {
      bytes_ -= oldest->second.size;
      calls_.erase(oldest);
    }
    order_.pop_front();
  }
}

std::optional<mcp::Json> TaskCalls::find(const std::string& key) const {
  std::lock_guard lock(mutex_);
  const auto found = calls_.find(key);
  if (found == calls_.end()) return std::nullopt;
  return found->second.call;
}

std::unique_ptr<Filter> PolicyFilterFactory::make(const Exchange& exchange) const {
  if (!exchange.message || !exchange.message->is_request()) return nullptr;
  const std::string_view method = exchange.message->method();
  // Only the exchanges it judges or filters pin a snapshot (tools/list for its reply, a task's
  // result when there is something to mask).
  auto policy = policy_.load();
  if (!mcp::is_call_method(method) && method != "tools/list" &&
      !(carries_task_result(method) && policy->has_redactions()))
    return nullptr;
  return std::make_unique<PolicyFilter>(std::move(policy), shadow_, task_calls_, catalog_,
                                        approvals_);
}

FilterStep PolicyFilter::on_request(Exchange& exchange) {
  exchange_ = &exchange;
  exchange.policy.redactor = this;
  const std::string_view method = exchange.message->method();
  if (!mcp::is_call_method(method)) return FilterStep::proceed();
  exchange.policy.judged = true;
  if (method == "tools/call") {
    // A direct route looks up by the upstream's name as it is, with no key to build.
    tool_ =
        exchange.route.virtual_server.empty()
            ? catalog_->find(exchange.upstream, exchange.message->target_name())
            : catalog_->find(catalog_key(exchange.upstream, exchange.route.virtual_server),
                             exchange.route.published_name.empty() ? exchange.message->target_name()
                                                                   : exchange.route.published_name);
  }
  const auto decision = policy_->decide(call_context(exchange));
  rule_ = decision.rule;
  if (decision.rule || decision.verdict != policy::Verdict::allow) {
    exchange.policy.verdict = to_string(decision.verdict);
    exchange.policy.rule = rule_name(decision.rule);
  }
  if (decision.verdict != policy::Verdict::deny && decision.verdict != policy::Verdict::ask)
    return proceed_with_limits(exchange);
  const std::string rule_id = rule_name(decision.rule);
  if (shadow_) {
    log::info("policy (shadow): would ", to_string(decision.verdict), " ", method, " ",
              target_name(exchange), " on '", exchange.upstream, "' by rule '", rule_id, "'");
    exchange.policy.note = "shadow";
    return proceed_with_limits(exchange);
  }
  const bool user_may_approve = !decision.rule || decision.rule->approver_user;
  const bool console_approves = decision.rule && decision.rule->approver_console;
  const bool user = user_may_approve && client_can_be_asked(exchange);
  const bool console = console_approves && approvals_ != nullptr;
  if (decision.verdict == policy::Verdict::ask && (user || console)) {
    // A 2026-07-28 client is asked by ending its request (input_required): it cannot wait for the
    // console at the same time, so the console alone decides.
    const bool stateless = mcp::is_stateless_protocol_version(exchange.protocol_version);
    approver_ = console && user && !stateless ? Approver::either
                : console                     ? Approver::console
                                              : Approver::user;
    log::info("policy: asking ",
              approver_ == Approver::user      ? "the user"
              : approver_ == Approver::console ? "the security console"
                                               : "the user or the security console",
              " to approve ", method, " ", target_name(exchange), " on '", exchange.upstream,
              "' (rule '", rule_id, "')");
    if (approver_ != Approver::console) approval_ = approval_request(exchange, decision.rule);
    return FilterStep::pause();
  }
  log::info("policy: ", to_string(decision.verdict), " ", method, " ", target_name(exchange),
            " on '", exchange.upstream, "' by rule '", rule_id, "'");
  mcp::Json policy_meta = {{"rule", rule_id}, {"verdict", to_string(decision.verdict)}};
  if (decision.verdict == policy::Verdict::ask && console_approves && !user_may_approve) {
    policy_meta["approval"] = "unavailable";
    exchange.policy.note = "approval_unavailable";
    return refuse_call(exchange,
                       "Approval at the security console is required by " +
                           decided_by(decision.rule) +
                           ", but this gateway has no console (console: in its config), so the "
                           "call was not forwarded.",
                       std::move(policy_meta));
  }
  if (decision.verdict == policy::Verdict::ask &&
      mcp::is_stateless_protocol_version(exchange.protocol_version)) {
    // 2026-07-28 has an error for exactly this: the client learns which capability to declare.
    exchange.policy.note = "approval_unavailable";
    const mcp::Json error = {
        {"jsonrpc", "2.0"},
        {"id", exchange.message->id()},
        {"error",
         {{"code", mcp::error_code::missing_client_capability},
          {"message", "Human approval is required by " + decided_by(decision.rule) +
                          ": declare the elicitation capability (form mode) in "
                          "_meta[\"io.modelcontextprotocol/clientCapabilities\"] to be asked"},
          {"data",
           {{"requiredCapabilities", {{"elicitation", {{"form", mcp::Json::object()}}}}},
            {"io.membrane/policy", policy_meta}}}}}};
    return FilterStep::answer(400, error.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
  }
  if (decision.verdict == policy::Verdict::ask) {
    policy_meta["approval"] = "unavailable";
    return refuse_call(exchange,
                       "Human approval is required by " + decided_by(decision.rule) +
                           ". This client cannot show approval requests (it did not declare the "
                           "elicitation capability), so the call was not forwarded.",
                       std::move(policy_meta));
  }
  return refuse_call(exchange, "Denied by " + decided_by(decision.rule), std::move(policy_meta));
}

awaitable<FilterStep> PolicyFilter::resume(Exchange& exchange, ClientAsker& client) {
  if (approver_ != Approver::user) co_return co_await wait_for_console(exchange, client);
  const auto answer = co_await client.ask_client("elicitation/create", approval_);
  // A 2026-07-28 client is asked with the answer to this request and re-sends it.
  if (answer.kind == ClientAnswer::Kind::deferred) co_return FilterStep::deferred();
  if (answer.kind == ClientAnswer::Kind::answered) exchange.policy.approval_by = "user";
  co_return answered(exchange, confirmation_from(answer));
}

mcp::Json PolicyFilter::shown_arguments(const Exchange& exchange) const {
  const mcp::Json* params = exchange.message->params();
  if (!params || !params->is_object()) return mcp::Json::object();
  mcp::Json shown = mcp::Json::object();
  for (const char* key : {"arguments", "uri", "name"}) {
    if (const auto member = params->find(key); member != params->end()) shown[key] = *member;
  }
  // Masked as the result of this call would be: the console must not show what the policy hides.
  if (policy_->has_redactions()) policy_->redact(call_context(exchange), shown);
  return shown;
}

awaitable<FilterStep> PolicyFilter::wait_for_console(Exchange& exchange, ClientAsker& client) {
  using namespace asio::experimental::awaitable_operators;
  using Clock = ConsoleApprovals::Clock;
  auto executor = co_await asio::this_coro::executor;
  auto summary = console_summary(exchange, rule_, shown_arguments(exchange));
  const auto waiting = approvals_->open(std::move(summary), executor);
  const auto deadline = Clock::now() + approvals_->timeout();
  if (approver_ == Approver::either) {
    const std::string method = "elicitation/create";
    auto result = co_await (client.ask_client(method, approval_) || waiting->wait(deadline));
    if (result.index() == 1) {
      auto decision = std::get<1>(std::move(result));
      if (decision) co_return console_answered(exchange, *decision);
      co_return answered(exchange, Confirmation{Confirmation::Outcome::timed_out, {}});
    }
    const ClientAnswer answer = std::get<0>(std::move(result));
    if (answer.kind == ClientAnswer::Kind::answered) {
      exchange.policy.approval_by = "user";
      co_return answered(exchange, confirmation_from(answer));
    }
    if (answer.kind == ClientAnswer::Kind::client_gone ||
        answer.kind == ClientAnswer::Kind::cancelled)
      co_return answered(exchange, confirmation_from(answer));
    // The user did not answer in time (or could not be asked after all): the console still may.
  }
  // Comments on the call's stream keep the client (and proxies) waiting, and notice one that left.
  constexpr std::chrono::seconds tick{10};
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline)
      co_return answered(exchange, Confirmation{Confirmation::Outcome::timed_out, {}});
    auto decision = co_await waiting->wait(std::min<Clock::time_point>(deadline, now + tick));
    if (decision) co_return console_answered(exchange, *decision);
    const auto cancelled = (co_await asio::this_coro::cancellation_state).cancelled();
    if (cancelled != asio::cancellation_type::none) {
      co_await asio::this_coro::reset_cancellation_state();
      co_return answered(
          exchange, Confirmation{Confirmation::Outcome::failed, "the gateway is shutting down"});
    }
    if (Clock::now() < deadline && !co_await client.keep_client_waiting())
      co_return answered(exchange, Confirmation{Confirmation::Outcome::client_gone, {}});
  }
}

FilterStep PolicyFilter::console_answered(Exchange& exchange,
                                          const ApprovalDecision& decision) const {
  exchange.policy.approval_by = "console";
  exchange.policy.approver = decision.approver;
  exchange.policy.approval_reason = decision.reason;
  log::info("policy: ", decision.approver, " at the security console ",
            decision.approved ? "approved " : "refused ", exchange.message->method(), " ",
            target_name(exchange), " on '", exchange.upstream, "'",
            decision.reason.empty() ? "" : ": ", decision.reason);
  return answered(exchange, Confirmation{decision.approved ? Confirmation::Outcome::accepted
                                                           : Confirmation::Outcome::declined,
                                         {}});
}

FilterStep PolicyFilter::answered(Exchange& exchange, const Confirmation& confirmation) const {
  using Outcome = Confirmation::Outcome;
  const std::string rule_id = rule_name(rule_);
  const std::string_view outcome = confirmation.outcome == Outcome::accepted      ? "approved"
                                   : confirmation.outcome == Outcome::declined    ? "declined"
                                   : confirmation.outcome == Outcome::cancelled   ? "cancelled"
                                   : confirmation.outcome == Outcome::timed_out   ? "timed_out"
                                   : confirmation.outcome == Outcome::client_gone ? "client_gone"
                                                                                  : "failed";
  exchange.policy.note = outcome;
  log::info("policy: the user's answer to ", exchange.message->method(), " ", target_name(exchange),
            " on '", exchange.upstream, "' (rule '", rule_id, "'): ", outcome,
            confirmation.detail.empty() ? "" : " — ", confirmation.detail);
  if (confirmation.outcome == Outcome::accepted) return proceed_with_limits(exchange);
  std::string text;
  switch (confirmation.outcome) {
    case Outcome::declined:
      text = exchange.policy.approval_by == "console"
                 ? "An approver at the security console refused this call" +
                       (exchange.policy.approval_reason.empty()
                            ? std::string()
                            : " (reason: " + exchange.policy.approval_reason + ")")
                 : std::string("The user declined this call");
      break;
    case Outcome::cancelled:
      text = "The user dismissed the approval request without approving this call";
      break;
    case Outcome::timed_out:
      text = "Nobody answered the approval request in time";
      break;
    default:
      text = "The approval request failed (" + confirmation.detail + ")";
      break;
  }
  text += "; it was not forwarded. Approval is required by " + decided_by(rule_) + ".";
  return refuse_call(exchange, text,
                     {{"rule", rule_id}, {"verdict", "ask"}, {"approval", std::string(outcome)}});
}

FilterStep PolicyFilter::proceed_with_limits(Exchange& exchange) const {
  if (exchange.limits.charged) return FilterStep::proceed();
  const auto charges = policy_->limits(call_context(exchange));
  exchange.limits.charges.clear();
  exchange.limits.charges.reserve(charges.size());
  for (const auto& charge : charges) {
    const policy::LimitInfo& limit = *charge.limit;
    RateLimitCharge token;
    // A bucket is named by the values it counts, and a caller picks those (args.*): past a
    // modest length the name is the limit's id and a digest, so no caller can make the store
    // hold its arguments.
    constexpr std::size_t longest_bucket_name = 128;
    token.bucket = charge.bucket.size() <= longest_bucket_name
                       ? charge.bucket
                       : limit.id + "\x1f#" + core::sha256_hex(charge.bucket, 16);
    token.refill_per_second = limit.refill_per_second();
    token.capacity = limit.burst;
    token.limit_id = limit.id;
    token.rate = limit.rate_text;
    token.by = limit.by;
    token.reason = limit.message.empty() ? limit.description : limit.message;
    exchange.limits.charges.push_back(std::move(token));
  }
  return FilterStep::proceed();
}

void PolicyFilter::on_upstream_message(Exchange& exchange, std::string& message) {
  const std::string_view method = exchange.message->method();
  if (mcp::is_call_method(method)) {
    if (shadow_ || !policy_->has_redactions()) return;
    // Most results hold nothing any redact pattern finds: those are not parsed at all. A result
    // that may start a task is, to remember its call (a task's result whose call is unknown gets
    // every redact rule).
    const bool may_start_task = method == "tools/call" && message.find("task") != std::string::npos;
    if (!may_start_task && !policy_->may_redact(message)) return;
    auto body = answer_to_request(exchange, message);
    if (!body) return;
    const auto result = body->find("result");
    if (result == body->end()) return;
    if (method == "tools/call") remember_task(exchange, *result);
    if (policy_->redact(call_context(exchange), *result)) {
      message = dump(*body);
      exchange.policy.redacted = true;
    }
    return;
  }
  if (carries_task_result(method)) {
    if (!shadow_) mask_task_result(exchange, message);
    return;
  }
  if (method == "tools/list") filter_tool_list(exchange, message);
}

void PolicyFilter::remember_task(const Exchange& exchange, const mcp::Json& result) const {
  const std::string task = task_id_of(result);
  if (task.empty()) return;
  const mcp::Json& call = exchange.message->body();
  const std::size_t size = call.dump(-1, ' ', false, mcp::Json::error_handler_t::replace).size();
  if (size > max_kept_call) return;
  task_calls_->remember(TaskCalls::key(exchange, task), call, size);
}

void PolicyFilter::mask_task_result(Exchange& exchange, std::string& message) const {
  if (!policy_->has_redactions()) return;
  auto body = answer_to_request(exchange, message);
  if (!body) return;
  const auto result = body->find("result");
  if (result == body->end()) return;
  const auto* params = exchange.message->params();
  const auto task =
      params && params->is_object() ? params->value("taskId", mcp::Json()) : mcp::Json();
  std::optional<mcp::Json> call;
  if (task.is_string()) call = task_calls_->find(TaskCalls::key(exchange, task.get<std::string>()));
  bool masked = false;
  if (call) {
    const mcp::Message original(mcp::MessageKind::request, std::move(*call));
    masked = policy_->redact(gateway::call_context(exchange, original), *result);
  } else {
    // The call is not known here (another replica created the task, or it was pushed out):
    // every redact rule masks it, rather than none.
    masked = policy_->redact_all(*result);
  }
  if (masked) {
    message = dump(*body);
    exchange.policy.redacted = true;
  }
}

// Hides the tools the caller may never call (a deny rule that does not depend on arguments) and
// the tools a `tools/list` rule denies: poisoned descriptions must not reach the model at all.
void PolicyFilter::filter_tool_list(Exchange& exchange, std::string& message) const {
  if (message.find("\"tools\"") == std::string::npos) return;
  auto body = answer_to_request(exchange, message);
  if (!body) return;
  const auto result = body->find("result");
  if (result == body->end() || !result->is_object()) return;
  const auto tools = result->find("tools");
  if (tools == result->end() || !tools->is_array()) return;
  const policy::Policy& policy = *policy_;
  policy::CallContext call;
  call.server = exchange.upstream;
  describe_caller(exchange, call);
  // A virtual server's merged listing: each tool is judged as its own upstream's, by its own name.
  const upstream::MemberRouting* merged = exchange.route.routing;
  std::string catalogued_as = exchange.upstream;
  mcp::Json kept = mcp::Json::array();
  std::size_t hidden = 0;
  for (auto& tool : *tools) {
    const auto name = tool.find("name");
    if (name == tool.end() || !name->is_string()) {
      if (!merged) kept.push_back(std::move(tool));
      continue;
    }
    call.tool = name->get_ref<const std::string&>();
    std::optional<upstream::MemberTarget> owner;
    if (merged) {
      owner = merged->tool_owner(call.tool);
      if (!owner) {
        // Not one the virtual server would route: it could not be called, so it is not shown.
        ++hidden;
        continue;
      }
      call.published_name = call.tool;
      call.server = owner->upstream;
      call.tool = owner->name;
      catalogued_as = catalog_key(owner->upstream, exchange.route.virtual_server);
    }
    const auto annotations = tool.find("annotations");
    call.tool_annotations = annotations == tool.end() ? nullptr : &*annotations;
    call.method = "tools/call";
    call.tool_description = {};
    call.tool_text = {};
    // Pinning: the definition as listed now against its pin. A change is an alert, once.
    const auto learnt = catalog_->learn(catalogued_as, tool);
    describe_tool(learnt.entry.get(), call);
    call.tool_definition = &tool;  // as listed now, whether or not the catalogue kept it
    if (learnt.newly_changed) {
      log::warn("policy: ALERT tool '", call.tool, "' of upstream '", call.server,
                "' changed since it was pinned (", learnt.entry->changes, "): pinned ",
                learnt.entry->pinned.digest, ", listed now ", learnt.entry->digest.digest);
      exchange.policy.note = "tool_changed";
    }
    const policy::RuleInfo* hiding_rule = policy.never_allowed(call);
    std::string text;
    if (hiding_rule) {
      log::debug("policy", shadow_ ? " (shadow)" : "", ": tools/list on '", call.server, "' ",
                 shadow_ ? "would hide" : "hides", " '", call.tool, "' (rule '", hiding_rule->id,
                 "')");
    } else {
      const auto description = tool.find("description");
      call.method = "tools/list";
      call.tool_description = description != tool.end() && description->is_string()
                                  ? std::string_view(description->get_ref<const std::string&>())
                                  : std::string_view();
      text = policy::listed_tool_text(tool);
      call.tool_text = text;
      hiding_rule = policy.listing_denied(call);
      if (hiding_rule) {
        log::warn("policy", shadow_ ? " (shadow)" : "", ": tools/list on '", call.server, "' ",
                  shadow_ ? "would hide" : "hides", " tool '", call.tool, "' (rule '",
                  rule_name(hiding_rule), "')");
      }
    }
    if (!hiding_rule || shadow_) {
      kept.push_back(std::move(tool));
      continue;
    }
    ++hidden;
  }
  if (hidden == 0) return;
  exchange.policy.hidden_tools = hidden;
  *tools = std::move(kept);
  message = dump(*body);
}

}  // namespace membrane::gateway
