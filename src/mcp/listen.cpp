#include "membrane/mcp/listen.hpp"

#include "membrane/mcp/protocol.hpp"

namespace membrane::mcp {
namespace {

bool flag(const Json& object, std::string_view key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_boolean() && found->get<bool>();
}

// capabilities[section][key] == true
bool offers(const Json& capabilities, std::string_view section, std::string_view key) {
  if (!capabilities.is_object()) return false;
  const auto found = capabilities.find(section);
  return found != capabilities.end() && found->is_object() && flag(*found, key);
}

}  // namespace

std::optional<ListenFilter> ListenFilter::from_params(const Json* params, std::string& error) {
  if (!params || !params->is_object()) {
    error = "params.notifications is required (a subscription filter)";
    return std::nullopt;
  }
  const auto notifications = params->find("notifications");
  if (notifications == params->end() || !notifications->is_object()) {
    error = "params.notifications is required (a subscription filter)";
    return std::nullopt;
  }
  ListenFilter filter;
  for (const auto& [key, value] : notifications->items()) {
    if (key == "toolsListChanged" || key == "promptsListChanged" || key == "resourcesListChanged") {
      if (!value.is_boolean()) {
        error = "params.notifications." + key + " must be a boolean";
        return std::nullopt;
      }
    } else if (key == "resourceSubscriptions") {
      if (!value.is_array()) {
        error = "params.notifications.resourceSubscriptions must be an array of URIs";
        return std::nullopt;
      }
      if (value.size() > max_resource_uris) {
        error = "params.notifications.resourceSubscriptions lists " + std::to_string(value.size()) +
                " URIs (at most " + std::to_string(max_resource_uris) + ")";
        return std::nullopt;
      }
      for (const auto& uri : value) {
        if (!uri.is_string() || uri.get_ref<const std::string&>().size() > max_uri_size) {
          error = "params.notifications.resourceSubscriptions must hold URI strings of at most " +
                  std::to_string(max_uri_size) + " bytes";
          return std::nullopt;
        }
        filter.resource_uris.push_back(uri.get<std::string>());
      }
    }
  }
  filter.tools_list_changed = flag(*notifications, "toolsListChanged");
  filter.prompts_list_changed = flag(*notifications, "promptsListChanged");
  filter.resources_list_changed = flag(*notifications, "resourcesListChanged");
  return filter;
}

ListenFilter ListenFilter::honoured_by(const Json& server_capabilities) const {
  ListenFilter honoured;
  honoured.tools_list_changed =
      tools_list_changed && offers(server_capabilities, "tools", "listChanged");
  honoured.prompts_list_changed =
      prompts_list_changed && offers(server_capabilities, "prompts", "listChanged");
  honoured.resources_list_changed =
      resources_list_changed && offers(server_capabilities, "resources", "listChanged");
  if (offers(server_capabilities, "resources", "subscribe")) honoured.resource_uris = resource_uris;
  return honoured;
}

bool ListenFilter::empty() const {
  return !tools_list_changed && !prompts_list_changed && !resources_list_changed &&
         resource_uris.empty();
}

Json ListenFilter::to_json() const {
  Json filter = Json::object();
  if (tools_list_changed) filter["toolsListChanged"] = true;
  if (prompts_list_changed) filter["promptsListChanged"] = true;
  if (resources_list_changed) filter["resourcesListChanged"] = true;
  if (!resource_uris.empty()) filter["resourceSubscriptions"] = resource_uris;
  return filter;
}

bool ListenFilter::accepts(std::string_view method, std::string_view uri) const {
  if (method == "notifications/tools/list_changed") return tools_list_changed;
  if (method == "notifications/prompts/list_changed") return prompts_list_changed;
  if (method == "notifications/resources/list_changed") return resources_list_changed;
  if (method == "notifications/resources/updated") {
    for (const auto& subscribed : resource_uris)
      if (subscribed == uri) return true;
  }
  return false;
}

bool is_change_notification(std::string_view method) {
  return method == "notifications/tools/list_changed" ||
         method == "notifications/prompts/list_changed" ||
         method == "notifications/resources/list_changed" ||
         method == "notifications/resources/updated";
}

Json listen_acknowledgement(const Json& listen_id, const ListenFilter& honoured) {
  Json acknowledgement = {{"jsonrpc", "2.0"},
                          {"method", "notifications/subscriptions/acknowledged"},
                          {"params", {{"notifications", honoured.to_json()}}}};
  tag_with_subscription(acknowledgement, listen_id);
  return acknowledgement;
}

void tag_with_subscription(Json& notification, const Json& listen_id) {
  auto& params = notification["params"];
  if (!params.is_object()) params = Json::object();
  auto& meta = params["_meta"];
  if (!meta.is_object()) meta = Json::object();
  meta[std::string(meta::subscription_id)] = listen_id;
}

bool untag_subscription(Json& notification) {
  const auto params = notification.find("params");
  if (params == notification.end() || !params->is_object()) return false;
  const auto meta = params->find("_meta");
  if (meta == params->end() || !meta->is_object() ||
      !meta->erase(std::string(meta::subscription_id)))
    return false;
  if (meta->empty()) params->erase(meta);
  return true;
}

Json listen_closed_response(const Json& listen_id, const Json& server_info) {
  Json meta = {{std::string(meta::subscription_id), listen_id}};
  if (server_info.is_object()) meta[std::string(meta::server_info)] = server_info;
  return {{"jsonrpc", "2.0"},
          {"id", listen_id},
          {"result", {{"resultType", "complete"}, {"_meta", meta}}}};
}

}  // namespace membrane::mcp
