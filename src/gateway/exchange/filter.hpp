// A filter acts on one exchange, as in Envoy's HTTP filter chains: a factory holds the compiled,
// read-only configuration and makes a filter object per exchange, which keeps that exchange's
// private state. On the way in the filters run in order; each may let the request go on, answer
// it instead of the upstream, or pause to await something (a human's approval, rate-limit tokens,
// any external check) and be resumed. Replies pass back through them in reverse order.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "gateway/exchange/exchange.hpp"
#include "http/asio.hpp"

namespace membrane::gateway {

// How the client answered a question the gateway put to it (an elicitation, a sampling or roots
// request).
struct ClientAnswer {
  enum class Kind {
    answered,     // `response` is the client's JSON-RPC response
    timed_out,    // no answer in time
    client_gone,  // the client left while being asked
    cancelled,    // the gateway is shutting down
    deferred,     // the question goes out with the answer (2026-07-28 input_required) and the
                  // client re-sends its request with the reply
    unavailable,  // this transport cannot ask the client anything here
  };
  Kind kind = Kind::cancelled;
  mcp::Json response;
};

// What a paused filter may use of the downstream side while it waits.
class ClientAsker {
 public:
  virtual ~ClientAsker() = default;
  // Sends a request to the client on the exchange's session and waits for its answer.
  virtual awaitable<ClientAnswer> ask_client(std::string_view method, const mcp::Json& params) = 0;
  // While the answer waits for someone else (an approver at the console): tells the client it is
  // still coming (a comment on the call's SSE stream), and notices one that left (false).
  virtual awaitable<bool> keep_client_waiting() { co_return true; }
};

// What a filter decides about a request.
struct FilterStep {
  enum class Kind {
    proceed,   // on to the next filter, then the upstream
    answer,    // answer with `body` (a JSON-RPC message) instead of forwarding
    pause,     // the runner awaits the filter's resume(), which decides
    deferred,  // the client was asked a question that comes back with a re-sent request: the
               // transport ends this exchange with it (input_required)
  };
  Kind kind = Kind::proceed;
  unsigned http_status = 200;
  std::string body;

  static FilterStep proceed() { return {}; }
  static FilterStep pause() { return {Kind::pause, 200, {}}; }
  static FilterStep deferred() { return {Kind::deferred, 200, {}}; }
  static FilterStep answer(unsigned status, std::string body) {
    return {Kind::answer, status, std::move(body)};
  }
};

class Filter {
 public:
  virtual ~Filter() = default;
  // Before the message is forwarded.
  virtual FilterStep on_request(Exchange&) { return FilterStep::proceed(); }
  // The asynchronous part of a filter that paused; may pause again.
  virtual awaitable<FilterStep> resume(Exchange&, ClientAsker&) { co_return FilterStep::proceed(); }
  // Each message the upstream sends back for this exchange, before it reaches the client, in
  // reverse filter order. The filter may rewrite it.
  virtual void on_upstream_message(Exchange&, std::string&) {}
  // True for a filter that must act before the client can act on the answer (the audit record):
  // only those are awaited in on_answer, so an answer costs the others nothing.
  virtual bool gates_answer() const { return false; }
  // Just before the final answer to a request goes to the client (http_status and outcome are
  // set), for a filter that gates_answer(). Returns why the answer must be withheld, or "" to let
  // it go. The answer waits meanwhile; the event loop does not.
  virtual awaitable<std::string> on_answer(Exchange&) { co_return std::string(); }
  // Once, when the exchange is over (answered, forwarded, failed or abandoned).
  virtual void on_complete(const Exchange&) {}
};

class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  virtual std::string_view name() const = 0;
  // The filter for one exchange (its core fields are set), or null when it has nothing to do
  // for this one: most exchanges then cost no allocation for it.
  virtual std::unique_ptr<Filter> make(const Exchange& exchange) const = 0;
  // True when its filters read Exchange::request_headers (collecting them costs a copy).
  virtual bool wants_request_headers() const { return false; }
};

}  // namespace membrane::gateway
