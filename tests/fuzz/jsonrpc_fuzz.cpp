// libFuzzer target: one JSON-RPC message as the gateway reads it from anywhere (a client's POST
// body, an upstream's JSON answer or SSE event, a stdio child's line): mcp::parse_message, then
// what every stage asks of a message (method, id, params, target, progress token), the id as a
// map key, the error answer naming the id, and the message written out again as it is forwarded.
// parse_message must refuse with -32700, -32600 or -32602 and a message, or give a message of the
// kind its fields say: never a request method without an id, never a judged method without the
// target it is judged by. The trace context spliced into a request's text (mcp::splice_meta)
// means what inserting it into the parsed message would. The one-pass check of relayed text
// (json::check) accepts exactly what the gateway's reader (json::parse) accepts, and the reader
// builds the tree nlohmann's parser builds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../support/json_same_tree.hpp"
#include "membrane/core/json.hpp"
#include "membrane/mcp/jsonrpc.hpp"
#include "membrane/mcp/meta_splice.hpp"

namespace {

using namespace membrane::mcp;

void look_at(const Message& message) {
  (void)message.method();
  (void)id_key(message.id());
  (void)message.params();
  (void)message.target_name();
  (void)message.progress_token();
  (void)message.is_initialize();
  (void)make_error_response(message.id(), error_code::invalid_request, message.method());
  (void)message.body().dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const std::size_t limit : {std::size_t{4}, std::size_t{64}}) {
    const auto checked = membrane::json::check(text, limit);
    const auto read = membrane::json::parse(text, limit).error;
    const bool too_deep = read == membrane::json::ParseError::too_deep;
    const bool parses = read == membrane::json::ParseError::none;
    // Text both malformed and too deep may get either answer: whichever the check met first.
    if ((checked == membrane::json::ParseError::none) != parses) __builtin_trap();
    if (checked == membrane::json::ParseError::too_deep && !too_deep) __builtin_trap();
  }
  // The gateway's reader builds what nlohmann's parser builds (nlohmann's parser takes a NUL byte
  // for the end of the text, so text with one is left out).
  if (text.find('\0') == std::string_view::npos) {
    const auto ours = membrane::json::parse(text, 64);
    const auto theirs = membrane::json::Json::parse(text, nullptr, /*allow_exceptions=*/false);
    // Deeper than 64 levels, nlohmann's parser reads what the gateway refuses.
    const bool same_verdict = theirs.is_discarded()
                                  ? !ours.ok()
                                  : ours.ok() || ours.error == membrane::json::ParseError::too_deep;
    if (!same_verdict) __builtin_trap();
    if (ours.ok() && !membrane::test::same_tree(ours.value, theirs)) __builtin_trap();
  }
  const ParsedMessage parsed = parse_message(text);
  if (!parsed.message) {
    if (parsed.error.code != error_code::parse_error &&
        parsed.error.code != error_code::invalid_request &&
        parsed.error.code != error_code::invalid_params)
      __builtin_trap();
    if (parsed.error.message.empty()) __builtin_trap();
    return 0;
  }
  const Message& message = *parsed.message;
  const bool has_method = message.body().contains("method");
  const bool has_id = message.body().contains("id");
  switch (message.kind()) {
    case MessageKind::request:
      if (!has_method || !has_id || message.method().empty()) __builtin_trap();
      break;
    case MessageKind::notification:
      if (!has_method || has_id || !message.method().starts_with("notifications/"))
        __builtin_trap();
      break;
    case MessageKind::response:
      if (has_method || !has_id) __builtin_trap();
      break;
  }
  const std::string_view method = message.method();
  const char* target = method == "tools/call" || method == "prompts/get" ? "name"
                       : method == "resources/read" || method == "resources/subscribe" ||
                               method == "resources/unsubscribe"
                           ? "uri"
                           : nullptr;
  if (target && (!message.params() || !message.params()->contains(target) ||
                 message.target_name() != (*message.params())[target].get<std::string>()))
    __builtin_trap();
  look_at(message);
  // The same rules for JSON that was parsed elsewhere (an SSE event's data, a stdio line).
  const ParsedMessage again = classify_message(message.body());
  if (!again.message || again.message->kind() != message.kind()) __builtin_trap();
  // The trace context spliced into the forwarded text means what inserting it into the tree
  // would (or the splice declines, and the gateway rewrites the tree).
  if (message.kind() == MessageKind::request) {
    static const MetaMembers added = {{"traceparent", "00-a-b-01"}, {"tracestate", "k=\"v\""}};
    std::string spliced(text);
    if (splice_meta(spliced, added)) {
      const Json result = Json::parse(spliced, nullptr, false);
      Json expected = message.body();
      for (const auto& [name, value] : added)
        expected["params"]["_meta"][name] = value;
      if (result.is_discarded() || result != expected) __builtin_trap();
    } else if (spliced != text) {
      __builtin_trap();
    }
  }
  return 0;
}
