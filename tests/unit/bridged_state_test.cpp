// What the gateway keeps on a replica for what a sealed session or a task cannot carry: a bridged
// session's log level and resource subscriptions, and the calls that became tasks. Both tables
// are filled by clients, so both are bounded.
#include <catch2/catch.hpp>

#include <string>

#include "gateway/bridging.hpp"
#include "gateway/exchange/exchange.hpp"
#include "gateway/filters/policy/policy_filter.hpp"

namespace gw = membrane::gateway;
using membrane::mcp::Json;

TEST_CASE("bridged sessions: log level and subscriptions per session, forgotten with it") {
  gw::BridgedSessions sessions;
  CHECK(sessions.log_level("a").empty());
  sessions.set_log_level("a", "debug");
  CHECK(sessions.log_level("a") == "debug");
  CHECK(sessions.log_level("b").empty());

  CHECK(sessions.subscribe("a", "file:///x"));
  CHECK(sessions.subscribe("a", "file:///x"));  // once is enough
  CHECK(sessions.subscribe("a", "file:///y"));
  CHECK(sessions.subscriptions("a") == std::vector<std::string>{"file:///x", "file:///y"});
  sessions.unsubscribe("a", "file:///x");
  sessions.unsubscribe("a", "file:///never");
  CHECK(sessions.subscriptions("a") == std::vector<std::string>{"file:///y"});
  sessions.forget("a");
  CHECK(sessions.subscriptions("a").empty());
  CHECK(sessions.log_level("a").empty());
}

TEST_CASE("bridged sessions: a session's subscriptions are bounded") {
  gw::BridgedSessions sessions;
  for (std::size_t i = 0; i < gw::BridgedSessions::max_subscriptions; ++i)
    REQUIRE(sessions.subscribe("a", "file:///" + std::to_string(i)));
  CHECK_FALSE(sessions.subscribe("a", "file:///one-more"));
  CHECK(sessions.subscribe("b", "file:///one-more"));
}

TEST_CASE("bridged sessions: the table is bounded in sessions and in bytes") {
  gw::BridgedSessions sessions;
  for (std::size_t i = 0; i <= gw::BridgedSessions::max_sessions; ++i)
    sessions.set_log_level("session-" + std::to_string(i), "info");
  // The oldest session went to make room for the newest.
  CHECK(sessions.log_level("session-0").empty());
  CHECK(sessions.log_level("session-" + std::to_string(gw::BridgedSessions::max_sessions)) ==
        "info");

  gw::BridgedSessions full;
  const std::string uri(4000, 'u');
  std::size_t taken = 0;
  // Sessions of 100 subscriptions each (under the per-session bound) until the table refuses.
  for (bool room = true; room;) {
    const std::string session = "s" + std::to_string(taken / 100);
    room = full.subscribe(session, uri + std::to_string(taken));
    if (room) ++taken;
  }
  CHECK(taken * uri.size() <= gw::BridgedSessions::max_uri_bytes);
  CHECK((taken + 1) * (uri.size() + 5) > gw::BridgedSessions::max_uri_bytes);
  // Forgetting a session gives its bytes back.
  full.forget("s0");
  CHECK(full.subscribe("s0", uri + "again"));
}

TEST_CASE("task calls: kept by caller and task, bounded in count and bytes") {
  gw::TaskCalls calls;
  gw::Exchange exchange;
  exchange.upstream = "ev";
  exchange.session_id = "sealed-session";
  const auto key = gw::TaskCalls::key(exchange, "task-1");
  gw::Exchange other = exchange;
  other.session_id = "another-session";
  CHECK(key != gw::TaskCalls::key(other, "task-1"));

  const Json call = {{"method", "tools/call"}, {"params", {{"name", "research"}}}};
  calls.remember(key, call, 100);
  REQUIRE(calls.find(key));
  CHECK(*calls.find(key) == call);
  CHECK_FALSE(calls.find(gw::TaskCalls::key(other, "task-1")));

  for (std::size_t i = 0; i < gw::TaskCalls::capacity; ++i)
    calls.remember(gw::TaskCalls::key(exchange, "t" + std::to_string(i)), call, 10);
  CHECK_FALSE(calls.find(key));  // the oldest went first

  gw::TaskCalls heavy;
  heavy.remember(key, call, gw::TaskCalls::max_bytes / 2);
  heavy.remember(gw::TaskCalls::key(exchange, "b"), call, gw::TaskCalls::max_bytes / 2);
  CHECK(heavy.find(key));
  heavy.remember(gw::TaskCalls::key(exchange, "c"), call, 1);
  CHECK_FALSE(heavy.find(key));
  CHECK(heavy.find(gw::TaskCalls::key(exchange, "c")));
}
