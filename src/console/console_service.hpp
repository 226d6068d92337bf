// The security console at /console on the admin listener: its pages (compiled in) and the JSON
// APIs behind them (docs/console.md). Every API call carries a bearer token with the audit scope;
// answering an approval needs the approve scope too. Searches, verification and charts run on
// threads of their own, never on the event loops that carry agent traffic.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "console/decision_feed.hpp"
#include "gateway/console_approvals.hpp"
#include "gateway/remote_jwks.hpp"
#include "http/background.hpp"
#include "http/server.hpp"
#include "membrane/http/origin_policy.hpp"
#include "membrane/identity/authenticator.hpp"

namespace membrane::console {

// Who may open the console: tokens one authenticator accepts.
struct ConsoleIssuer {
  std::shared_ptr<const identity::Authenticator> authenticator;
  std::shared_ptr<gateway::RemoteJwks> remote_keys;  // null: the keys came from a file
};

struct ConsoleOptions {
  std::vector<ConsoleIssuer> issuers;
  std::string audit_scope = "membrane:audit";
  std::string approve_scope = "membrane:approve";
  std::string audit_file;                   // this gateway's log ("" when it keeps none)
  std::vector<std::string> audit_patterns;  // other files (glob patterns), e.g. other replicas'
  std::optional<identity::KeySet> checkpoint_keys;
  std::uint64_t max_scan_bytes = std::uint64_t{2} << 30;
  std::shared_ptr<DecisionFeed> feed;  // null when this replica keeps no audit log
  std::shared_ptr<gateway::ConsoleApprovals> approvals;
  std::string replica;
  std::string trace_link;  // the tracing UI's page of a trace ({trace_id}), for the pages
  // The admin listener is on loopback: requests must name localhost, 127.0.0.1 or [::1] (DNS
  // rebinding), as on the agents' listener.
  bool loopback_hosts_only = true;
  std::size_t max_feeds = 32;  // live feeds open at once
};

class ConsoleService {
 public:
  explicit ConsoleService(ConsoleOptions options);
  ~ConsoleService();
  ConsoleService(const ConsoleService&) = delete;
  ConsoleService& operator=(const ConsoleService&) = delete;

  static bool serves(std::string_view path);
  awaitable<void> handle(http::Request& request, http::Responder& out);

  // The audit files the console reads, newest first.
  std::vector<std::string> audit_files() const;

 private:
  struct Caller;
  awaitable<std::optional<Caller>> authenticate(const http::Request& request, bool approving,
                                                http::Responder& out);
  awaitable<void> serve_api(http::Request& request, std::string_view route, http::Responder& out);
  awaitable<void> records(const http::Request& request, http::Responder& out);
  awaitable<void> feed(const http::Request& request, http::Responder& out);
  awaitable<void> transaction(std::string txn, http::Responder& out);
  awaitable<void> chain(const http::Request& request, http::Responder& out);
  awaitable<void> stats(const http::Request& request, http::Responder& out);
  awaitable<void> approvals(http::Responder& out);
  awaitable<void> answer_approval(const http::Request& request, std::string id,
                                  const Caller& caller, http::Responder& out);

  ConsoleOptions options_;
  http::OriginPolicy hosts_;
  std::atomic<std::size_t> feeds_open_{0};
  struct ChainCache;
  std::unique_ptr<ChainCache> chain_cache_;
  // Last: joined first, while what the work uses still exists.
  http::BackgroundThreads background_{2};
};

}  // namespace membrane::console
