#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "gateway/ended_sessions.hpp"
#include "gateway/responses.hpp"

using membrane::gateway::EndedSessions;

namespace {

std::filesystem::path fresh_file(const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("membrane-ended-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove(path);
  return path;
}

EndedSessions::Options with_file(const std::filesystem::path& path) {
  EndedSessions::Options options;
  options.file = path.string();
  return options;
}

}  // namespace

TEST_CASE("ended sessions are remembered by digest, bounded, and found again") {
  EndedSessions::Options options;
  options.capacity = 2;
  EndedSessions ended(options);
  CHECK_FALSE(ended.contains("m1.a"));
  const auto later = membrane::gateway::unix_now() + 3600;
  ended.add("m1.a", later);
  ended.add("m1.b", later);
  CHECK(ended.contains("m1.a"));
  ended.add("m1.c", later);
  CHECK_FALSE(ended.contains("m1.a"));  // the oldest fell out
  CHECK(ended.contains("m1.c"));
  CHECK(EndedSessions::digest_of("m1.a").size() == 32);
}

TEST_CASE("deletions of ids that have expired anyway are forgotten as new ones come") {
  EndedSessions ended;
  const auto now = membrane::gateway::unix_now();
  ended.add("m1.expired", now - 10);
  ended.add("m1.expiring-later", now + 3600);
  CHECK_FALSE(ended.contains("m1.expired"));
  CHECK(ended.contains("m1.expiring-later"));
  CHECK(ended.size() == 1);
}

TEST_CASE("the ended-sessions file survives a restart, drops expired and malformed entries") {
  const auto path = fresh_file("restart");
  const auto now = membrane::gateway::unix_now();
  {
    EndedSessions ended(with_file(path));
    ended.load_file();
    ended.add("m1.gone", now + 3600);
    ended.add("m1.expired", now - 10);
  }
  {
    std::ofstream append(path, std::ios::app);
    append << "not a line\n" << std::string(200, 'x') << "\n";
  }
  EndedSessions restarted(with_file(path));
  restarted.load_file();
  CHECK(restarted.contains("m1.gone"));
  CHECK_FALSE(restarted.contains("m1.expired"));
  CHECK_FALSE(restarted.contains("m1.other"));
  // Compacted: only the live entry is left, and the id itself is never written.
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text == EndedSessions::digest_of("m1.gone") + " " + std::to_string(now + 3600) + "\n");
  CHECK(text.find("m1.gone") == std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("an ended-sessions file that cannot be written stops start-up") {
  EndedSessions ended(with_file("/proc/membrane-nonexistent/ended"));
  CHECK_THROWS_AS(ended.load_file(), std::runtime_error);
}
