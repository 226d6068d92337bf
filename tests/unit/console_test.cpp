// The console's building blocks: searching audit files, the live feed's ring, the charts, and
// the queue of calls waiting for an approver.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "console/console_stats.hpp"
#include "console/decision_feed.hpp"
#include "gateway/console_approvals.hpp"
#include "membrane/audit/audit_log.hpp"
#include "membrane/audit/audit_search.hpp"
#include "membrane/policy/policy.hpp"

using membrane::audit::Json;
namespace audit = membrane::audit;

namespace {

// A fresh path for a log: the file and its rotations from an earlier run are removed.
std::string temp_path(const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("membrane-console-" + std::to_string(::getpid()) + "-" + name);
  for (const auto& entry : std::filesystem::directory_iterator(path.parent_path())) {
    const std::string other = entry.path().string();
    if (other == path.string() || other.rfind(path.string() + ".", 0) == 0)
      std::filesystem::remove(entry.path());
  }
  return path.string();
}

// `count` records through the real writer: txn t<i % 7>, identity u<i % 3>, tool tool<i % 5>,
// every fourth denied by rule r<i % 2>, time 2026-12-07T10:<i / 60>:<i % 60>.
std::string write_log(const std::string& name, int count, std::uint64_t rotate = 0) {
  const std::string path = temp_path(name);
  audit::AuditOptions options;
  options.path = path;
  options.rotate_bytes = rotate;
  audit::AuditLog log(options);
  for (int i = 0; i < count; ++i) {
    char time[40];
    std::snprintf(time, sizeof time, "2026-12-07T10:%02d:%02d.000Z", (i / 60) % 60, i % 60);
    Json record = {{"i", i},
                   {"time", time},
                   {"txn", "t" + std::to_string(i % 7)},
                   {"identity", "u" + std::to_string(i % 3)},
                   {"tool", "tool" + std::to_string(i % 5)},
                   {"server", i % 2 ? "odd" : "even"},
                   {"latency_us", 100 + i}};
    if (i % 4 == 0) {
      record["verdict"] = "deny";
      record["rules"] = Json::array({"r" + std::to_string(i % 2)});
    } else {
      record["verdict"] = "allow";
    }
    REQUIRE(log.append(record));
  }
  return path;
}

std::vector<int> indexes(const std::vector<Json>& records) {
  std::vector<int> found;
  for (const auto& record : records)
    found.push_back(record["i"].get<int>());
  return found;
}

}  // namespace

TEST_CASE("a search finds what the full query finds, newest first") {
  const std::string path = write_log("search.jsonl", 300);
  const std::vector<audit::QueryFilter> filters = [] {
    std::vector<audit::QueryFilter> list(7);
    list[0].txn = "t3";
    list[1].identity = "u1";
    list[1].tool = "tool2";
    list[2].verdict = "deny";
    list[3].rule = "r0";
    list[4].upstream = "odd";
    list[4].since = "2026-12-07T10:02";
    list[5].until = "2026-12-07T10:01:30";
    list[6].txn = "nobody";
    return list;
  }();
  for (const auto& filter : filters) {
    auto expected = audit::query_files({path}, filter);
    std::reverse(expected.begin(), expected.end());
    const auto found = audit::search_files({path}, filter, 1000, {});
    CHECK(indexes(found.records) == indexes(expected));
    CHECK(found.scan.error.empty());
  }
}

TEST_CASE("a search pages with a cursor and reads across rotated files") {
  // Small files: the log rotates every few records, so pages cross files.
  const std::string path = write_log("paged.jsonl", 120, 2000);
  std::vector<std::string> files = {path};
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    const std::string name = entry.path().string();
    if (name.rfind(path + ".", 0) == 0) files.push_back(name);
  }
  REQUIRE(files.size() > 3);
  // Newest first: the files by the chain position of their first line, highest first.
  std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    const auto first = [](const std::string& file) {
      std::ifstream in(file);
      std::string line;
      std::getline(in, line);
      return Json::parse(line)["seq"].get<std::uint64_t>();
    };
    return first(a) > first(b);
  });
  audit::QueryFilter filter;
  filter.identity = "u2";
  std::vector<int> all;
  audit::ScanOptions options;
  for (int page = 0; page < 100; ++page) {
    const auto found = audit::search_files(files, filter, 7, options);
    REQUIRE(found.scan.error.empty());
    for (const int i : indexes(found.records))
      all.push_back(i);
    if (!found.scan.next) break;
    // The cursor survives its text form.
    options.start = audit::decode_cursor(audit::encode_cursor(*found.scan.next));
    REQUIRE(options.start);
  }
  std::vector<int> expected;
  for (int i = 119; i >= 0; --i) {
    if (i % 3 == 2) expected.push_back(i);
  }
  CHECK(all == expected);
}

