// Process-wide leveled logging to stderr. One line per event, written with a single write(2) so
// lines from different worker threads never interleave.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace membrane::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

void set_level(Level level);
Level level();
bool enabled(Level level);
// Accepts "error", "warn", "info", "debug"; returns false for anything else.
bool parse_level(std::string_view text, Level& out);
void write(Level level, std::string_view message);

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

template <class... Parts>
void error(const Parts&... parts) {
  if (enabled(Level::error)) write(Level::error, detail::concat(parts...));
}
template <class... Parts>
void warn(const Parts&... parts) {
  if (enabled(Level::warn)) write(Level::warn, detail::concat(parts...));
}
template <class... Parts>
void info(const Parts&... parts) {
  if (enabled(Level::info)) write(Level::info, detail::concat(parts...));
}
template <class... Parts>
void debug(const Parts&... parts) {
  if (enabled(Level::debug)) write(Level::debug, detail::concat(parts...));
}

}  // namespace membrane::log
