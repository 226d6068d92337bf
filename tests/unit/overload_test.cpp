// Unit tests for the overload limits: the counting behind limits.max_streams, max_sessions,
// max_sessions_per_caller and the buffered-event budget, the refusal counters, the 503/429
// answers, and the limits: keys of the config.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include "gateway/admission.hpp"
#include "http/overload.hpp"
#include "http/stream_buffer.hpp"
#include "membrane/app/config.hpp"
#include "membrane/identity/authenticator.hpp"

using namespace membrane;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using gateway::CallerSessions;
using gateway::Refusal;
using gateway::StreamSlots;
using http::OverloadLimit;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::seconds kRetry{1};

std::string error_loading(const std::string& yaml) {
  try {
    app::load_config_text(yaml, "test.yaml");
  } catch (const app::ConfigError& error) {
    return error.what();
  }
  return "";
}

constexpr const char* kUpstreams = "upstreams:\n  a:\n    url: http://127.0.0.1:3001/mcp\n";

}  // namespace

TEST_CASE("stream slots are never handed out past the limit and come back when released") {
  StreamSlots slots(2);
  auto first = slots.try_acquire();
  auto second = slots.try_acquire();
  CHECK(first);
  CHECK(second);
  CHECK_FALSE(slots.try_acquire());
  CHECK(slots.in_use() == 2);
  { auto moved = std::move(first); }
  CHECK(slots.in_use() == 1);
  auto third = slots.try_acquire();
  CHECK(third);
  CHECK_FALSE(slots.try_acquire());
  second = StreamSlots::Slot();
  third = StreamSlots::Slot();
  CHECK(slots.in_use() == 0);
}

// A clock the test moves by hand.
struct FakeClock {
  CallerSessions::Clock::time_point now{std::chrono::hours(1000)};
  std::function<CallerSessions::Clock::time_point()> function() {
    return [this] { return now; };
  }
};

TEST_CASE("a caller's sessions count from initialize, so re-initializing cannot get around it") {
  FakeClock clock;
  CallerSessions sessions(100, 3, clock.function());
  std::vector<CallerSessions::Use> uses(3);
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(sessions.open("address 10.0.0.1", 30min, uses[i], kRetry));
    sessions.bind(uses[i], "session-" + std::to_string(i));
  }
  // The initialize requests are answered: nothing uses the sessions any more, yet they count.
  uses.clear();
  clock.now += 10min;
  CHECK(sessions.live_for("address 10.0.0.1") == 3);
  CallerSessions::Use fourth;
  const auto refusal = sessions.open("address 10.0.0.1", 30min, fourth, kRetry);
  REQUIRE(refusal);
  CHECK(refusal->limit == OverloadLimit::sessions_per_caller);
  // The first idle session stops counting 30 min after its last use, 20 min from now.
  CHECK(refusal->retry_after == 20min);
  CHECK_THAT(refusal->message, Contains("3 live sessions"));
  CHECK_FALSE(fourth);
  // Another caller is not affected.
  CallerSessions::Use other;
  CHECK_FALSE(sessions.open("address 10.0.0.2", 30min, other, kRetry));
  // Once the idle window has passed, the caller may open new ones.
  clock.now += 21min;
  CHECK_FALSE(sessions.open("address 10.0.0.1", 30min, fourth, kRetry));
  CHECK(sessions.live_for("address 10.0.0.1") == 1);
}

TEST_CASE("a session in use does not expire, and its caller is told to come back later") {
  FakeClock clock;
  CallerSessions sessions(100, 1, clock.function());
  CallerSessions::Use stream;
  REQUIRE_FALSE(sessions.open("subject alice", 1min, stream, kRetry));
  sessions.bind(stream, "s1");
  // A listen stream keeps the session live long past its idle window.
  clock.now += 1h;
  CallerSessions::Use second;
  const auto refusal = sessions.open("subject alice", 1min, second, 7s);
  REQUIRE(refusal);
  CHECK(refusal->retry_after == 7s);  // nothing idle: the configured Retry-After
  stream = CallerSessions::Use();
  // Counted for one more minute from its last use, then gone.
  clock.now += 59s;
  CHECK(sessions.live_for("subject alice") == 1);
  clock.now += 1s;
  CHECK(sessions.live_for("subject alice") == 0);
}

