// The exchange is the unit that flows through the gateway: one downstream JSON-RPC message (a
// request with its answer, or a notification/response) on its way to one upstream. The
// ExchangeRunner (runner.hpp) carries it through the filters (filter.hpp) and the transport's
// forwarding step; the transports only know its core fields, the filters share typed facts.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/identity/authenticator.hpp"
#include "membrane/mcp/jsonrpc.hpp"
#include "membrane/mcp/meta_splice.hpp"
#include "membrane/mcp/sealed_session.hpp"
#include "upstream/member_routing.hpp"

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

// ---- Facts: what one filter establishes and others read ------------------------------------

// The W3C trace this exchange belongs to (the trace filter).
struct TraceFact {
  std::string trace_id;
  std::string parent_span_id;
  std::string server_span_id;
  std::string client_span_id;
  std::string trace_state;
  std::string upstream_traceparent;  // sent upstream in traceparent and params._meta
  bool sampled = true;
};

// The transaction token that goes upstream with its claims, txn.* in policy (the transaction
// filter).
struct TransactionFact {
  std::string token;
  // Shared with the transaction's other exchanges (a token is reused for a whole transaction).
  std::shared_ptr<const mcp::Json> claims;
  // The `txn` claim, or "" without a token.
  std::string_view id() const {
    if (!claims || !claims->is_object()) return {};
    const auto txn = claims->find("txn");
    return txn != claims->end() && txn->is_string()
               ? std::string_view(txn->get_ref<const std::string&>())
               : std::string_view();
  }
};

// Masks what the policy masks in results, in a copy bound for telemetry.
class Redactor {
 public:
  virtual ~Redactor() = default;
  virtual void redact(mcp::Json& value) const = 0;
};

// What the policy decided (the policy and rate-limit filters); read by the access log, metrics,
// spans and audit.
struct PolicyFact {
  bool judged = false;  // the policy judged this call (whatever it decided)
  std::string verdict;  // allow | deny | ask | redact, when a rule (or a non-allow default) decided
  std::string rule;     // the deciding rule's id; "(default)" for the default verdict
  std::string note;     // what followed the verdict: shadow, approved, declined, …
  std::string approval_by;       // who answered an `ask`: user | console
  std::string approver;          // console: the approver's token subject
  std::string approval_reason;   // console: the reason the approver gave
  bool redacted = false;         // a redact rule masked something in the reply
  std::size_t hidden_tools = 0;  // tools/list entries hidden
  // Set while the policy filter lives (until the exchange completes).
  const Redactor* redactor = nullptr;
  // "note[:redacted]" (empty when neither).
  std::string notes() const;
  // "verdict:rule[:note][:redacted]", "redacted" or "hid:N": the access log's policy=.
  std::string summary() const;
};

// One token to take from a rate-limit bucket before the call goes on, as the policy names it.
// The views point into the policy snapshot, which the policy filter holds until the exchange
// completes: a call that passes its limits costs no text.
struct RateLimitCharge {
  std::string bucket;
  double refill_per_second = 0;
  double capacity = 0;
  std::string_view limit_id;        // the limit rule
  std::string_view rate;            // as written, "30/minute"
  std::span<const std::string> by;  // the fields it counts by, "identity.sub"
  std::string_view reason;          // the rule's message or description
};

// The rate-limit tokens a call must spend (the policy filter names them, the rate-limit filter
// takes them, all or nothing).
struct LimitsFact {
  std::vector<RateLimitCharge> charges;
  // This call already spent its tokens: a 2026-07-28 request re-sent with the answers to an
  // input request is the same call, not a new one.
  bool charged = false;
};

// The MCP task an exchange concerns (the task filter): the one a tasks/* request names, or the
// one a task-augmented call created; and the status its answer reported.
struct TaskFact {
  std::string id;
  std::string status;
};

// A message the client sent to a virtual server (several upstreams published as one). The exchange
// names the real upstream (`Exchange::upstream`) and the item's own name there, so that a rule
// written against an upstream's names holds through any virtual server; the virtual server's name
// and the published name are here besides.
struct RouteFact {
  std::string virtual_server;  // "" when the client addressed the upstream itself
  std::string published_name;  // the tool / prompt name (or URI) the client used
  std::string own_name;        // its name at the upstream ("" when not routed to one member)
  // Which member owns each tool of a merged listing.
  const upstream::MemberRouting* routing = nullptr;
};

struct Exchange {
  // The upstream the message goes to: a virtual server's member when it routes the message to
  // one, else the upstream the client addressed (a virtual server itself for its merged answers).
  std::string upstream;
  DownstreamTransport transport = DownstreamTransport::streamable_http;
  const mcp::Message* message = nullptr;
  const mcp::SessionClaims* session = nullptr;  // null for initialize
  // The authenticated caller; null when auth is off.
  std::shared_ptr<const identity::Identity> identity;
  std::string client_address;
  std::string protocol_version;           // the client's MCP revision
  std::string upstream_protocol_version;  // the revision the gateway speaks to the upstream
  // The downstream session id as the client sends it (empty for initialize).
  std::string_view session_id;
  // {lower-case name: value}; filled only when a filter reads request headers.
  mcp::Json request_headers;
  // What the client sent in headers: a Txn-Token, the W3C trace context.
  std::string_view incoming_txn_token;
  std::string_view incoming_traceparent;
  std::string_view incoming_tracestate;
  // Members the filters add to params._meta of the forwarded message (the trace context): spliced
  // into the client's bytes, which are otherwise forwarded as they came.
  mcp::MetaMembers forwarded_meta;
  Clock::time_point started = Clock::now();
  // When the request was handed to the upstream (unset when it never was), and how long the
  // upstream took to start its reply.
  Clock::time_point forwarded_at{};
  Clock::duration upstream_wait{};

  // Filled in as the exchange completes.
  unsigned http_status = 0;
  Outcome outcome = Outcome::ok;
  std::size_t upstream_messages = 0;
  bool client_gone = false;

  TraceFact trace;
  TransactionFact txn;
  PolicyFact policy;
  LimitsFact limits;
  TaskFact task;
  RouteFact route;
};

// What the message acts on at its upstream: the tool / prompt name (or resource URI) there, which
// differs from the message's own when a virtual server published it under another name.
inline std::string_view target_name(const Exchange& exchange) {
  if (!exchange.route.own_name.empty()) return exchange.route.own_name;
  return exchange.message ? exchange.message->target_name() : std::string_view();
}

}  // namespace membrane::gateway
