#include "membrane/mcp/jsonrpc.hpp"

#include "membrane/core/json.hpp"

namespace membrane::mcp {
namespace {
const Json null_json = nullptr;

bool is_valid_id(const Json& id) {
  // JSON-RPC 2.0 allows string, number or null; MCP requires string or integer and forbids null.
  return id.is_string() || id.is_number_integer() || id.is_number_unsigned();
}

// The params field that names what a request acts on, for the methods that have one.
const char* target_key(std::string_view method) {
  if (method == "tools/call" || method == "prompts/get") return "name";
  if (method == "resources/read" || method == "resources/subscribe" ||
      method == "resources/unsubscribe")
    return "uri";
  return nullptr;
}
}  // namespace

std::string_view Message::method() const {
  const auto it = body_.find("method");
  if (it == body_.end() || !it->is_string()) return {};
  return it->get_ref<const std::string&>();
}

const Json& Message::id() const {
  const auto it = body_.find("id");
  return it == body_.end() ? null_json : *it;
}

const Json* Message::params() const {
  const auto it = body_.find("params");
  return it == body_.end() || !it->is_object() ? nullptr : &*it;
}

std::string_view Message::target_name() const {
  const char* key = target_key(method());
  const Json* p = params();
  if (!key || !p) return {};
  const auto it = p->find(key);
  if (it == p->end() || !it->is_string()) return {};
  return it->get_ref<const std::string&>();
}

const Json* Message::progress_token() const {
  const Json* p = params();
  if (!p) return nullptr;
  const auto meta = p->find("_meta");
  if (meta == p->end() || !meta->is_object()) return nullptr;
  const auto token = meta->find("progressToken");
  return token == meta->end() ? nullptr : &*token;
}

ParsedMessage classify_message(Json body) {
  ParsedMessage out;
  if (body.is_array()) {
    out.is_batch = true;
    out.error = {error_code::invalid_request,
                 "JSON-RPC batches are not supported (removed from MCP in 2025-06-18); send one "
                 "message per request"};
    return out;
  }
  if (!body.is_object()) {
    out.error = {error_code::invalid_request, "Invalid Request: expected a JSON-RPC 2.0 object"};
    return out;
  }
  const auto version = body.find("jsonrpc");
  if (version == body.end() || !version->is_string() || *version != "2.0") {
    out.error = {error_code::invalid_request, "Invalid Request: \"jsonrpc\" must be \"2.0\""};
    return out;
  }
  const auto method = body.find("method");
  const auto id = body.find("id");
  const bool has_id = id != body.end();
  if (method != body.end()) {
    if (!method->is_string() || method->get_ref<const std::string&>().empty()) {
      out.error = {error_code::invalid_request,
                   "Invalid Request: \"method\" must be a non-empty string"};
      return out;
    }
    const auto params = body.find("params");
    if (params != body.end() && !params->is_object() && !params->is_array()) {
      out.error = {error_code::invalid_request, "Invalid Request: \"params\" must be an object"};
      return out;
    }
    if (has_id && !is_valid_id(*id)) {
      out.error = {error_code::invalid_request,
                   "Invalid Request: \"id\" must be a string or an integer"};
      return out;
    }
    const auto& name = method->get_ref<const std::string&>();
    out.method = name;
    if (has_id) out.id = *id;
    // A notification named like a request would reach the server as that request with no id
    // to answer, and without the judgement and audit every request gets.
    if (!has_id && !name.starts_with("notifications/")) {
      out.error = {error_code::invalid_request,
                   "Invalid Request: '" + name +
                       "' is a request and needs an \"id\" (only notifications/* methods may "
                       "be sent without one)"};
      return out;
    }
    // The gateway judges these by their target: without one there is nothing to judge.
    if (const char* key = target_key(name)) {
      const bool named = params != body.end() && params->is_object() && params->contains(key) &&
                         (*params)[key].is_string();
      if (!named) {
        out.error = {error_code::invalid_params,
                     "Invalid params: " + name + " needs params." + key + " (a string)"};
        return out;
      }
    }
    const auto kind = has_id ? MessageKind::request : MessageKind::notification;
    out.message.emplace(kind, std::move(body));
    return out;
  }
  const bool has_result = body.contains("result");
  const auto error = body.find("error");
  const bool has_error = error != body.end();
  if (has_result == has_error || !has_id) {
    out.error = {error_code::invalid_request,
                 "Invalid Request: not a JSON-RPC 2.0 request, notification or response"};
    return out;
  }
  if (has_error && (!error->is_object() || !error->contains("code"))) {
    out.error = {error_code::invalid_request,
                 "Invalid Request: \"error\" must be an object with a \"code\""};
    return out;
  }
  out.message.emplace(MessageKind::response, std::move(body));
  return out;
}

ParsedMessage parse_message(std::string_view text) {
  auto parsed = json::parse(text);
  if (parsed.error == json::ParseError::too_deep) {
    ParsedMessage out;
    out.error = {error_code::invalid_request, "Invalid Request: " + parsed.reason()};
    return out;
  }
  if (!parsed.ok()) {
    ParsedMessage out;
    out.error = {error_code::parse_error, "Parse error: the body is not valid JSON"};
    return out;
  }
  return classify_message(std::move(parsed.value));
}

std::string make_error_response(const Json& id, int code, std::string_view message) {
  Json response = {{"jsonrpc", "2.0"},
                   {"id", id},
                   {"error", {{"code", code}, {"message", std::string(message)}}}};
  return response.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string id_key(const Json& id) {
  if (id.is_string()) return "s:" + id.get<std::string>();
  return "n:" + id.dump();
}

}  // namespace membrane::mcp
