// DNS-rebinding defence (MCP transports §security warning): a browser page on an attacker's
// domain that resolves to 127.0.0.1 must not be able to drive the gateway. The `Origin` and
// `Host` headers of every request are checked against allow-lists.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace membrane::http {

class OriginPolicy {
 public:
  // `allowed_origins`: "scheme://host[:port]" with "*" allowed as the port ("http://localhost:*")
  // or as the whole entry ("*" = any origin). Empty = loopback origins only.
  // `allowed_hosts`: "host" or "host:port" with "*" port; "*" = any. Empty = loopback names when
  // `listening_on_loopback`, else any host.
  OriginPolicy(std::vector<std::string> allowed_origins, std::vector<std::string> allowed_hosts,
               bool listening_on_loopback);

  // A request without Origin (every non-browser client) is allowed.
  bool origin_allowed(std::string_view origin) const;
  bool host_allowed(std::string_view host) const;

 private:
  std::vector<std::string> origins_;
  std::vector<std::string> hosts_;
  bool any_origin_ = false;
  bool any_host_ = false;
};

}  // namespace membrane::http
