// Server-Sent Events (WHATWG HTML §9.2) codec: an incremental decoder for upstream streams that
// arrive in arbitrary chunks, and an encoder for the events Membrane writes downstream.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace membrane::http {

struct SseEvent {
  std::string id;  // empty when the event has no id field
  bool has_id = false;
  std::string type;  // "event:" field; empty means "message"
  std::string data;  // data lines joined with '\n'
  std::optional<unsigned long> retry_ms;
};

class SseDecoder {
 public:
  explicit SseDecoder(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

  // Feeds bytes as they arrive; complete events are appended to `out`. Returns false when an
  // event grew beyond max_event_bytes (the stream should be abandoned).
  bool feed(std::string_view bytes, std::vector<SseEvent>& out);

 private:
  void process_line(std::string_view line, std::vector<SseEvent>& out);

  std::size_t max_event_bytes_;
  std::string line_;
  SseEvent pending_;
  bool pending_has_data_ = false;
  bool pending_has_fields_ = false;
  bool skip_leading_lf_ = false;  // a '\r' ended the last line; a following '\n' is part of it
  bool at_stream_start_ = true;   // a UTF-8 BOM is allowed at the very start
  std::size_t bom_matched_ = 0;
};

// Appends one event in wire form: optional `id:`, `event:`, `retry:`, one `data:` line per line
// of `data`, then the blank line that dispatches it.
void append_sse_event(std::string& out, const SseEvent& event);
std::string format_sse_event(const SseEvent& event);
// A comment line, which clients ignore: used as keep-alive.
inline constexpr std::string_view sse_keep_alive_comment = ": keep-alive\n\n";

}  // namespace membrane::http
