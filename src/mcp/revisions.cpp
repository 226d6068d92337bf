#include "membrane/mcp/revisions.hpp"

#include "membrane/mcp/protocol.hpp"

namespace membrane::mcp {

Json stateless_envelope(std::string_view protocol_version, const Json& client_capabilities,
                        const Json& client_info) {
  Json envelope = {{std::string(meta::protocol_version), std::string(protocol_version)},
                   {std::string(meta::client_capabilities),
                    client_capabilities.is_object() ? client_capabilities : Json::object()}};
  if (client_info.is_object()) envelope[std::string(meta::client_info)] = client_info;
  return envelope;
}

void add_envelope(Json& request, const Json& envelope) {
  auto& params = request["params"];
  if (!params.is_object()) params = Json::object();
  auto& meta_object = params["_meta"];
  if (!meta_object.is_object()) meta_object = Json::object();
  for (const auto& [key, value] : envelope.items()) {
    if (!meta_object.contains(key)) meta_object[key] = value;
  }
}

void strip_reserved_meta(Json& request) {
  const auto params = request.find("params");
  if (params == request.end() || !params->is_object()) return;
  const auto meta_object = params->find("_meta");
  if (meta_object == params->end() || !meta_object->is_object()) return;
  for (auto it = meta_object->begin(); it != meta_object->end();) {
    if (std::string_view(it.key()).substr(0, meta::prefix.size()) == meta::prefix) {
      it = meta_object->erase(it);
    } else {
      ++it;
    }
  }
  if (meta_object->empty()) params->erase(meta_object);
}

Json discover_from_initialize(const Json& initialize_result) {
  Json discover = {{"supportedVersions", Json::array({std::string(stateless_protocol_version)})},
                   {"capabilities", Json::object()},
                   {"resultType", "complete"},
                   // The gateway's own answer about a session it keeps: one client's view.
                   {"ttlMs", 0},
                   {"cacheScope", "private"}};
  if (!initialize_result.is_object()) return discover;
  if (const auto capabilities = initialize_result.find("capabilities");
      capabilities != initialize_result.end() && capabilities->is_object()) {
    discover["capabilities"] = *capabilities;
    // Logging is a session feature; a stateless client has no logging/setLevel. Tasks as a
    // capability are 2025-11-25's; 2026-07-28 has them as an extension, which the bridge does
    // not translate.
    discover["capabilities"].erase("logging");
    discover["capabilities"].erase("tasks");
  }
  if (const auto instructions = initialize_result.find("instructions");
      instructions != initialize_result.end() && instructions->is_string())
    discover["instructions"] = *instructions;
  if (const auto info = initialize_result.find("serverInfo");
      info != initialize_result.end() && info->is_object())
    discover["_meta"] = {{std::string(meta::server_info), *info}};
  return discover;
}

std::string negotiate_session_version(std::string_view requested_version) {
  if (is_supported_protocol_version(requested_version) &&
      !is_stateless_protocol_version(requested_version))
    return std::string(requested_version);
  return std::string(latest_session_protocol_version);
}

Json initialize_from_discover(const Json& discover_result, std::string_view requested_version) {
  Json result = {{"protocolVersion", negotiate_session_version(requested_version)},
                 {"capabilities", Json::object()},
                 {"serverInfo", {{"name", "unknown"}, {"version", "0"}}}};
  if (!discover_result.is_object()) return result;
  if (const auto capabilities = discover_result.find("capabilities");
      capabilities != discover_result.end() && capabilities->is_object()) {
    // `resources.subscribe` stays: the gateway turns resources/subscribe into the
    // resourceSubscriptions of the listen behind the session's GET stream.
    result["capabilities"] = *capabilities;
  }
  if (const auto instructions = discover_result.find("instructions");
      instructions != discover_result.end() && instructions->is_string())
    result["instructions"] = *instructions;
  if (const auto meta_object = discover_result.find("_meta");
      meta_object != discover_result.end() && meta_object->is_object()) {
    if (const auto info = meta_object->find(meta::server_info);
        info != meta_object->end() && info->is_object())
      result["serverInfo"] = *info;
  }
  return result;
}

Json initialize_params_for(const Json& client_capabilities, const Json& client_info) {
  return {{"protocolVersion", std::string(latest_session_protocol_version)},
          {"capabilities", client_capabilities.is_object() ? client_capabilities : Json::object()},
          {"clientInfo", client_info.is_object()
                             ? client_info
                             : Json{{"name", "membrane-bridged-client"}, {"version", "0"}}}};
}

void mark_complete_result(Json& response, std::string_view method) {
  const auto result = response.find("result");
  if (result == response.end() || !result->is_object()) return;
  if (!result->contains("resultType")) (*result)["resultType"] = "complete";
  if (is_cacheable_method(method)) {
    if (!result->contains("ttlMs")) (*result)["ttlMs"] = 0;
    if (!result->contains("cacheScope")) (*result)["cacheScope"] = "private";
  }
}

bool is_input_required(const Json& result) {
  if (!result.is_object()) return false;
  const auto type = result.find("resultType");
  return type != result.end() && type->is_string() && *type == "input_required";
}

bool may_require_input(std::string_view method) {
  return method == "tools/call" || method == "prompts/get" || method == "resources/read";
}

bool is_cacheable_method(std::string_view method) {
  return method == "tools/list" || method == "prompts/list" || method == "resources/list" ||
         method == "resources/templates/list" || method == "resources/read" ||
         method == "server/discover";
}

std::vector<std::string_view> methods_invalidated_by(std::string_view notification_method) {
  if (notification_method == "notifications/tools/list_changed") return {"tools/list"};
  if (notification_method == "notifications/prompts/list_changed") return {"prompts/list"};
  if (notification_method == "notifications/resources/list_changed")
    return {"resources/list", "resources/templates/list"};
  if (notification_method == "notifications/resources/updated") return {"resources/read"};
  return {};
}

bool is_input_request_method(std::string_view method) {
  return method == "elicitation/create" || method == "sampling/createMessage" ||
         method == "roots/list";
}

bool is_removed_in_stateless(std::string_view method) {
  return method == "initialize" || method == "ping" || method == "logging/setLevel" ||
         method == "resources/subscribe" || method == "resources/unsubscribe";
}

unsigned stateless_http_status(const Json& response) {
  const auto error = response.find("error");
  if (error == response.end() || !error->is_object()) return 200;
  const auto code = error->find("code");
  if (code == error->end() || !code->is_number_integer()) return 200;
  switch (code->get<int>()) {
    case error_code::method_not_found:
      return 404;
    case error_code::parse_error:
    case error_code::invalid_request:
    case error_code::header_mismatch:
    case error_code::missing_client_capability:
    case error_code::unsupported_protocol_version:
      return 400;
    default:
      return 200;
  }
}

}  // namespace membrane::mcp