TEST_CASE("a search stops at its byte limit with a cursor to go on from") {
  const std::string path = write_log("limited.jsonl", 200);
  audit::QueryFilter filter;
  filter.txn = "t0";
  audit::ScanOptions options;
  options.block_bytes = 2048;
  options.max_scan_bytes = 1;  // one block per search, then stop
  std::vector<int> all;
  int searches = 0;
  for (; searches < 1000; ++searches) {
    const auto found = audit::search_files({path}, filter, 1000, options);
    REQUIRE(found.scan.error.empty());
    CHECK(found.scan.scanned_bytes <= 2048 + 512);  // a block, rounded to whole lines
    for (const int i : indexes(found.records))
      all.push_back(i);
    if (!found.scan.next) break;
    CHECK(found.scan.limited);
    options.start = found.scan.next;
  }
  CHECK(searches > 5);
  std::vector<int> expected;
  for (int i = 199; i >= 0; --i) {
    if (i % 7 == 0) expected.push_back(i);
  }
  CHECK(all == expected);
}

TEST_CASE("a cursor that names another file, or no cursor at all, is refused") {
  CHECK_FALSE(audit::decode_cursor("not base64 !"));
  CHECK_FALSE(audit::decode_cursor(""));
  const std::string path = write_log("cursor.jsonl", 10);
  audit::ScanOptions options;
  options.start = audit::SearchCursor{"/etc/passwd", 100};
  const auto found = audit::search_files({path}, {}, 10, options);
  CHECK_FALSE(found.scan.error.empty());
  CHECK(found.records.empty());
}

TEST_CASE("checkpoints are not records, and a half-written last line is not read") {
  const std::string path = temp_path("partial.jsonl");
  {
    audit::AuditOptions options;
    options.path = path;
    options.signing_key = membrane::identity::Jwk::generate_es256("k1");
    options.checkpoint_every = 2;
    audit::AuditLog log(options);
    for (int i = 0; i < 5; ++i)
      REQUIRE(log.append({{"i", i}, {"tool", "x"}}));
  }
  std::ofstream(path, std::ios::app) << R"({"seq":99,"i":99,"tool":"x")";
  const auto found = audit::search_files({path}, {}, 100, {});
  CHECK(indexes(found.records) == std::vector<int>{4, 3, 2, 1, 0});
}

TEST_CASE("the live feed hands each reader what was written since, and says what it missed") {
  membrane::console::DecisionFeed feed(3);
  const auto start = feed.head();
  feed.publish("{\"a\":1}\n{\"type\":\"checkpoint\"}\n{\"a\":2}\n");
  auto batch = feed.read(start, 10);
  CHECK(batch.lines == std::vector<std::string>{"{\"a\":1}", "{\"a\":2}"});
  CHECK(batch.missed == 0);
  feed.publish("{\"a\":3}\n{\"a\":4}\n{\"a\":5}\n{\"a\":6}\n");
  batch = feed.read(batch.next, 10);
  CHECK(batch.missed == 1);
  CHECK(batch.lines == std::vector<std::string>{"{\"a\":4}", "{\"a\":5}", "{\"a\":6}"});
  CHECK(feed.read(batch.next, 10).lines.empty());
}

