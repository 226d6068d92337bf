// Requests the gateway itself sends to a connected client — today the approval elicitation of a
// policy `ask` verdict — and the answers the client POSTs back like any other response. An answer
// may arrive on any worker thread, or never; the waiting exchange receives it through a
// concurrent channel. Ids are random and bound to the session they were asked on, so one client
// cannot answer another's question.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "gateway/exchange/filter.hpp"
#include "http/asio.hpp"
#include "membrane/mcp/jsonrpc.hpp"
#include "membrane/mcp/sealed_session.hpp"

namespace membrane::gateway {

class ClientRequests;

// How the human answered a confirmation the gateway asked for (an elicitation).
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

class PendingClientRequest {
 public:
  struct State;
  PendingClientRequest(ClientRequests& owner, std::unique_ptr<State> state);
  ~PendingClientRequest();
  PendingClientRequest(const PendingClientRequest&) = delete;
  PendingClientRequest& operator=(const PendingClientRequest&) = delete;

  const std::string& id() const;
  // The JSON-RPC request to write to the client.
  std::string request_message(std::string_view method, const mcp::Json& params) const;

  // Called every tick while waiting: false when the client is gone (a keep-alive write failed,
  // the stream closed).
  using StillThere = std::function<awaitable<bool>()>;
  awaitable<ClientAnswer> wait(Clock::time_point deadline, std::chrono::milliseconds tick,
                               StillThere still_there);

 private:
  ClientRequests& owner_;
  std::unique_ptr<State> state_;
};

class ClientRequests {
 public:
  // Every id the gateway issues starts with this; responses carrying it never go upstream.
  static constexpr std::string_view id_prefix = "membrane-";

  ClientRequests() = default;
  ClientRequests(const ClientRequests&) = delete;
  ClientRequests& operator=(const ClientRequests&) = delete;

  // Which session a question belongs to, the same for both downstream transports.
  static std::string session_key(const mcp::SessionClaims& session);

  std::unique_ptr<PendingClientRequest> open(std::string session_key,
                                             const asio::any_io_executor& executor);
  // True when `response` answers a request the gateway issued: it is consumed here (delivered to
  // the waiter when one is still waiting on that session, else handed to the relay) and must not
  // be forwarded upstream.
  bool consume(std::string_view session_key, const mcp::Message& response);

  // Where answers go that no waiter here is waiting for: with several replicas the question may
  // have been asked by another one. Unset: they are dropped. Set before serving.
  using Relay = std::function<void(const std::string& id, const std::string& session_key,
                                   const mcp::Json& response)>;
  void set_relay(Relay relay) { relay_ = std::move(relay); }
  // An answer another replica relayed: delivered when the question is pending here on that
  // session (true), ignored otherwise.
  bool deliver(std::string_view id, std::string_view session_key, mcp::Json response);

 private:
  friend class PendingClientRequest;
  void forget(const std::string& id);

  std::mutex mutex_;
  std::unordered_map<std::string, PendingClientRequest::State*> pending_;
  Relay relay_;
};

// What an elicitation/create answer means for a confirmation.
Confirmation confirmation_from(const ClientAnswer& answer);

// True when the client declared it can show form elicitations (MCP 2025-06-18 and later:
// `elicitation: {}` means form; 2025-11-25 may list `form` and `url` explicitly).
bool can_elicit_form(const mcp::Json& client_capabilities);

}  // namespace membrane::gateway
