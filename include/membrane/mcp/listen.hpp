// MCP 2026-07-28 `subscriptions/listen`: the filter a client asks for, the part of it a server can
// honour, and the frames of a listen stream (the acknowledgement first, every notification tagged
// with the subscription id, the graceful close). Pure functions over JSON, shared by every path
// that serves a listen: pass-through checks, and the gateway's own listens for bridged clients.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/mcp/jsonrpc.hpp"

namespace membrane::mcp {

namespace meta {
inline constexpr std::string_view subscription_id = "io.modelcontextprotocol/subscriptionId";
}

struct ListenFilter {
  // At most this many resource URIs, each at most this long: a filter is untrusted input.
  static constexpr std::size_t max_resource_uris = 256;
  static constexpr std::size_t max_uri_size = 4096;

  bool tools_list_changed = false;
  bool prompts_list_changed = false;
  bool resources_list_changed = false;
  std::vector<std::string> resource_uris;

  // params.notifications of a listen request; nullopt (with `error` set) when it is absent or not
  // a filter.
  static std::optional<ListenFilter> from_params(const Json* params, std::string& error);
  // What a server with these (initialize or discover) capabilities can deliver of this filter:
  // list changes it announces `listChanged` for, resource updates when it offers `subscribe`.
  ListenFilter honoured_by(const Json& server_capabilities) const;
  bool empty() const;
  Json to_json() const;
  // Whether a notification of this method (and, for resources/updated, this uri) belongs to the
  // listen. Every other notification never does.
  bool accepts(std::string_view method, std::string_view uri = {}) const;
};

// The four change notifications a listen stream carries.
bool is_change_notification(std::string_view method);

// notifications/subscriptions/acknowledged for the listen request `listen_id`.
Json listen_acknowledgement(const Json& listen_id, const ListenFilter& honoured);

// Stamps `_meta[subscriptionId]` onto a notification's params (creating them when absent).
void tag_with_subscription(Json& notification, const Json& listen_id);

// Removes that stamp (and `_meta` when nothing else is left): a session client's standalone
// stream has no subscriptions. False when there was none.
bool untag_subscription(Json& notification);

// The listen's own response: the graceful close of the subscription (the server ends it).
Json listen_closed_response(const Json& listen_id, const Json& server_info);

}  // namespace membrane::mcp
