#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <future>
#include <thread>

#include <filesystem>
#include <fstream>

#include "membrane/audit/audit_log.hpp"

using namespace membrane::audit;

namespace {
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("membrane-audit-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

// Every line of an audit file, parsed.
std::vector<Json> records_in(const std::string& path) {
  std::ifstream in(path);
  std::vector<Json> records;
  for (std::string line; std::getline(in, line);)
    records.push_back(Json::parse(line));
  return records;
}
}  // namespace

TEST_CASE("a line hashes its own text and names the previous line's hash") {
  const std::string line =
      chain_line({{"method", "tools/call"}, {"seq", 99}}, std::string(64, 'a'), 7);
  CHECK(line.rfind("{\"seq\":7,\"prev\":\"" + std::string(64, 'a') + "\"", 0) == 0);
  const auto record = Json::parse(line);
  CHECK(record["method"] == "tools/call");
  CHECK(record["seq"] == 7);  // the record cannot choose its own place in the chain
  CHECK(record["hash"].get<std::string>().size() == 64);
}

TEST_CASE("the writer continues the chain of an existing file") {
  const std::string path = temp_path("resume.log");
  std::filesystem::remove(path);
  {
    AuditLog log(path, FsyncPolicy::none);
    CHECK(log.append({{"n", 1}}));
    CHECK(log.append({{"n", 2}}));
  }
  {
    AuditLog log(path, FsyncPolicy::every_record);
    CHECK(log.append({{"n", 3}}));
    CHECK(log.records_written() == 1);
  }
  const auto result = verify_files({path});
  CHECK(result.ok);
  CHECK(result.records == 3);
  std::filesystem::remove(path);
}

TEST_CASE("a partial last line from a crash is tolerated and ended before the next record") {
  const std::string path = temp_path("crash.log");
  std::filesystem::remove(path);
  {
    AuditLog log(path, FsyncPolicy::none);
    log.append({{"n", 1}});
  }
  std::ofstream(path, std::ios::app) << "{\"seq\":2,\"prev\":\"cut off mid-wri";
  auto result = verify_files({path});
  CHECK(result.ok);
  CHECK(result.incomplete_tail);
  CHECK(result.records == 1);
  {
    AuditLog log(path, FsyncPolicy::none);
    log.append({{"n", 2}});
  }
  // The partial line now sits between complete ones: skipped, the chain runs on past it.
  result = verify_files({path});
  CHECK(result.ok);
  CHECK(result.records == 2);
  CHECK(result.interrupted_writes == 1);
  // A crash, a restart that only ends the partial line, and another restart: still resumable.
  std::ofstream(path, std::ios::app) << "{\"seq\":3,\"prev\":\"cut";
  { AuditLog ended(path, FsyncPolicy::none); }
  {
    AuditLog again(path, FsyncPolicy::none);
    CHECK(again.append({{"n", 3}}));
  }
  result = verify_files({path});
  CHECK(result.ok);
  CHECK(result.records == 3);
  std::filesystem::remove(path);
}

TEST_CASE("a damaged last line stops the writer instead of extending a broken chain") {
  const std::string path = temp_path("damaged.log");
  // A record whose text no longer matches its hash: someone edited it.
  std::ofstream(path) << "{\"seq\":1,\"prev\":\"" << std::string(64, '0')
                      << "\",\"n\":2,\"hash\":\"" << std::string(64, 'f') << "\"}\n";
  CHECK_THROWS_WITH(AuditLog(path, FsyncPolicy::none), Catch::Contains("last line is damaged"));
  std::filesystem::remove(path);
}

namespace {
// Lowers this process's file-size limit (RLIMIT_FSIZE) for as long as it lives: a real failing
// write(2) (EFBIG), the way a full disk fails one (ENOSPC).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() { lift(); }
  void lift() {
    if (lifted_) return;
    lifted_ = true;
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit saved_{};
  void (*previous_handler_)(int) = nullptr;
  bool lifted_ = false;
};
}  // namespace

TEST_CASE(
    "a write that fails holds the record back, and the first write after it tells of the gap") {
  const std::string path = temp_path("full.log");
  std::filesystem::remove(path);
  {
    AuditLog log(path, FsyncPolicy::none);
    REQUIRE(log.append({{"n", 1}}));
    FileSizeLimit limit(std::filesystem::file_size(path) + 10);  // the next line is cut short
    CHECK_FALSE(log.append({{"n", 2}}, {{"answer_withheld", true}}));
    CHECK_FALSE(log.writable());
    CHECK_FALSE(log.append({{"n", 3}}));
    CHECK_FALSE(log.retry());
    log.count_refused();
    CHECK(log.records_held_back() == 2);
    CHECK(log.write_failures() >= 3);
    CHECK(log.problem().find("File too large") != std::string::npos);
    // The cut line was taken back: the file holds whole lines only.
    CHECK(verify_files({path}).ok);
    CHECK_FALSE(verify_files({path}).incomplete_tail);
    limit.lift();
    CHECK(log.retry());
    CHECK(log.writable());
    CHECK(log.records_held_back() == 0);
    CHECK(log.append({{"n", 4}}));
  }
  const auto result = verify_files({path});
  CHECK(result.ok);
  CHECK(result.records == 5);
  const auto records = records_in(path);
  REQUIRE(records.size() == 5);
  CHECK(records[1]["type"] == "gap");
  CHECK(records[1]["late"] == 2);
  CHECK(records[1]["refused"] == 1);
  CHECK(records[1]["lost"] == 0);
  CHECK(records[2]["n"] == 2);
  CHECK(records[2]["answer_withheld"] == true);
  CHECK(records[3]["n"] == 3);
  CHECK(records[4]["n"] == 4);
  std::filesystem::remove(path);
}

TEST_CASE("past max_held_back records are lost, and counted") {
  const std::string path = temp_path("lost.log");
  std::filesystem::remove(path);
  {
    AuditOptions options;
    options.path = path;
    options.max_held_back = 2;
    AuditLog log(options);
    REQUIRE(log.append({{"n", 0}}));
    FileSizeLimit limit(std::filesystem::file_size(path));
    for (int n = 1; n <= 5; ++n)
      CHECK_FALSE(log.append({{"n", n}}));
    CHECK(log.records_held_back() == 2);
    CHECK(log.records_lost() == 3);
    limit.lift();
    CHECK(log.retry());
  }
  const auto records = records_in(path);
  REQUIRE(records.size() == 4);
  CHECK(records[1]["type"] == "gap");
  CHECK(records[1]["lost"] == 3);
  CHECK(records[2]["n"] == 1);
  CHECK(records[3]["n"] == 2);
  CHECK(verify_files({path}).ok);
  std::filesystem::remove(path);
}

TEST_CASE("submitted records are chained by the writer thread in order, and each is reported") {
  const std::string path = temp_path("submit.log");
  std::filesystem::remove(path);
  constexpr int threads = 4;
  constexpr int per_thread = 250;
  std::atomic<int> reported_written{0};
  {
    AuditLog log(path, FsyncPolicy::none);
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t) {
      submitters.emplace_back([&log, &reported_written, t] {
        for (int n = 0; n < per_thread; ++n) {
          PendingRecord pending;
          pending.fields = {{"thread", t}, {"n", n}};
          pending.arguments = {{"path", "/x"}};
          pending.done = [&reported_written](bool written) {
            if (written) reported_written.fetch_add(1);
          };
          log.submit(std::move(pending));
        }
      });
    }
    for (auto& submitter : submitters)
      submitter.join();
    // The destructor writes what is still queued before it closes the file.
  }
  CHECK(reported_written.load() == threads * per_thread);
  const auto result = verify_files({path});
  CHECK(result.ok);
  CHECK(result.records == threads * per_thread);
  std::vector<int> next(threads, 0);
  for (const auto& record : records_in(path)) {
    const int thread = record["thread"];
    // Each submitter's records keep their order in the chain.
    CHECK(record["n"] == next[thread]++);
    // What the writer did for the caller: the time, and the digest of the arguments.
    CHECK(record["time"].get<std::string>().size() == 24);
    CHECK(record["args_sha256"] ==
          "3dac3d9396c816b7e4926c7c4b8f17dd0e6c5a306b4362f05218096095062dd2");
    CHECK_FALSE(record.contains("arguments"));
  }
  std::filesystem::remove(path);
}

