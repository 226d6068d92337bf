#include <catch2/catch.hpp>

#include "membrane/app/thread_cache.hpp"

using membrane::app::deeper_thread_cache;
using membrane::app::tunables_with_deeper_cache;
using membrane::app::tunables_without_deeper_cache;

TEST_CASE("serve deepens glibc's per-thread cache unless the environment sets its depth") {
  const std::string deeper(deeper_thread_cache);
  CHECK(tunables_with_deeper_cache(nullptr) == deeper);
  CHECK(tunables_with_deeper_cache("") == deeper);
  CHECK(tunables_with_deeper_cache("glibc.malloc.arena_max=2") ==
        "glibc.malloc.arena_max=2:" + deeper);
  // The operator's depth stands, wherever it is in the list.
  CHECK_FALSE(tunables_with_deeper_cache("glibc.malloc.tcache_count=7"));
  CHECK_FALSE(tunables_with_deeper_cache("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"));
  CHECK_FALSE(tunables_with_deeper_cache(deeper.c_str()));
  // Names that only contain it are other tunables.
  CHECK(tunables_with_deeper_cache("xglibc.malloc.tcache_count=7") ==
        "xglibc.malloc.tcache_count=7:" + deeper);
}

TEST_CASE("the processes serve starts get GLIBC_TUNABLES as the operator set it") {
  const std::string deeper(deeper_thread_cache);
  CHECK_FALSE(tunables_without_deeper_cache(nullptr));
  CHECK_FALSE(tunables_without_deeper_cache(deeper.c_str()));
  CHECK(tunables_without_deeper_cache(("glibc.malloc.arena_max=2:" + deeper).c_str()) ==
        "glibc.malloc.arena_max=2");
  CHECK(tunables_without_deeper_cache("glibc.malloc.tcache_count=7") ==
        "glibc.malloc.tcache_count=7");
  // Each added value taken back out gives what was there before it was added.
  for (const char* before :
       {"glibc.malloc.arena_max=2", "glibc.mem.tagging=0:glibc.malloc.mxfast=0"}) {
    const auto added = tunables_with_deeper_cache(before);
    REQUIRE(added);
    CHECK(tunables_without_deeper_cache(added->c_str()) == std::string(before));
  }
}