TEST_CASE("DELETE frees a caller's place at once; unbound reservations leave no trace") {
  FakeClock clock;
  CallerSessions sessions(100, 2, clock.function());
  CallerSessions::Use a;
  CallerSessions::Use b;
  REQUIRE_FALSE(sessions.open("address 10.0.0.1", 30min, a, kRetry));
  sessions.bind(a, "a");
  REQUIRE_FALSE(sessions.open("address 10.0.0.1", 30min, b, kRetry));
  // The upstream refused this initialize: no session id, and the place is given back.
  b = CallerSessions::Use();
  CHECK(sessions.live_for("address 10.0.0.1") == 1);
  a = CallerSessions::Use();
  sessions.end("a");
  CHECK(sessions.live_for("address 10.0.0.1") == 0);
  // Ending an unknown or already ended session changes nothing.
  sessions.end("a");
  sessions.end("never-seen");
  CHECK(sessions.live() == 0);
}

TEST_CASE("requests on a known session are never refused, new ones from elsewhere count") {
  FakeClock clock;
  CallerSessions sessions(100, 1, clock.function());
  CallerSessions::Use use;
  REQUIRE_FALSE(sessions.open("address 10.0.0.1", 30min, use, kRetry));
  sessions.bind(use, "known");
  use = CallerSessions::Use();
  std::vector<CallerSessions::Use> requests(5);
  for (auto& request : requests)
    CHECK_FALSE(sessions.use("address 10.0.0.1", "known", 30min, request, kRetry));
  // A session opened on another replica is new here: it needs a place of its own.
  CallerSessions::Use foreign;
  const auto refusal = sessions.use("address 10.0.0.1", "from-elsewhere", 30min, foreign, kRetry);
  REQUIRE(refusal);
  CHECK(refusal->limit == OverloadLimit::sessions_per_caller);
  // touch() keeps a counted session live and never adds one.
  CallerSessions::Use touched;
  sessions.touch("from-elsewhere", touched);
  CHECK_FALSE(touched);
  sessions.touch("known", touched);
  CHECK(touched);
  // Requests in flight keep it live however long they take.
  clock.now += 2h;
  CHECK(sessions.live_for("address 10.0.0.1") == 1);
  requests.clear();
  touched = CallerSessions::Use();
  clock.now += 31min;
  CHECK(sessions.live_for("address 10.0.0.1") == 0);
}

TEST_CASE("the whole table is bounded: past max_sessions every caller gets 503") {
  FakeClock clock;
  CallerSessions sessions(3, 3, clock.function());
  std::vector<CallerSessions::Use> uses(3);
  for (int i = 0; i < 3; ++i) {
    REQUIRE_FALSE(sessions.open("address 10.0.0." + std::to_string(i), 10min, uses[i], kRetry));
    sessions.bind(uses[i], "s" + std::to_string(i));
  }
  clock.now += 1min;
  CallerSessions::Use more;
  auto refusal = sessions.open("address 10.0.0.9", 10min, more, 2s);
  REQUIRE(refusal);
  CHECK(refusal->limit == OverloadLimit::sessions);
  CHECK(refusal->retry_after == 2s);
  uses.clear();
  // Idle past their window: the next admission sweeps them out.
  clock.now += 11min;
  CHECK_FALSE(sessions.open("address 10.0.0.9", 10min, more, 2s));
  CHECK(sessions.live() == 1);
}

TEST_CASE("refusals are counted per limit") {
  http::OverloadStats stats(std::chrono::hours(1));
  stats.refused(OverloadLimit::connections, "test");
  stats.refused(OverloadLimit::connections, "test");
  stats.refused(OverloadLimit::buffered_bytes, "test");
  CHECK(stats.refusals(OverloadLimit::connections) == 2);
  CHECK(stats.refusals(OverloadLimit::buffered_bytes) == 1);
  CHECK(stats.refusals(OverloadLimit::streams) == 0);
  CHECK(http::limit_name(OverloadLimit::sessions_per_caller) == "sessions_per_caller");
  CHECK(http::limit_key(OverloadLimit::streams) == "limits.max_streams");
}