TEST_CASE("the charts count calls per minute by verdict and upstream, and latency per upstream") {
  using namespace std::chrono;
  // 10:05:30 UTC on 2026-12-07.
  const auto to = sys_days(year(2026) / 12 / 7) + hours(10) + minutes(5) + seconds(30);
  membrane::console::CallStats stats(to, 3);
  CHECK(stats.from_text() == "2026-12-07T10:03");
  CHECK(stats.to_text() == "2026-12-07T10:06");
  const auto record = [](const char* time, const char* verdict, const char* server, int latency) {
    Json json = {
        {"time", time}, {"server", server}, {"latency_us", latency}, {"method", "tools/call"}};
    if (verdict) json["verdict"] = verdict;
    if (verdict && std::string(verdict) == "deny") json["rules"] = {"no-rm"};
    return json;
  };
  stats.add(record("2026-12-07T10:03:01.000Z", "allow", "a", 100));
  stats.add(record("2026-12-07T10:03:59.000Z", "deny", "a", 300));
  stats.add(record("2026-12-07T10:05:00.000Z", nullptr, "b", 50));
  stats.add(record("2026-12-07T10:02:59.000Z", "allow", "a", 1));  // before the window
  stats.add({{"type", "gap"}, {"time", "2026-12-07T10:04:00.000Z"}});
  stats.add({{"method", "initialize"}, {"time", "2026-12-07T10:04:00.000Z"}, {"latency_us", 9}});
  const Json result = stats.result();
  CHECK(result["buckets"] == Json({"2026-12-07T10:03", "2026-12-07T10:04", "2026-12-07T10:05"}));
  CHECK(result["by_verdict"]["allow"] == Json({1, 0, 0}));
  CHECK(result["by_verdict"]["deny"] == Json({1, 0, 0}));
  CHECK(result["by_verdict"]["none"] == Json({0, 0, 1}));
  CHECK(result["by_upstream"]["a"] == Json({2, 0, 0}));
  CHECK(result["top_denied_rules"] == Json::parse(R"([{"rule":"no-rm","count":1}])"));
  CHECK(result["latency"][0]["upstream"] == "a");
  CHECK(result["latency"][0]["calls"] == 2);
  CHECK(result["latency"][0]["p50_us"] == 300);
  CHECK(result["latency"][1]["p99_us"] == 50);
}

TEST_CASE("a call waits in the console's queue until an approver answers it") {
  membrane::asio::io_context context;
  membrane::gateway::ConsoleApprovals approvals({std::chrono::seconds(30), "replica-a"});
  std::optional<membrane::gateway::ApprovalDecision> decision;
  std::string id;
  membrane::asio::co_spawn(
      context,
      [&]() -> membrane::awaitable<void> {
        auto waiting = approvals.open({{"tool", "rm"}}, context.get_executor());
        id = waiting->id();
        decision =
            co_await waiting->wait(std::chrono::steady_clock::now() + std::chrono::seconds(5));
      },
      membrane::asio::detached);
  context.run_one();  // the waiter opens its entry and waits
  REQUIRE(approvals.waiting() == 1);
  bool listed = false;
  membrane::asio::co_spawn(
      context,
      [&]() -> membrane::awaitable<void> {
        const auto entries = co_await approvals.list();
        listed = entries.size() == 1 && entries[0]["tool"] == "rm" && entries[0]["id"] == id &&
                 entries[0]["replica"] == "replica-a";
        // Named first: GCC 12 frees a braced temporary in a co_await's arguments twice.
        const std::string nobody = "ap-nobody";
        membrane::gateway::ApprovalDecision yes{true, "alice", ""};
        const auto unknown = co_await approvals.answer(nobody, yes);
        CHECK(unknown == membrane::gateway::ConsoleApprovals::Answered::unknown);
        membrane::gateway::ApprovalDecision no{false, "alice", "not now"};
        const auto answered = co_await approvals.answer(id, no);
        CHECK(answered == membrane::gateway::ConsoleApprovals::Answered::delivered);
      },
      membrane::asio::detached);
  context.run();
  CHECK(listed);
  REQUIRE(decision);
  CHECK_FALSE(decision->approved);
  CHECK(decision->approver == "alice");
  CHECK(decision->reason == "not now");
  CHECK(approvals.waiting() == 0);
}

TEST_CASE("an approval nobody gives times out") {
  membrane::asio::io_context context;
  membrane::gateway::ConsoleApprovals approvals({std::chrono::seconds(30), "r"});
  bool timed_out = false;
  membrane::asio::co_spawn(
      context,
      [&]() -> membrane::awaitable<void> {
        auto waiting = approvals.open(Json::object(), context.get_executor());
        const auto decision = co_await waiting->wait(std::chrono::steady_clock::now() +
                                                     std::chrono::milliseconds(20));
        timed_out = !decision.has_value();
      },
      membrane::asio::detached);
  context.run();
  CHECK(timed_out);
  CHECK(approvals.waiting() == 0);
}

