#include <catch2/catch.hpp>

#include "membrane/policy/policy.hpp"

using namespace membrane::policy;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    Policy::parse(yaml, "limits.yaml");
  } catch (const PolicyError& error) {
    return error.what();
  }
  return "(no error)";
}

CallContext tool_call(std::string_view tool, std::string_view subject, const Json* arguments) {
  CallContext call;
  call.method = "tools/call";
  call.server = "fs";
  call.tool = tool;
  call.identity_subject = subject;
  call.arguments = arguments;
  return call;
}

}  // namespace

TEST_CASE("limit entries parse rates, bursts and the fields they count by", "[policy][limits]") {
  const auto policy = Policy::parse(R"(
- macro: writes
  condition: tool.name in ["write_file", "edit_file"]
- limit: writes-per-user
  description: Writes per caller.
  condition: writes
  by: [identity.sub, server.name]
  rate: 30/minute
  burst: 5
  message: Slow down.
- limit: everything
  rate: 100/15m
- limit: off
  rate: 1/s
  enabled: false
)",
                                    "limits.yaml");
  REQUIRE(policy.limit_rules().size() == 2);
  const LimitInfo& writes = policy.limit_rules()[0];
  CHECK(writes.id == "writes-per-user");
  CHECK(writes.count == 30);
  CHECK(writes.period == std::chrono::minutes(1));
  CHECK(writes.burst == 5);
  CHECK(writes.refill_per_second() == Approx(0.5));
  CHECK(writes.by == std::vector<std::string>{"identity.sub", "server.name"});
  CHECK(writes.message == "Slow down.");
  CHECK(writes.line == 4);
  const LimitInfo& everything = policy.limit_rules()[1];
  CHECK(everything.period == std::chrono::minutes(15));
  CHECK(everything.burst == 100);  // the count when no burst is given

  const Json arguments = {{"path", "/tmp/x"}};
  auto charges = policy.limits(tool_call("write_file", "alice", &arguments));
  REQUIRE(charges.size() == 2);
  CHECK(charges[0].limit == &writes);
  CHECK(charges[0].bucket ==
        "writes-per-user\x1f"
        "alice\x1f"
        "fs");
  CHECK(charges[1].bucket == "everything");
  // Another caller, another bucket; a call the condition excludes, only the global limit.
  CHECK(policy.limits(tool_call("write_file", "bob", &arguments))[0].bucket ==
        "writes-per-user\x1f"
        "bob\x1f"
        "fs");
  charges = policy.limits(tool_call("read_file", "alice", &arguments));
  REQUIRE(charges.size() == 1);
  CHECK(charges[0].limit->id == "everything");
}

TEST_CASE("a limit counts by argument values, claims and headers as text", "[policy][limits]") {
  const auto policy = Policy::parse(R"(
- limit: per-path
  by: [args.path, args.depth, identity.claims.org, request.headers.X-Team]
  rate: 10/hour
)",
                                    "limits.yaml");
  CHECK(policy.uses_request_headers());
  const Json arguments = {{"path", "/srv"}, {"depth", 3}};
  const Json claims = {{"org", {{"id", 7}}}};
  const Json headers = {{"x-team", "blue"}};
  CallContext call = tool_call("list", "alice", &arguments);
  call.identity_claims = &claims;
  call.request_headers = &headers;
  const auto charges = policy.limits(call);
  REQUIRE(charges.size() == 1);
  CHECK(charges[0].bucket ==
        "per-path\x1f/srv\x1f"
        "3\x1f{\"id\":7}\x1f"
        "blue");
  // Absent values count as empty: calls without them share one bucket.
  CHECK(policy.limits(tool_call("list", "", nullptr))[0].bucket == "per-path\x1f\x1f\x1f\x1f");
}

TEST_CASE("limit mistakes are reported at file:line:col", "[policy][limits]") {
  CHECK_THAT(error_of("- limit: x\n"),
             Catch::Contains("limits.yaml:1:3") && Catch::Contains("needs a 'rate'"));
  CHECK_THAT(error_of("- limit: x\n  rate: 30\n"),
             Catch::Contains("limits.yaml:2:9") && Catch::Contains("needs a '/'"));
  CHECK_THAT(error_of("- limit: x\n  rate: 0/minute\n"), Catch::Contains("count of 1 or more"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/fortnight\n"),
             Catch::Contains("unknown period 'fortnight'"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/400d\n"), Catch::Contains("longer than a year"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/m\n  burst: 0\n"),
             Catch::Contains("limits.yaml:3:10") && Catch::Contains("'burst' must be from 1"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/m\n  by: [identity.nope]\n"),
             Catch::Contains("limits.yaml:3:8") && Catch::Contains("unknown field"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/m\n  by: [args.a == 1]\n"),
             Catch::Contains("one field per entry"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/m\n  condition: tool.name ==\n"),
             Catch::Contains("limits.yaml:3"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/m\n  per: [identity.sub]\n"),
             Catch::Contains("unknown key 'per' in a limit"));
  CHECK_THAT(error_of("- limit: x\n  rate: 3/m\n- limit: x\n  rate: 4/m\n"),
             Catch::Contains("limits.yaml:3:10") &&
                 Catch::Contains("already defined at limits.yaml:1:10"));
}
