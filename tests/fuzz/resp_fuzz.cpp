// libFuzzer target: what a Redis server (or anything answering on its port) sends the gateway's
// RESP2 client, fed to cluster::RespParser in pieces as reads deliver them, replies taken as
// RedisConnection takes them (until the first protocol error, which ends a connection). Properties:
// the parser never holds more than it was fed, honours its own limits (depth, bulk size), and the
// split into pieces does not change the replies or the first error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/redis_client.hpp"

namespace {

using membrane::cluster::RedisReply;
using membrane::cluster::RespParser;

struct Outcome {
  std::vector<RedisReply> replies;
  bool failed = false;
};

std::size_t depth(const RedisReply& reply) {
  std::size_t deepest = 0;
  for (const auto& element : reply.elements)
    deepest = std::max(deepest, depth(element));
  return reply.kind == RedisReply::Kind::array ? deepest + 1 : deepest;
}

bool same(const RedisReply& a, const RedisReply& b) {
  if (a.kind != b.kind || a.text != b.text || a.integer != b.integer ||
      a.elements.size() != b.elements.size())
    return false;
  for (std::size_t i = 0; i < a.elements.size(); ++i)
    if (!same(a.elements[i], b.elements[i])) return false;
  return true;
}

Outcome parse(std::string_view bytes, std::size_t piece) {
  RespParser parser;
  Outcome out;
  std::size_t fed = 0;
  while (!out.failed) {
    RedisReply reply;
    const auto status = parser.take(reply);
    if (status == RespParser::Status::reply) {
      if (depth(reply) > RespParser::max_depth) __builtin_trap();
      out.replies.push_back(std::move(reply));
      continue;
    }
    if (status == RespParser::Status::error) {
      if (parser.error().empty()) __builtin_trap();
      out.failed = true;
      break;
    }
    if (bytes.empty()) break;
    const std::string_view chunk = bytes.substr(0, piece);
    bytes.remove_prefix(chunk.size());
    parser.feed(chunk);
    fed += chunk.size();
    if (parser.buffered() > fed) __builtin_trap();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const Outcome whole = parse(bytes, bytes.size() + 1);
  const Outcome pieces = parse(bytes, 1 + size % 7);
  if (whole.failed != pieces.failed || whole.replies.size() != pieces.replies.size())
    __builtin_trap();
  for (std::size_t i = 0; i < whole.replies.size(); ++i) {
    if (!same(whole.replies[i], pieces.replies[i])) __builtin_trap();
  }
  return 0;
}
