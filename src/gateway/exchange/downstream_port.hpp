// The downstream side of one exchange, as its transport speaks it: how the final answer reaches
// the client, and how the client is asked something while the exchange waits.
#pragma once

#include <string>

#include "gateway/exchange/filter.hpp"
#include "http/server.hpp"

namespace membrane::gateway {

class DownstreamPort : public ClientAsker {
 public:
  // True when the final answer goes as a message on a stream: a response stream has begun, or
  // the transport answers on the session's stream (legacy HTTP+SSE).
  virtual bool streaming() const = 0;
  // The final answer as a whole HTTP response; false when the client is gone.
  virtual awaitable<bool> respond(http::Response response) = 0;
  // A message on the stream; `last` ends the response stream after it. False when the client is
  // gone.
  virtual awaitable<bool> deliver(std::string message, bool last) = 0;
  // How the gateway's own answer (a filter's refusal) looks in this transport's revision.
  virtual void shape_own_answer(std::string& /*message*/) {}
  awaitable<ClientAnswer> ask_client(std::string_view, const mcp::Json&) override {
    co_return ClientAnswer{ClientAnswer::Kind::unavailable, {}};
  }
};

}  // namespace membrane::gateway
