#include "membrane/core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace membrane::log {
namespace {
std::atomic<int> current_level{static_cast<int>(Level::info)};

const char* level_name(Level level) {
  switch (level) {
    case Level::error:
      return "ERROR";
    case Level::warn:
      return "WARN ";
    case Level::info:
      return "INFO ";
    case Level::debug:
      return "DEBUG";
  }
  return "?";
}

// Messages quote what clients and upstreams sent (methods, tool names, stray lines): a line break
// in one would start a log line of the sender's making. Control characters other than tab are
// written as escapes, so every record is one line.
void append_one_line(std::string& line, std::string_view message) {
  static constexpr char hex[] = "0123456789abcdef";
  std::size_t plain_from = 0;
  for (std::size_t i = 0; i < message.size(); ++i) {
    const auto c = static_cast<unsigned char>(message[i]);
    if ((c >= 0x20 && c != 0x7f) || c == '\t') continue;
    line.append(message.data() + plain_from, i - plain_from);
    plain_from = i + 1;
    if (c == '\n') {
      line.append("\\n");
    } else if (c == '\r') {
      line.append("\\r");
    } else {
      line.append("\\x");
      line.push_back(hex[c >> 4]);
      line.push_back(hex[c & 15]);
    }
  }
  line.append(message.data() + plain_from, message.size() - plain_from);
}
}  // namespace

void set_level(Level level) {
  current_level.store(static_cast<int>(level));
}
Level level() {
  return static_cast<Level>(current_level.load());
}
bool enabled(Level level) {
  return static_cast<int>(level) <= current_level.load(std::memory_order_relaxed);
}

bool parse_level(std::string_view text, Level& out) {
  if (text == "error")
    out = Level::error;
  else if (text == "warn" || text == "warning")
    out = Level::warn;
  else if (text == "info")
    out = Level::info;
  else if (text == "debug")
    out = Level::debug;
  else
    return false;
  return true;
}

void write(Level level, std::string_view message) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t seconds = system_clock::to_time_t(now);
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[40];
  const auto stamp_length = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::string line;
  line.reserve(message.size() + 48);
  line.append(stamp, stamp_length);
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ ", static_cast<int>(millis));
  line.append(fraction);
  line.append(level_name(level));
  line.push_back(' ');
  append_one_line(line, message);
  line.push_back('\n');
  // A failed log write has nowhere to be reported; the gateway keeps serving.
  [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace membrane::log
