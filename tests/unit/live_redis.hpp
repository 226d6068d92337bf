// A real redis-server for the unit tests that need one (defined in redis_client_test.cpp): a
// child process on a free loopback port, stopped when the last handle goes. The tests fail,
// never skip, when Debian's redis-server is not installed.
#pragma once

#include <cstdint>
#include <memory>

namespace membrane::cluster::testing {

class LiveRedis;
std::shared_ptr<LiveRedis> start_live_redis();
std::uint16_t live_redis_port(const LiveRedis& redis);
std::uint16_t free_loopback_port();

}  // namespace membrane::cluster::testing
