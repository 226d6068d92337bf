#include "membrane/app/thread_cache.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace membrane::app {

namespace {

constexpr std::string_view cache_depth_name = "glibc.malloc.tcache_count=";

bool sets_cache_depth(std::string_view tunables) {
  // GLIBC_TUNABLES is a colon-separated list of name=value.
  std::size_t start = 0;
  while (start <= tunables.size()) {
    const auto end = std::min(tunables.find(':', start), tunables.size());
    if (tunables.substr(start, end - start).starts_with(cache_depth_name)) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

std::optional<std::string> tunables_with_deeper_cache(const char* current) {
  const std::string_view tunables = current ? current : "";
  if (sets_cache_depth(tunables)) return std::nullopt;
  std::string value(tunables);
  if (!value.empty()) value += ':';
  value += deeper_thread_cache;
  return value;
}

std::optional<std::string> tunables_without_deeper_cache(const char* current) {
  if (!current) return std::nullopt;
  const std::string_view tunables = current;
  if (tunables == deeper_thread_cache) return std::nullopt;
  const std::string suffix = ":" + std::string(deeper_thread_cache);
  if (tunables.ends_with(suffix))
    return std::string(tunables.substr(0, tunables.size() - suffix.size()));
  return std::string(tunables);
}

void start_with_deeper_thread_cache(char** argv) {
#if defined(__GLIBC__)
  const char* current = std::getenv("GLIBC_TUNABLES");
  if (const auto deeper = tunables_with_deeper_cache(current)) {
    const std::optional<std::string> before =
        current ? std::optional<std::string>(current) : std::nullopt;
    // /proc/self/exe is this binary even when it was started through a relative path or $PATH.
    if (::setenv("GLIBC_TUNABLES", deeper->c_str(), 1) == 0) ::execv("/proc/self/exe", argv);
    // Not started again (no /proc, say): serve with glibc's default depth, as before.
    if (before) {
      ::setenv("GLIBC_TUNABLES", before->c_str(), 1);
    } else {
      ::unsetenv("GLIBC_TUNABLES");
    }
    return;
  }
  // glibc read the tunables when this process started; the children get the operator's value.
  if (const auto original = tunables_without_deeper_cache(current)) {
    ::setenv("GLIBC_TUNABLES", original->c_str(), 1);
  } else {
    ::unsetenv("GLIBC_TUNABLES");
  }
#else
  (void)argv;
#endif
}

}  // namespace membrane::app
