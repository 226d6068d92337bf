// Lexical path and glob matching for path_within() and `glob`: no file system access.
#include "policy/expression.hpp"

namespace membrane::policy {

bool normalize_path(std::string_view path, std::string_view home, std::string& out) {
  out.clear();
  if (path.empty()) return false;
  std::string_view head;
  if (path.front() == '~' && (path.size() == 1 || path[1] == '/')) {
    head = home;
    path.remove_prefix(1);
  } else if (path.front() != '/') {
    return false;  // relative to a working directory the gateway cannot know
  }
  out.push_back('/');
  const auto consume = [&out](std::string_view part) {
    while (!part.empty()) {
      while (!part.empty() && part.front() == '/')
        part.remove_prefix(1);
      const auto slash = part.find('/');
      const std::string_view segment = part.substr(0, slash);
      part = slash == std::string_view::npos ? std::string_view() : part.substr(slash);
      if (segment.empty() || segment == ".") continue;
      if (segment == "..") {
        if (out.size() > 1) {
          out.pop_back();
          out.erase(out.rfind('/') + 1);
        }
        continue;
      }
      out.append(segment);
      out.push_back('/');
    }
  };
  consume(head);
  consume(path);
  if (out.size() > 1) out.pop_back();
  return true;
}

bool path_within(std::string_view path, std::string_view prefix, std::string_view home) {
  thread_local std::string normalized_path;
  thread_local std::string normalized_prefix;
  if (!normalize_path(path, home, normalized_path) ||
      !normalize_path(prefix, home, normalized_prefix)) {
    return false;
  }
  if (normalized_prefix == "/") return true;
  return normalized_path == normalized_prefix || (normalized_path.starts_with(normalized_prefix) &&
                                                  normalized_path[normalized_prefix.size()] == '/');
}

}  // namespace membrane::policy
