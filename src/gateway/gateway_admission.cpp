// The Streamable HTTP transport's hooks into the overload limits (admission.hpp).
#include "gateway/gateway.hpp"
#include "gateway/revision.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {

std::chrono::seconds TransportServices::session_idle_window(
    const upstream::Upstream& upstream) const {
  const auto idle = options.admission.session_idle;
  if (!upstream.traits().process_per_session) return idle;
  // The session's child lives that long after its last use: it counts as long as it holds one.
  const auto child = std::chrono::ceil<std::chrono::seconds>(options.stdio_session_idle);
  return std::max(idle, child);
}

std::optional<Refusal> Gateway::admit_message(
    RequestAdmission& admitted, const http::Request& request, const mcp::Message& message,
    const http::RequestOrigin& origin, const Caller& caller, const upstream::Upstream& upstream) {
  // Notifications and answers open nothing and may be what a waiting stream needs to finish:
  // they are never refused here.
  if (!message.is_request()) return std::nullopt;
  if (auto refusal = admission_.admit_stream(admitted.stream)) return refusal;
  if (!message.is_initialize() || is_stateless_request(request, message)) return std::nullopt;
  admitted.opening_session = true;
  return admission_.open_session(caller_key(caller.get(), origin), session_idle_window(upstream),
                                 admitted.session);
}

std::optional<Refusal> Gateway::admit_session(
    RequestAdmission& admitted, const http::Request& request, const mcp::Message* message,
    const http::RequestOrigin& origin, const Caller& caller, const upstream::Upstream& upstream) {
  const std::string_view session_id = request[mcp::header::session_id];
  if (message && !message->is_request()) {
    // Keeps a counted session live, but never refuses (nor starts counting) a notification or
    // an answer.
    admission_.sessions().touch(session_id, admitted.session);
    return std::nullopt;
  }
  return admission_.use_session(caller_key(caller.get(), origin), session_id,
                                session_idle_window(upstream), admitted.session);
}

}  // namespace membrane::gateway
