// glibc's per-thread cache of freed blocks holds 7 of each size by default. A worker serving
// dozens of calls at once allocates more than 7 blocks of a size before it frees any, so most of
// its allocations missed the cache and took malloc's slow path: about 3 µs of a bare call's CPU
// (bench/RESULTS.md, "seventh round"). The depth can only be set when a process starts, through
// GLIBC_TUNABLES, so `membrane serve` starts itself once more (same pid, same arguments) with a
// deeper cache, unless the environment already sets a depth: the operator's choice stands.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace membrane::app {

// The tunable `membrane serve` adds.
inline constexpr std::string_view deeper_thread_cache = "glibc.malloc.tcache_count=64";

// The GLIBC_TUNABLES value to start with (`current` is the value now, null when unset), or none
// when it already sets the cache's depth.
std::optional<std::string> tunables_with_deeper_cache(const char* current);

// GLIBC_TUNABLES as it was before `membrane serve` added to it (none: it was unset), for the
// processes the gateway starts: they get the environment the operator gave it.
std::optional<std::string> tunables_without_deeper_cache(const char* current);

// Before anything else in `membrane serve`: starts the process again with the deeper cache when
// the environment does not set a depth (returns only if that fails), and otherwise takes the
// added tunable back out of the environment the stdio upstreams inherit.
void start_with_deeper_thread_cache(char** argv);

}  // namespace membrane::app
