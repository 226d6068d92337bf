#include "membrane/http/sse.hpp"

#include <charconv>

#include "membrane/core/ascii.hpp"

namespace membrane::http {

bool SseDecoder::feed(std::string_view bytes, std::vector<SseEvent>& out) {
  // A UTF-8 byte order mark may open the stream, and may itself arrive split across pieces.
  constexpr std::string_view bom = "\xEF\xBB\xBF";
  while (at_stream_start_ && !bytes.empty()) {
    if (bytes.front() != bom[bom_matched_]) {
      at_stream_start_ = false;
      line_.append(bom.substr(0, bom_matched_));  // not a BOM after all: those bytes are text
      break;
    }
    bytes.remove_prefix(1);
    if (++bom_matched_ == bom.size()) at_stream_start_ = false;
  }
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (skip_leading_lf_) {
      skip_leading_lf_ = false;
      if (c == '\n') continue;
    }
    if (c == '\r' || c == '\n') {
      skip_leading_lf_ = (c == '\r');
      process_line(line_, out);
      line_.clear();
      continue;
    }
    // Scan ahead for the run of ordinary characters and append it in one go.
    const std::size_t run = ascii::find_line_break(bytes.substr(i));
    const std::size_t end = run == std::string_view::npos ? bytes.size() : i + run;
    line_.append(bytes.data() + i, end - i);
    i = end - 1;
    if (line_.size() + pending_.data.size() > max_event_bytes_) return false;
  }
  return true;
}

void SseDecoder::process_line(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {
    // Dispatch. An event with an id but no data still matters to us: it is a priming event that
    // lets the client resume (MCP 2025-11-25 transports §resumability).
    if (pending_has_data_ || pending_.has_id || pending_.retry_ms) {
      out.push_back(std::move(pending_));
    }
    pending_ = SseEvent{};
    pending_has_data_ = false;
    pending_has_fields_ = false;
    return;
  }
  if (line.front() == ':') return;  // comment
  std::string_view field = line;
  std::string_view value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  pending_has_fields_ = true;
  if (field == "data") {
    if (pending_has_data_) pending_.data.push_back('\n');
    pending_.data.append(value);
    pending_has_data_ = true;
  } else if (field == "event") {
    pending_.type = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      pending_.id = std::string(value);
      pending_.has_id = true;
    }
  } else if (field == "retry") {
    unsigned long ms = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (error == std::errc{} && end == value.data() + value.size()) pending_.retry_ms = ms;
  }
}

void append_sse_event(std::string& out, const SseEvent& event) {
  if (event.has_id) {
    out += "id: ";
    out += event.id;
    out += '\n';
  }
  if (!event.type.empty()) {
    out += "event: ";
    out += event.type;
    out += '\n';
  }
  if (event.retry_ms) {
    out += "retry: ";
    out += std::to_string(*event.retry_ms);
    out += '\n';
  }
  std::string_view data = event.data;
  // Every line of the payload becomes its own data: line; a lone "\r" would end a line too.
  while (true) {
    const auto end = ascii::find_line_break(data);
    out += "data: ";
    out.append(data.substr(0, end));
    out += '\n';
    if (end == std::string_view::npos) break;
    const std::size_t skip =
        (data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1;
    data.remove_prefix(end + skip);
  }
  out += '\n';
}

std::string format_sse_event(const SseEvent& event) {
  std::string out;
  out.reserve(event.data.size() + event.id.size() + 32);
  append_sse_event(out, event);
  return out;
}

}  // namespace membrane::http
