#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "gateway/exchange/exchange.hpp"

using membrane::gateway::is_failure;
using membrane::gateway::is_upstream_failure;
using membrane::gateway::Outcome;
using membrane::gateway::to_string;

namespace {
constexpr Outcome every_outcome[] = {
    Outcome::ok,
    Outcome::error_response,
    Outcome::answered_by_gateway,
    Outcome::cached,
    Outcome::input_required,
    Outcome::left_to_resumption,
    Outcome::cancelled,
    Outcome::client_gone,
    Outcome::answer_withheld,
    Outcome::overloaded,
    Outcome::rejected,
    Outcome::session_not_found,
    Outcome::upstream_unavailable,
    Outcome::upstream_stream_broken,
};
}  // namespace

TEST_CASE("each exchange outcome has its own name, the one logs, metrics and audit records use") {
  std::set<std::string> names;
  for (const Outcome outcome : every_outcome) {
    const std::string name(to_string(outcome));
    INFO(name);
    CHECK(name != "unknown");
    CHECK(names.insert(name).second);
  }
  // Operators' dashboards and audit queries are written against these spellings.
  CHECK(to_string(Outcome::ok) == "ok");
  CHECK(to_string(Outcome::upstream_unavailable) == "upstream_unavailable");
  CHECK(to_string(Outcome::answer_withheld) == "answer_withheld");
}

TEST_CASE("one classification: answers and planned pauses are not failures") {
  for (const Outcome outcome : every_outcome) {
    INFO(to_string(outcome));
    const bool answered = outcome == Outcome::ok || outcome == Outcome::answered_by_gateway ||
                          outcome == Outcome::cached || outcome == Outcome::input_required;
    CHECK(is_failure(outcome) == !answered);
    // Every upstream failure is a failure of the exchange too.
    if (is_upstream_failure(outcome)) CHECK(is_failure(outcome));
  }
  CHECK(is_upstream_failure(Outcome::upstream_stream_broken));
  CHECK(is_upstream_failure(Outcome::session_not_found));
  CHECK_FALSE(is_upstream_failure(Outcome::client_gone));
  CHECK_FALSE(is_upstream_failure(Outcome::overloaded));
}
