// The exchange is the unit that flows through the gateway: one downstream JSON-RPC message (a
// request with its response stream, or a notification/response) on its way to one upstream.
// Stages (trace, transaction token, policy, metrics, audit, access log) observe or act on it
// without the transports knowing what they do — Envoy's filter chain, over MCP messages.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "membrane/identity/authenticator.hpp"
#include "membrane/mcp/jsonrpc.hpp"
#include "membrane/mcp/sealed_session.hpp"
#include "membrane/policy/policy.hpp"

namespace membrane::gateway {

using Clock = std::chrono::steady_clock;

enum class DownstreamTransport { streamable_http, legacy_sse };
// How an exchange ended: the one classification that the access log, the metrics, the spans and
// the audit record read (by to_string's name).
enum class Outcome {
  ok,                      // the upstream's answer reached the client
  error_response,          // the upstream answered with a JSON-RPC error
  answered_by_gateway,     // the gateway answered itself: a refusal, a bridged or local answer
  cached,                  // answered from what the gateway keeps (a discovery, a listing)
  input_required,          // a stateless call paused until the client answers the server's question
  left_to_resumption,      // the client's stream ended first; the answer waits for it to resume
  cancelled,               // the client cancelled the call
  client_gone,             // the client left before the answer
  answer_withheld,         // the audit record could not be written, so the answer was not sent
  overloaded,              // refused by an overload limit
  rejected,                // the upstream refused the request
  session_not_found,       // the upstream no longer knows the session
  upstream_unavailable,    // the upstream could not be reached
  upstream_stream_broken,  // the upstream's reply stream broke off
};
std::string_view to_string(Outcome outcome);
// Neither an answer nor a planned pause: spans mark the exchange as an error.
bool is_failure(Outcome outcome);
// The upstream failed it (unreachable, refused, broke off, forgot the session): counted per
// upstream.
bool is_upstream_failure(Outcome outcome);

struct Exchange {
  std::string upstream;
  DownstreamTransport transport = DownstreamTransport::streamable_http;
  const mcp::Message* message = nullptr;        // null for a listen stream (GET / legacy SSE)
  const mcp::SessionClaims* session = nullptr;  // null for initialize
  // The authenticated caller; null when auth is off.
  std::shared_ptr<const identity::Identity> identity;
  std::string client_address;
  std::string protocol_version;           // the client's MCP revision
  std::string upstream_protocol_version;  // the revision the gateway spoke to the upstream
  // The downstream session id as the client sends it (empty for initialize).
  std::string_view session_id;
  // {lower-case name: value}; filled only when a stage wants_request_headers().
  mcp::Json request_headers;
  // The Txn-Token the client sent (empty when none), and the one that goes upstream with its
  // claims (txn.* in policy).
  std::string_view incoming_txn_token;
  std::string txn_token;
  mcp::Json txn_claims;
  // W3C trace context the client sent (headers), and the trace this exchange belongs to.
  std::string_view incoming_traceparent;
  std::string_view incoming_tracestate;
  struct Trace {
    std::string trace_id;
    std::string parent_span_id;
    std::string server_span_id;
    std::string client_span_id;
    std::string trace_state;
    std::string upstream_traceparent;  // sent upstream in traceparent and params._meta
    bool sampled = true;
  } trace;
  // When set, forwarded instead of the client's bytes (a stage rewrote the message).
  std::string rewritten_body;
  // The result, captured for spans when the operator opted in (after redaction).
  std::string captured_result;
  Clock::time_point started = Clock::now();
  // When the request was handed to the upstream (unset when it never was), and how long the
  // upstream took to start its reply.
  Clock::time_point forwarded_at{};
  Clock::duration upstream_wait{};

  // Filled in as the exchange completes.
  unsigned http_status = 0;
  Outcome outcome = Outcome::ok;
  std::size_t upstream_messages = 0;
  // What the policy did, when it took part (empty otherwise).
  struct PolicyRecord {
    std::string
        verdict;       // allow | deny | ask | redact, when a rule (or a non-allow default) decided
    std::string rule;  // the deciding rule's id; "(default)" for the default verdict
    std::string note;  // what followed the verdict: shadow, approved, declined, …
    bool redacted = false;         // a redact rule masked something in the reply
    std::size_t hidden_tools = 0;  // tools/list entries hidden
    // "note[:redacted]" (empty when neither).
    std::string notes() const;
    // "verdict:rule[:note][:redacted]", "redacted" or "hid:N": the access log's policy=.
    std::string summary() const;
  } policy;
  // The policy snapshot the exchange started under: a reload never changes an exchange midway.
  std::shared_ptr<const policy::Policy> policy_snapshot;
  // The rule whose verdict is being carried out (owned by policy_snapshot).
  const policy::RuleInfo* policy_rule = nullptr;
  // Which stage asked for the confirmation being waited on, and for the rate-limit tokens.
  std::size_t confirming_stage = 0;
  std::size_t limiting_stage = 0;
  // This call already spent its rate-limit tokens: a 2026-07-28 request re-sent with the
  // answers to an input request is the same call, not a new one.
  bool limits_charged = false;
  bool client_gone = false;
  // The audit record of this exchange is written (or deliberately not): on_complete leaves it.
  bool audit_recorded = false;
};

// One token a stage wants taken from a rate-limit bucket before the exchange goes on.
struct RateLimitCharge {
  std::string bucket;
  double refill_per_second = 0;
  double capacity = 0;
};

// What a stage decides about a request: let it through, answer it here, first have the human
// confirm it (an MCP elicitation on the caller's session, sent by the transport), or first spend
// rate-limit tokens (from the gateway's store, which may be shared by every replica).
struct StageDecision {
  enum class Kind { proceed, answer, confirm, charge_limits };
  Kind kind = Kind::proceed;
  unsigned http_status = 200;
  std::string body;                      // answer: a JSON-RPC message
  mcp::Json confirm_params;              // confirm: the params of the elicitation/create request
  std::vector<RateLimitCharge> charges;  // charge_limits: all or nothing

