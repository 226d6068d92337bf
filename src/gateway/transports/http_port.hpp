// The downstream port of the Streamable HTTP transports: the final answer is the HTTP response,
// or the last event of the SSE response once a stream has begun.
#pragma once

#include <chrono>

#include "gateway/client_requests.hpp"
#include "gateway/exchange/downstream_port.hpp"

namespace membrane::gateway {

class HttpPort : public DownstreamPort {
 public:
  explicit HttpPort(http::Responder& out) : out_(out) {}
  bool streaming() const override { return streaming_; }
  awaitable<bool> respond(http::Response response) override;
  awaitable<bool> deliver(std::string message, bool last) override;
  // Begins the SSE response once (later calls do nothing); false when the client is gone.
  awaitable<bool> begin_stream(http::ResponseHeader header);
  awaitable<bool> begin_stream();
  http::Responder& responder() { return out_; }
  // The answer goes as the last event of an SSE response begun for the comments.
  awaitable<bool> keep_client_waiting() override;

 protected:
  http::Responder& out_;
  bool streaming_ = false;
};

// A session client (MCP 2025-11-25 and earlier): a question goes to it as a request on the
// response stream (begun for it), kept alive while the human thinks; its answer comes back as a
// POSTed response (ClientRequests).
class SessionClientPort : public HttpPort {
 public:
  struct Asking {
    ClientRequests* requests = nullptr;
    std::chrono::milliseconds keep_alive{15'000};
    std::chrono::milliseconds timeout{120'000};
  };
  SessionClientPort(http::Responder& out, const mcp::SessionClaims* session, Asking asking)
      : HttpPort(out), session_(session), asking_(asking) {}
  awaitable<ClientAnswer> ask_client(std::string_view method, const mcp::Json& params) override;

 private:
  const mcp::SessionClaims* session_;
  Asking asking_;
};

}  // namespace membrane::gateway