TEST_CASE("a submitted record that cannot be written is reported, held back and written late") {
  const std::string path = temp_path("submit-full.log");
  std::filesystem::remove(path);
  {
    AuditLog log(path, FsyncPolicy::none);
    REQUIRE(log.append({{"n", 0}}));
    std::promise<bool> reported;
    {
      FileSizeLimit limit(std::filesystem::file_size(path) + 10);
      PendingRecord pending;
      pending.fields = {{"n", 1}};
      pending.if_held_back = {{"answer_withheld", true}};
      pending.done = [&reported](bool written) { reported.set_value(written); };
      log.submit(std::move(pending));
      CHECK_FALSE(reported.get_future().get());
      CHECK(log.records_held_back() == 1);
      CHECK_FALSE(log.writable());
    }
    CHECK(log.retry());
  }
  const auto records = records_in(path);
  REQUIRE(records.size() == 3);
  CHECK(records[1]["type"] == "gap");
  CHECK(records[2]["n"] == 1);
  CHECK(records[2]["answer_withheld"] == true);
  CHECK(verify_files({path}).ok);
  std::filesystem::remove(path);
}

TEST_CASE("a submitted record's fields are written sorted by key, each as its JSON value") {
  const std::string path = temp_path("submit-fields.log");
  std::filesystem::remove(path);
  {
    AuditLog log(path, FsyncPolicy::none);
    std::promise<bool> reported;
    PendingRecord pending;
    pending.fields = {{"zeta", nullptr},
                      {"tool", "read \"quoted\"\n"},
                      {"ok", true},
                      {"latency_us", std::int64_t{-3}},
                      {"count", std::uint64_t{18446744073709551615ULL}},
                      {"rules", Json::array({"a", "b"})},
                      {"mixed", Json::parse(R"([null,true,1,-2,1.5,"x\u0001",{"k":[1]},[]])")},
                      {"flag", Json(false)},
                      {"none", Json(nullptr)},
                      {"arguments", Json::parse(R"({"b":[1,{"c":null}],"a":"\u00e9"})")},
                      {"request_id", Json("abc")},
                      {"time", "2026-01-01T00:00:00.000Z"}};
    pending.session_id = "m1.some-session";
    pending.done = [&reported](bool written) { reported.set_value(written); };
    log.submit(std::move(pending));
    CHECK(reported.get_future().get());
  }
  std::ifstream in(path);
  std::string line;
  REQUIRE(std::getline(in, line));
  // The members after the chain's: sorted, the time given kept, the session's digest added.
  CHECK(line.find(R"("arguments":{"a":"é","b":[1,{"c":null}]},)"
                  R"("count":18446744073709551615,"flag":false,"latency_us":-3,)"
                  R"("mixed":[null,true,1,-2,1.5,"x\u0001",{"k":[1]},[]],"none":null,"ok":true,)"
                  R"("request_id":"abc","rules":["a","b"],"session":")") != std::string::npos);
  CHECK(line.find(R"("time":"2026-01-01T00:00:00.000Z","tool":"read \"quoted\"\n","zeta":null,)"
                  R"("hash":")") != std::string::npos);
  const auto records = records_in(path);
  REQUIRE(records.size() == 1);
  CHECK(records[0]["session"].get<std::string>().size() == 16);
  CHECK(verify_files({path}).ok);
  std::filesystem::remove(path);
}
