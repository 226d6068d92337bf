// libFuzzer target: the bytes of an upstream's SSE stream, decoded by http::SseDecoder as the
// HTTP upstream does (event by event, as chunks arrive). Two properties are checked besides
// memory safety:
// - chunking does not matter: the stream in one piece and the stream in small pieces give the
//   same events (the decoder promises arbitrary chunk boundaries);
// - relaying is faithful: an event the gateway re-encodes for its client (append_sse_event)
//   decodes to the same event.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/app/config.hpp"
#include "membrane/http/sse.hpp"

namespace {

using membrane::http::SseDecoder;
using membrane::http::SseEvent;

struct Decoded {
  std::vector<SseEvent> events;
  bool within_limit = true;
};

Decoded decode(std::string_view stream, std::size_t piece, std::size_t max_event_bytes) {
  SseDecoder decoder(max_event_bytes);
  Decoded out;
  while (!stream.empty() && out.within_limit) {
    const std::string_view chunk = stream.substr(0, piece);
    stream.remove_prefix(chunk.size());
    out.within_limit = decoder.feed(chunk, out.events);
  }
  return out;
}

bool same(const SseEvent& a, const SseEvent& b) {
  return a.id == b.id && a.has_id == b.has_id && a.type == b.type && a.data == b.data &&
         a.retry_ms == b.retry_ms;
}

bool same(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view stream(reinterpret_cast<const char*>(data), size);
  // The gateway's own limit on one upstream event, and a small one so the limit is reached.
  static const std::size_t gateway_limit = membrane::app::LimitsConfig{}.max_upstream_message_bytes;
  for (const std::size_t limit : {gateway_limit, std::size_t{64}}) {
    const Decoded whole = decode(stream, stream.size() + 1, limit);
    const Decoded pieces = decode(stream, 1 + size % 5, limit);
    if (whole.within_limit != pieces.within_limit || !same(whole.events, pieces.events))
      __builtin_trap();
    for (const SseEvent& event : whole.events) {
      const std::string relayed = membrane::http::format_sse_event(event);
      const Decoded again = decode(relayed, relayed.size() + 1, relayed.size() + 1);
      if (!again.within_limit || again.events.size() != 1 || !same(again.events.front(), event))
        __builtin_trap();
    }
  }
  return 0;
}