TEST_CASE("overload answers: 503 or 429, Retry-After and a JSON-RPC error naming the limit") {
  Refusal refusal;
  refusal.limit = OverloadLimit::streams;
  refusal.retry_after = 3s;
  refusal.message = "Overloaded: test";
  auto response = gateway::overload_response(refusal, 7);
  CHECK(response.result_int() == 503);
  CHECK(response[http::bhttp::field::retry_after] == "3");
  const auto body = mcp::Json::parse(response.body());
  CHECK(body["id"] == 7);
  CHECK(body["error"]["code"] == mcp::error_code::overloaded);
  CHECK(body["error"]["message"] == "Overloaded: test");
  CHECK(body["error"]["data"]["limit"] == "streams");
  CHECK(body["error"]["data"]["retryAfter"] == 3);

  refusal.limit = OverloadLimit::sessions_per_caller;
  refusal.retry_after = 0s;  // never less than one second
  response = gateway::overload_response(refusal, nullptr);
  CHECK(response.result_int() == 429);
  CHECK(response[http::bhttp::field::retry_after] == "1");
}

TEST_CASE("a caller is its token's subject, else its address (an IPv6 host by its /64)") {
  http::RequestOrigin origin;
  origin.peer = {asio::ip::make_address("192.0.2.7"), 40000};
  CHECK(gateway::caller_key(nullptr, origin) == "address 192.0.2.7");
  origin.peer = {asio::ip::make_address("::ffff:192.0.2.7"), 40000};
  CHECK(gateway::caller_key(nullptr, origin) == "address 192.0.2.7");
  origin.peer = {asio::ip::make_address("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 40000};
  const auto v6 = gateway::caller_key(nullptr, origin);
  CHECK(v6 == "address 2001:db8:1:2::/64");
  origin.peer = {asio::ip::make_address("2001:db8:1:2::1"), 40001};
  CHECK(gateway::caller_key(nullptr, origin) == v6);
  // Each worker keeps the last address's key: a change of address is a change of key.
  origin.peer = {asio::ip::make_address("198.51.100.1"), 40000};
  CHECK(gateway::caller_key(nullptr, origin) == "address 198.51.100.1");
  origin.peer = {asio::ip::make_address("198.51.100.2"), 40000};
  CHECK(gateway::caller_key(nullptr, origin) == "address 198.51.100.2");
  origin.peer = {asio::ip::make_address("198.51.100.2"), 40001};
  CHECK(gateway::caller_key(nullptr, origin) == "address 198.51.100.2");
  identity::Identity alice;
  alice.subject = "alice";
  CHECK(gateway::caller_key(&alice, origin) == "subject alice");
}

TEST_CASE("a stream's event buffer: one event always fits, more wait for the writer") {
  asio::io_context context;
  http::BufferBudget budget(1000, 1500);
  http::StreamBuffer first(context.get_executor(), budget);
  http::StreamBuffer second(context.get_executor(), budget);

  CHECK(first.try_charge(5000));  // nothing queued: even an event over the budget goes
  CHECK_FALSE(first.try_charge(1));
  first.release(5000);
  CHECK(first.try_charge(600));
  CHECK(first.try_charge(400));
  CHECK_FALSE(first.try_charge(1));  // this stream's budget is full
  CHECK(budget.used() == 1000);
  CHECK(second.try_charge(400));
  CHECK_FALSE(second.try_charge(200));  // the total is the limit now
  CHECK(budget.used() == 1400);
  CHECK_FALSE(budget.room_for_new_stream());

  // A producer waiting for room is woken when the writer releases.
  bool charged = false;
  asio::co_spawn(
      context, [&]() -> awaitable<void> { charged = co_await first.charge(300); }, asio::detached);
  context.run_for(50ms);
  CHECK_FALSE(charged);
  first.release(600);
  context.restart();
  context.run_for(100ms);
  CHECK(charged);
  CHECK(first.queued() == 700);

  // close() ends a wait with false.
  bool result = true;
  bool done = false;
  asio::co_spawn(
      context,
      [&]() -> awaitable<void> {
        result = co_await second.charge(900);
        done = true;
      },
      asio::detached);
  context.restart();
  context.run_for(50ms);
  CHECK_FALSE(done);
  second.close();
  context.restart();
  context.run_for(100ms);
  CHECK(done);
  CHECK_FALSE(result);
  CHECK_FALSE(second.try_charge(1));
}

TEST_CASE("a destroyed stream gives its queued bytes back to the total") {
  asio::io_context context;
  http::BufferBudget budget(1000, 5000);
  {
    http::StreamBuffer stream(context.get_executor(), budget);
    CHECK(stream.try_charge(700));
    CHECK(budget.used() == 700);
  }
  CHECK(budget.used() == 0);
}

TEST_CASE("limits: the overload keys load with their defaults and validate") {
  const auto defaults = app::load_config_text(kUpstreams, "test.yaml");
  CHECK(defaults.limits.max_connections == 4096);
  CHECK(defaults.limits.max_streams == 2048);
  CHECK(defaults.limits.max_sessions == 10'000);
  CHECK(defaults.limits.max_sessions_per_caller == 256);
  CHECK(defaults.limits.session_idle == 30min);
  CHECK(defaults.limits.max_stream_buffer_bytes == 1024 * 1024);
  CHECK(defaults.limits.max_buffered_bytes == 256 * 1024 * 1024);
  CHECK(defaults.limits.retry_after == 1s);

  const auto config = app::load_config_text(std::string("limits:\n"
                                                        "  max_connections: 100\n"
                                                        "  max_streams: 50\n"
                                                        "  max_sessions: 20\n"
                                                        "  max_sessions_per_caller: 5\n"
                                                        "  session_idle: 10m\n"
                                                        "  max_stream_buffer: 64KiB\n"
                                                        "  max_buffered_bytes: 1MiB\n"
                                                        "  retry_after: 5s\n") +
                                                kUpstreams,
                                            "test.yaml");
  CHECK(config.limits.max_connections == 100);
  CHECK(config.limits.max_streams == 50);
  CHECK(config.limits.max_sessions == 20);
  CHECK(config.limits.max_sessions_per_caller == 5);
  CHECK(config.limits.session_idle == 10min);
  CHECK(config.limits.max_stream_buffer_bytes == 64 * 1024);
  CHECK(config.limits.max_buffered_bytes == 1024 * 1024);
  CHECK(config.limits.retry_after == 5s);

  CHECK_THAT(error_loading(std::string("limits:\n  max_connections: 0\n") + kUpstreams),
             StartsWith("test.yaml:2:20: limits.max_connections: must be greater than zero"));
  CHECK_THAT(error_loading(std::string("limits:\n  max_streams: many\n") + kUpstreams),
             StartsWith("test.yaml:2:16: limits.max_streams: expected a whole number"));
  CHECK_THAT(error_loading(std::string("limits:\n  retry_after: 1500ms\n") + kUpstreams),
             StartsWith("test.yaml:2:16: limits.retry_after: must be a whole number of seconds"));
  CHECK_THAT(error_loading(std::string("limits:\n  session_idle: 10\n") + kUpstreams),
             StartsWith("test.yaml:2:17: limits.session_idle:"));
  CHECK_THAT(error_loading(std::string("limits:\n  max_stream_buffer: 2GiB\n") + kUpstreams),
             StartsWith("test.yaml:2:22: limits.max_stream_buffer: must not exceed "
                        "limits.max_buffered_bytes"));
  CHECK_THAT(error_loading(std::string("limits:\n  max_buffered_bytes: 512KiB\n") + kUpstreams),
             StartsWith("test.yaml:2:23: limits.max_buffered_bytes: must be at least "
                        "limits.max_stream_buffer"));
  CHECK_THAT(error_loading(std::string("limits:\n  max_sessions: 10\n") + kUpstreams),
             StartsWith("test.yaml:2:17: limits.max_sessions: must be at least "
                        "limits.max_sessions_per_caller"));
  CHECK_THAT(error_loading(std::string("limits:\n  max_sesions: 10\n") + kUpstreams),
             Contains("did you mean 'max_sessions'?"));
}