  bool answered() const { return kind == Kind::answer; }
  static StageDecision proceed() { return {}; }
  static StageDecision answer(unsigned status, std::string body) {
    StageDecision decision;
    decision.kind = Kind::answer;
    decision.http_status = status;
    decision.body = std::move(body);
    return decision;
  }
  static StageDecision confirm(mcp::Json elicitation_params) {
    StageDecision decision;
    decision.kind = Kind::confirm;
    decision.confirm_params = std::move(elicitation_params);
    return decision;
  }
  static StageDecision charge_limits(std::vector<RateLimitCharge> charges) {
    StageDecision decision;
    decision.kind = Kind::charge_limits;
    decision.charges = std::move(charges);
    return decision;
  }
};

// What the rate-limit store said about a charge_limits decision.
struct LimitOutcome {
  enum class Kind { allowed, limited, unavailable };
  Kind kind = Kind::allowed;
  std::size_t exhausted = 0;                 // limited: the first charge without a token
  std::chrono::milliseconds retry_after{0};  // limited: when that bucket has one again
  std::string error;                         // unavailable: why the store could not answer
};

// How the human answered a confirmation the gateway asked for.
struct Confirmation {
  enum class Outcome {
    accepted,     // elicitation action "accept"
    declined,     // action "decline"
    cancelled,    // action "cancel" (dismissed)
    timed_out,    // no answer in time
    failed,       // the client answered with an error, or the gateway is shutting down
    client_gone,  // the client disconnected while being asked
  };
  Outcome outcome = Outcome::failed;
  std::string detail;  // failed: why
};

class ExchangeStage {
 public:
  virtual ~ExchangeStage() = default;
  virtual std::string_view name() const = 0;
  // Before the message is forwarded.
  virtual StageDecision on_request(Exchange&) { return StageDecision::proceed(); }
  // The human's answer to this stage's confirm decision: proceed, answer or charge_limits (not
  // confirm again).
  virtual StageDecision on_confirmation(Exchange&, const Confirmation&) {
    return StageDecision::proceed();
  }
  // The store's answer to this stage's charge_limits decision: proceed or answer.
  virtual StageDecision on_limits(Exchange&, const LimitOutcome&) {
    return StageDecision::proceed();
  }
  // Each message the upstream sends back for this exchange, before it reaches the client, in
  // reverse stage order (the first stage sees it last). The stage may rewrite it. Only called when
  // wants_messages() is true, so the hot path does not parse replies nobody looks at.
  virtual void on_upstream_message(Exchange&, std::string&) {}
  virtual bool wants_messages() const { return false; }
  // True when the stage reads Exchange::request_headers (collecting them costs a copy).
  virtual bool wants_request_headers() const { return false; }
  // Just before the final answer to a request goes to the client (http_status and outcome are
  // set): what must be done before the client can act on the answer (the audit record). Returns
  // why the answer must be withheld, or "" to let it go.
  virtual std::string on_answer(Exchange&) { return {}; }
  // Once, when the exchange is over (answered, forwarded, failed or abandoned).
  virtual void on_complete(const Exchange&) {}
};

class ExchangePipeline {
 public:
  void add(std::unique_ptr<ExchangeStage> stage);
  // Runs the stages in order until one answers or asks for a confirmation.
  StageDecision on_request(Exchange& exchange) const;
  // Hands the confirmation to the stage that asked, then runs the stages after it.
  StageDecision on_confirmation(Exchange& exchange, const Confirmation& confirmation) const;
  // Hands the rate-limit outcome to the stage that asked, then runs the stages after it.
  StageDecision on_limits(Exchange& exchange, const LimitOutcome& outcome) const;
  void on_upstream_message(Exchange& exchange, std::string& message) const;
  // Before the final answer: "" to send it, else why it is withheld (the first stage's reason).
  std::string on_answer(Exchange& exchange) const;
  void on_complete(const Exchange& exchange) const;
  bool wants_messages() const { return wants_messages_; }
  bool wants_request_headers() const;

 private:
  std::vector<std::unique_ptr<ExchangeStage>> stages_;
  bool wants_messages_ = false;
};

// One line per exchange at info level: who called what on which upstream, and how it ended.
class AccessLogStage final : public ExchangeStage {
 public:
  std::string_view name() const override { return "access_log"; }
  void on_complete(const Exchange& exchange) override;
};

}  // namespace membrane::gateway
