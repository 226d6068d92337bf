#include <catch2/catch.hpp>

#include <unistd.h>

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
