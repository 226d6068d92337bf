#include "gateway/exchange/exchange.hpp"

namespace membrane::gateway {

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::ok:
      return "ok";
    case Outcome::error_response:
      return "error_response";
    case Outcome::answered_by_gateway:
      return "answered_by_gateway";
    case Outcome::cached:
      return "cached";
    case Outcome::input_required:
      return "input_required";
    case Outcome::left_to_resumption:
      return "left_to_resumption";
    case Outcome::cancelled:
      return "cancelled";
    case Outcome::client_gone:
      return "client_gone";
    case Outcome::answer_withheld:
      return "answer_withheld";
    case Outcome::overloaded:
      return "overloaded";
    case Outcome::rejected:
      return "rejected";
    case Outcome::session_not_found:
      return "session_not_found";
    case Outcome::upstream_unavailable:
      return "upstream_unavailable";
    case Outcome::upstream_stream_broken:
      return "upstream_stream_broken";
  }
  return "unknown";
}

bool is_failure(Outcome outcome) {
  switch (outcome) {
    case Outcome::ok:
    case Outcome::answered_by_gateway:
    case Outcome::cached:
    case Outcome::input_required:
      return false;
    default:
      return true;
  }
}

bool is_upstream_failure(Outcome outcome) {
  return outcome == Outcome::upstream_unavailable || outcome == Outcome::upstream_stream_broken ||
         outcome == Outcome::rejected || outcome == Outcome::session_not_found;
}

std::string PolicyFact::notes() const {
  if (!redacted) return note;
  return note.empty() ? std::string("redacted") : note + ":redacted";
}

std::string PolicyFact::summary() const {
  if (!verdict.empty()) {
    const std::string after = notes();
    return verdict + ":" + rule + (after.empty() ? "" : ":" + after);
  }
  if (redacted) return "redacted";
  return hidden_tools ? "hid:" + std::to_string(hidden_tools) : std::string();
}

}  // namespace membrane::gateway
