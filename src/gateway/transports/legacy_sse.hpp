// The legacy HTTP+SSE transport (MCP 2024-11-05) at /sse/<name>: GET opens the event stream and
// learns its message URL from the `endpoint` event; the client POSTs every message there (202)
// and every answer comes back as a `message` event on the one stream. Upstream, the session is
// an ordinary Streamable HTTP or stdio session, so old clients reach new servers unchanged.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "http/server.hpp"
#include "membrane/identity/authenticator.hpp"
#include "upstream/upstream.hpp"

namespace membrane::gateway {

struct TransportServices;
class LegacySession;

class LegacySseTransport {
 public:
  explicit LegacySseTransport(const TransportServices& services) : services_(services) {}
  ~LegacySseTransport();
  std::size_t session_count() const;

  // `caller` is the authenticated identity (null when auth is off).
  awaitable<void> handle(http::Request& request, const http::RequestOrigin& origin,
                         http::Responder& out, upstream::Upstream& upstream,
                         bool is_message_endpoint,
                         const std::shared_ptr<const identity::Identity>& caller);

 private:
  awaitable<void> open_stream(http::Request& request, const http::RequestOrigin& origin,
                              http::Responder& out, upstream::Upstream& upstream,
                              const std::shared_ptr<const identity::Identity>& caller);
  awaitable<void> post_message(http::Request& request, const http::RequestOrigin& origin,
                               http::Responder& out, upstream::Upstream& upstream,
                               const std::shared_ptr<const identity::Identity>& caller);
  std::shared_ptr<LegacySession> find(const std::string& id);

  const TransportServices& services_;
  mutable std::mutex mutex_;
  // Legacy sessions live as long as their GET stream, on the replica that holds it.
  std::unordered_map<std::string, std::shared_ptr<LegacySession>> sessions_;
};

}  // namespace membrane::gateway
