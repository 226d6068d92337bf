#include "gateway/revision.hpp"

#include "gateway/responses.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {
namespace {

const mcp::Json* request_meta(const mcp::Message& message) {
  const auto* params = message.params();
  if (!params || !params->is_object()) return nullptr;
  const auto meta = params->find("_meta");
  return meta != params->end() && meta->is_object() ? &*meta : nullptr;
}

std::string meta_version(const mcp::Message& message) {
  const auto* meta = request_meta(message);
  if (!meta) return {};
  const auto version = meta->find(mcp::meta::protocol_version);
  return version != meta->end() && version->is_string() ? version->get<std::string>()
                                                        : std::string();
}

http::Response mismatch(const mcp::Json& id, std::string message) {
  return jsonrpc_error(400, id, mcp::error_code::header_mismatch, "Bad Request: " + message);
}

}  // namespace

bool is_stateless_request(const http::Request& request, const mcp::Message& message) {
  if (mcp::is_stateless_protocol_version(request[mcp::header::protocol_version])) return true;
  return mcp::is_stateless_protocol_version(meta_version(message));
}

std::optional<std::string> expected_name_header(const mcp::Message& message) {
  const auto method = message.method();
  // The tasks extension (SEP-2663) names the task.
  if (method == "tasks/get" || method == "tasks/update" || method == "tasks/cancel") {
    if (const auto* params = message.params(); params && params->is_object()) {
      if (const auto task = params->find("taskId"); task != params->end() && task->is_string())
        return task->get<std::string>();
    }
    return std::string();
  }
  if (method != "tools/call" && method != "prompts/get" && method != "resources/read")
    return std::nullopt;
  return std::string(message.target_name());
}

http::Response unsupported_version_response(const mcp::Json& id, std::string_view requested,
                                            ServedRevisions served) {
  mcp::Json supported = mcp::Json::array();
  std::string listed;
  for (const auto version : served) {
    supported.push_back(version);
    if (!listed.empty()) listed += ", ";
    listed += version;
  }
  const mcp::Json body = {
      {"jsonrpc", "2.0"},
      {"id", id},
      {"error",
       {{"code", mcp::error_code::unsupported_protocol_version},
        {"message", "Bad Request: unsupported MCP protocol version '" + std::string(requested) +
                        "' (supported here: " + listed + ")"},
        {"data", {{"supported", supported}, {"requested", std::string(requested)}}}}}};
  return json_response(400, body.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
}

StatelessRequest check_stateless_request(const http::Request& request, const mcp::Message& message,
                                         ServedRevisions served) {
  StatelessRequest checked;
  const mcp::Json& id = message.id();
  const std::string_view header_version = request[mcp::header::protocol_version];
  const std::string body_version = meta_version(message);
  const auto is_served = [served](std::string_view version) {
    for (const auto known : served)
      if (known == version) return true;
    return false;
  };

  if (message.is_response()) {
    checked.rejection = jsonrpc_error(
        400, id, mcp::error_code::invalid_request,
        "Bad Request: a 2026-07-28 client answers input requests by re-sending its request with "
        "inputResponses, never with a JSON-RPC response");
    return checked;
  }
  // The header must say what the body says before either is believed (SEP-2243).
  if (header_version.empty()) {
    checked.rejection = mismatch(
        id, "MCP-Protocol-Version header is required (the body names " + body_version + ")");
    return checked;
  }
  if (!body_version.empty() && body_version != header_version) {
    checked.rejection =
        mismatch(id, "MCP-Protocol-Version header '" + std::string(header_version) +
                         "' differs from params._meta protocolVersion '" + body_version + "'");
    return checked;
  }
  if (!is_served(header_version)) {
    checked.rejection = unsupported_version_response(id, header_version, served);
    return checked;
  }
  if (message.is_request() && body_version.empty()) {
    checked.rejection =
        jsonrpc_error(400, id, mcp::error_code::invalid_params,
                      "Invalid params: params._meta[\"" + std::string(mcp::meta::protocol_version) +
                          "\"] is required by protocol version " + std::string(header_version));
    return checked;
  }
  checked.protocol_version = std::string(header_version);

  const std::string_view method_header = request[mcp::header::method];
  if (method_header.empty()) {
    checked.rejection = mismatch(id, "Mcp-Method header is required");
    return checked;
  }
  if (method_header != message.method()) {
    checked.rejection = mismatch(id, "Mcp-Method header '" + std::string(method_header) +
                                         "' differs from the body's method '" +
                                         std::string(message.method()) + "'");
    return checked;
  }
  if (const auto expected = expected_name_header(message); expected && !expected->empty()) {
    const auto found = request.find(mcp::header::name);
    if (found == request.end()) {
      checked.rejection =
          mismatch(id, "Mcp-Name header is required for " + std::string(message.method()));
      return checked;
    }
    const auto decoded = mcp::decode_header_value(found->value());
    if (!decoded) {
      checked.rejection = mismatch(id, "Mcp-Name header is not valid =?base64?…?= text");
      return checked;
    }
    if (*decoded != *expected) {
      checked.rejection = mismatch(
          id, "Mcp-Name header '" + *decoded + "' differs from the body's '" + *expected + "'");
      return checked;
    }
  }

  if (message.is_request()) {
    const auto* meta = request_meta(message);
    const auto capabilities = meta->find(mcp::meta::client_capabilities);
    if (capabilities == meta->end() || !capabilities->is_object()) {
      checked.rejection = jsonrpc_error(
          400, id, mcp::error_code::invalid_params,
          "Invalid params: params._meta[\"" + std::string(mcp::meta::client_capabilities) +
              "\"] is required (an object) by protocol version " + checked.protocol_version);
      return checked;
    }
    checked.client_capabilities = *capabilities;
    if (const auto info = meta->find(mcp::meta::client_info);
        info != meta->end() && info->is_object())
      checked.client_info = *info;
  }
  return checked;
}

}  // namespace membrane::gateway