TEST_CASE("ask rules name their approvers; other rules cannot") {
  const auto policy = membrane::policy::Policy::parse(R"(
- rule: a
  condition: tool.name == "x"
  verdict: ask
  approver: console
- rule: b
  condition: tool.name == "y"
  verdict: ask
  approver: [user, console]
- rule: c
  condition: tool.name == "z"
  verdict: ask
)",
                                                      "p.yaml");
  const auto& rules = policy.rules();
  const auto find = [&](const std::string& id) {
    return *std::find_if(rules.begin(), rules.end(),
                         [&](const auto& rule) { return rule.id == id; });
  };
  CHECK(find("a").approver_console);
  CHECK_FALSE(find("a").approver_user);
  CHECK(find("b").approver_console);
  CHECK(find("b").approver_user);
  CHECK_FALSE(find("c").approver_console);
  CHECK(find("c").approver_user);
  CHECK_THROWS_WITH(membrane::policy::Policy::parse(R"(
- rule: d
  condition: "true"
  verdict: deny
  approver: console
)",
                                                    "p.yaml"),
                    Catch::Contains("'approver' belongs to rules with 'verdict: ask'"));
  CHECK_THROWS_WITH(membrane::policy::Policy::parse(R"(
- rule: e
  condition: "true"
  verdict: ask
  approver: [console, boss]
)",
                                                    "p.yaml"),
                    Catch::Contains("unknown approver 'boss'") && Catch::Contains(":5:"));
}

TEST_CASE("a growing chain is verified from where the last check stopped") {
  const std::string path = temp_path("growing.jsonl");
  audit::AuditOptions options;
  options.path = path;
  auto log = std::make_unique<audit::AuditLog>(options);
  for (int i = 0; i < 10; ++i)
    REQUIRE(log->append({{"i", i}}));
  audit::VerifiedChain known;
  auto result = audit::verify_files_from({path}, nullptr, known);
  CHECK(result.ok);
  CHECK(result.records == 10);
  REQUIRE(known.files.size() == 1);
  const auto verified_bytes = known.files[0].size;

  for (int i = 10; i < 15; ++i)
    REQUIRE(log->append({{"i", i}}));
  result = audit::verify_files_from({path}, nullptr, known);
  CHECK(result.ok);
  CHECK(result.records == 15);
  CHECK(known.files[0].size > verified_bytes);
  CHECK(audit::verify_files({path}).records == 15);

  // A line added by hand after the writer's: found where it is, with its line number.
  {
    std::ofstream(path, std::ios::app) << R"({"seq":16,"prev":"00","hash":"00"})"
                                       << "\n";
  }
  result = audit::verify_files_from({path}, nullptr, known);
  CHECK_FALSE(result.ok);
  CHECK(result.line == 16);
  CHECK(known.files.empty());  // a problem: the next check starts from the start
}

TEST_CASE(
    "a line edited in place is found: in an earlier file at once, in the last from the start") {
  const std::string path = temp_path("edited.jsonl");
  std::vector<std::string> files;
  {
    audit::AuditOptions options;
    options.path = path;
    options.rotate_bytes = 600;  // a few records per file
    audit::AuditLog log(options);
    for (int i = 0; i < 12; ++i)
      REQUIRE(log.append({{"tool", "aaaa"}, {"i", i}}));
  }
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    const std::string name = entry.path().string();
    if (name == path || name.rfind(path + ".", 0) == 0) files.push_back(name);
  }
  REQUIRE(files.size() >= 3);
  const auto edit = [](const std::string& file) {
    std::string text;
    {
      std::ifstream in(file);
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const auto at = text.find("aaaa", text.find('\n') + 1);  // in line 2
    REQUIRE(at != std::string::npos);
    text.replace(at, 4, "bbbb");
    std::ofstream(file, std::ios::trunc) << text;
  };
  audit::VerifiedChain known;
  REQUIRE(audit::verify_files_from(files, nullptr, known).ok);
  // The last file: lines already checked are not read again...
  edit(path);
  CHECK(audit::verify_files_from(files, nullptr, known).ok);
  // ...until a check from the start.
  const auto from_start = audit::verify_files(files);
  CHECK_FALSE(from_start.ok);
  CHECK(from_start.file == path);
  CHECK(from_start.line == 2);
  // An earlier file that changed (size or modification time) is read again at once.
  // (The rotated files alone: a chain whose last file was not edited.)
  files.erase(std::find(files.begin(), files.end(), path));
  // Rotated files are named by the chain position that follows them: the smallest is the first.
  const std::string first_rotated = *std::min_element(
      files.begin(), files.end(), [&](const std::string& a, const std::string& b) {
        return std::stoull(a.substr(path.size() + 1)) < std::stoull(b.substr(path.size() + 1));
      });
  audit::VerifiedChain earlier;
  REQUIRE(audit::verify_files_from(files, nullptr, earlier).ok);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  edit(first_rotated);
  const auto again = audit::verify_files_from(files, nullptr, earlier);
  CHECK_FALSE(again.ok);
  CHECK(again.line == 2);
}
