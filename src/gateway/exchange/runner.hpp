// The exchange lifecycle, written once for every transport: the request filters in order (each
// awaited when it pauses), the forwarding step the transport supplies, the replies back through
// the filters in reverse, the final answer (which a filter may withhold), and completion exactly
// once on every path: answered, failed, thrown, abandoned by the client or cancelled (the runner's
// destructor completes an exchange nobody completed).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/exchange/downstream_port.hpp"
#include "gateway/exchange/filter_chain.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway {

// What the transport knows about a downstream message when its exchange begins.
struct ExchangeRequest {
  std::string upstream;
  // The upstream's routing when it is a virtual server (Upstream::member_routing()).
  const upstream::MemberRouting* routing = nullptr;
  DownstreamTransport transport = DownstreamTransport::streamable_http;
  const mcp::Message* message = nullptr;
  const mcp::SessionClaims* session = nullptr;
  std::shared_ptr<const identity::Identity> identity;
  std::string protocol_version;           // the client's revision
  std::string upstream_protocol_version;  // empty: the client's
  // The HTTP request that carried the message, for its headers (Txn-Token, trace context, what
  // rules read) and the sender's address; null when the sender is given below instead.
  const http::Request* http = nullptr;
  const http::RequestOrigin* origin = nullptr;
  // A sender copied out of its HTTP request (a legacy message handled after its POST).
  struct Sender {
    std::string client_address;
    std::string session_id;
    std::string txn_token;
    std::string traceparent;
    std::string tracestate;
    mcp::Json headers;
    std::string caller_key;
  };
  std::shared_ptr<const Sender> sender;
  // The call spent its rate-limit tokens on an earlier round (a re-sent 2026-07-28 request).
  bool limits_charged = false;
};

// Copies what a request says about its sender, for an exchange that outlives the request.
std::shared_ptr<const ExchangeRequest::Sender> copy_sender(
    const http::Request& request, const http::RequestOrigin& origin, const FilterChain& chain,
    const std::shared_ptr<const identity::Identity>& identity, std::string session_id);

class ExchangeRunner {
 public:
  ExchangeRunner(const FilterChain& chain, DownstreamPort& port, ExchangeRequest request);
  ~ExchangeRunner();
  ExchangeRunner(const ExchangeRunner&) = delete;
  ExchangeRunner& operator=(const ExchangeRunner&) = delete;

  Exchange& exchange() { return *exchange_; }
  const Exchange& exchange() const { return *exchange_; }

  enum class Verdict {
    forward,   // every filter let it through: the transport forwards it
    answered,  // a filter answered (sent here), or the client left while being asked
    deferred,  // a filter's question goes to the client with the answer (input_required)
  };
  // The request filters in order, each awaited while it pauses.
  awaitable<Verdict> run_request_filters();

  // The context of the upstream hop: the revision spoken there, the transaction token, the trace
  // context, and who asks (for upstreams that count processes per caller).
  upstream::ForwardContext forward_context(const upstream::Upstream& upstream) const;
  // The bytes to forward: the client's, with what the filters add to params._meta.
  std::string forwarded_body(std::string client_bytes);
  // The same message as a tree, for transports that rewrite it further.
  mcp::Json forwarded_message() const;
  // Timing of the upstream hop (spans and metrics).
  void forwarding() { exchange_->forwarded_at = Clock::now(); }
  void upstream_answered() { exchange_->upstream_wait = Clock::now() - exchange_->forwarded_at; }

  // Each message the upstream sends back, through the filters in reverse order.
  void on_upstream_message(std::string& message);
  // Runs the filters that act before the final answer goes out: `message`, or the error that
  // replaces it when one withholds it.
  awaitable<std::string> answer_or_withheld(std::string message);
  // The final answer as the whole HTTP response (a 503 instead when it is withheld).
  awaitable<bool> answer(http::Response response);
  // The final answer as a message on the stream (`last` ends the stream after it).
  awaitable<bool> answer_message(std::string message, bool last = true);
  // The final answer in whichever form the port is in: a JSON response with `status`, or the
  // last message of its stream.
  awaitable<bool> answer_json(unsigned status, std::string message);
  // The client left before its answer.
  void abandoned_by_client();

  // Ends the exchange (every filter's on_complete, once). Also done by the destructor.
  void complete();

 private:
  // Runs the on_answer of every filter that gates answers (all of them, once): the first reason
  // to withhold, or "".
  awaitable<std::string> withheld_reason();
  bool answer_gated() const;
  // A virtual server's message names the member it goes to and the name it has there.
  void route_through(const upstream::MemberRouting& routing);
  // Awaits a paused filter until it decides.
  awaitable<FilterStep> resume_paused(Filter& filter);

  // Hands the filters' questions to the port, and notes a client that left while asked.
  class Asker final : public ClientAsker {
   public:
    explicit Asker(ExchangeRunner& runner) : runner_(runner) {}
    awaitable<ClientAnswer> ask_client(std::string_view method, const mcp::Json& params) override;
    awaitable<bool> keep_client_waiting() override;

   private:
    ExchangeRunner& runner_;
  };

  DownstreamPort& port_;
  Asker asker_{*this};
  std::shared_ptr<const ExchangeRequest::Sender> sender_;
  const http::RequestOrigin* origin_ = nullptr;
  // On the heap: an Exchange is about 1 KiB, and a runner lives in the frame of the coroutine that
  // runs it, which Asio recycles per thread only when it is under 1 KiB.
  std::unique_ptr<Exchange> exchange_ = std::make_unique<Exchange>();
  ExchangeFilters filters_;
  bool completed_ = false;
};

}  // namespace membrane::gateway
