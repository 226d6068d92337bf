// Writes N audit records through the gateway's own writer (AuditLog::submit, group commit), shaped
// like a busy gateway's: 50 callers, 5 upstreams, 30 tools, 5 calls per transaction, 85 % allowed,
// 10 % denied by 12 rules, times spread over the last `hours` hours. bench/console_search.sh
// searches the result through the console.
//   membrane_bench_audit_fill FILE RECORDS [HOURS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "membrane/audit/audit_log.hpp"

using namespace membrane;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s FILE RECORDS [HOURS]\n", argv[0]);
    return 2;
  }
  const std::string file = argv[1];
  const long records = std::atol(argv[2]);
  const double hours = argc > 3 ? std::atof(argv[3]) : 24.0;
  audit::AuditOptions options;
  options.path = file;
  audit::AuditLog log(std::move(options));
  std::mt19937_64 random(42);
  const auto now = std::chrono::system_clock::now();
  const auto span = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double, std::ratio<3600>>(hours));
  const char* upstreams[] = {"everything", "files", "github", "tickets", "search"};
  for (long i = 0; i < records; ++i) {
    audit::PendingRecord pending;
    pending.time = now - span + span * i / records;
    const auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
    const int upstream = pick(5);
    const int tool = pick(30);
    const long txn = i / 5;
    const int roll = pick(100);
    auto& fields = pending.fields;
    fields.emplace_back("identity", "user-" + std::to_string(pick(50)) + "@example.com");
    fields.emplace_back("txn",
                        "txn-" + std::to_string(txn) + "-" + std::to_string(txn * 7919 % 100003));
    fields.emplace_back("client",
                        "10.0.0." + std::to_string(pick(200)) + ":5" + std::to_string(pick(9999)));
    fields.emplace_back("method", "tools/call");
    fields.emplace_back("server", upstreams[upstream]);
    fields.emplace_back("protocol", "2025-11-25");
    fields.emplace_back("upstream_protocol", "2025-11-25");
    fields.emplace_back("tool", std::string(upstreams[upstream]) + "_tool_" + std::to_string(tool));
    fields.emplace_back("request_id", static_cast<std::int64_t>(i % 1000));
    if (roll < 10) {
      fields.emplace_back("verdict", "deny");
      fields.emplace_back("rules", audit::Json::array({"deny-rule-" + std::to_string(pick(12))}));
    } else if (roll < 13) {
      fields.emplace_back("verdict", "ask");
      fields.emplace_back("rules", audit::Json::array({"confirm-destructive"}));
      fields.emplace_back("policy_note", roll == 10 ? "declined" : "approved");
    } else if (roll < 15) {
      fields.emplace_back("verdict", "redact");
      fields.emplace_back("rules", audit::Json::array({"mask-secrets"}));
    } else {
      fields.emplace_back("verdict", "allow");
    }
    fields.emplace_back("status", static_cast<std::int64_t>(200));
    fields.emplace_back("outcome", "answered");
    fields.emplace_back("latency_us", static_cast<std::int64_t>(200 + pick(5000)));
    char trace[33];
    std::snprintf(trace, sizeof trace, "%016llx%016llx", static_cast<unsigned long long>(random()),
                  static_cast<unsigned long long>(random()));
    fields.emplace_back("trace_id", std::string(trace));
    pending.arguments = {{"path", "/srv/data/file-" + std::to_string(pick(100000)) + ".txt"}};
    pending.session_id = "session-" + std::to_string(txn / 4);
    log.submit(std::move(pending));
  }
  return 0;
}
