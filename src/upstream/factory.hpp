// Building upstreams from their options. Throws std::runtime_error at start-up for settings that
// cannot work (bad URL, unreadable CA file).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "upstream/child_process.hpp"
#include "upstream/upstream.hpp"

namespace membrane::upstream {

class ClientCredentialsSource;

struct HttpUpstreamOptions {
  std::string name;
  std::string url;
  std::string ca_file;
  bool verify_tls = true;
  std::map<std::string, std::string> headers;
  // Access tokens fetched by the gateway for this upstream, sent as Authorization (optional).
  std::shared_ptr<ClientCredentialsSource> credentials;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds response_timeout{300'000};
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  // "" = find out with server/discover; else the revision the server speaks.
  std::string protocol;
};

struct StdioUpstreamOptions {
  std::string name;
  ChildCommand command;
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  // Messages, and their bytes, held for one reader (a request's stream, the listen stream, or
  // the messages kept while no stream listens); a reader that falls behind pauses the child.
  std::size_t max_buffered_messages = 1024;
  std::size_t max_buffered_bytes = 1024 * 1024;
  std::chrono::milliseconds restart_backoff_initial{250};
  std::chrono::milliseconds restart_backoff_max{30'000};
  std::chrono::milliseconds shutdown_grace{2'000};
  std::chrono::milliseconds initialize_timeout{30'000};  // replaying initialize to a new child
  std::chrono::milliseconds session_idle{30 * 60'000};   // a child nobody used for this long stops
  // A request the child says nothing about for this long (no response, no progress) ends with
  // an error and the child is told to cancel it (timeouts.upstream_response).
  std::chrono::milliseconds response_timeout{300'000};
  // Live children of this upstream, and of one caller. At a cap the least recently used idle
  // child is stopped (its session lives on and restarts it when used); when every child is busy
  // the new session is refused with 503 (upstream) or 429 (caller) and Retry-After.
  std::size_t max_processes = 32;
  std::size_t max_processes_per_caller = 8;
  // Where those refusals are counted (membrane_overload_rejections_total); null: not counted.
  std::shared_ptr<http::OverloadStats> overload_stats;
  // "" = find out with server/discover (a child of its own, stopped after); else the revision
  // the server speaks. 2026-07-28 requests all go to one shared child, without initialize.
  std::string protocol;
};

std::unique_ptr<Upstream> make_http_upstream(HttpUpstreamOptions options, std::size_t workers);
std::unique_ptr<Upstream> make_stdio_upstream(StdioUpstreamOptions options);

}  // namespace membrane::upstream
