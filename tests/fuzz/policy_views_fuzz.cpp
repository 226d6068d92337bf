// libFuzzer target: the policy's views (call.paths, call.commands, call.code, call.urls, …) of
// any call. The first byte picks the shape: a command line given to a shell tool, a script given
// to a code tool, or (any other byte) the arguments of a tool as JSON. Properties: every view is
// computed within its bounds (values per view, storage), and normalizing a path is idempotent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "membrane/core/json.hpp"
#include "policy/call_views.hpp"

namespace {
using namespace membrane;

void check(const policy::CallContext& call) {
  policy::CallViews views;
  policy::compute_view(policy::View::paths, call, views);
  policy::compute_view(policy::View::strings, call, views);
  std::size_t total = 0;
  for (const auto& values : views.values) {
    if (values.size() > 4096) std::abort();
    for (const auto value : values)
      total += value.size();
  }
  if (views.stored_bytes > policy::CallViews::max_stored_bytes) std::abort();
  for (const auto path : views[policy::View::paths]) {
    const std::string once(path);
    if (policy::normalize_view_path(once) != once && !once.starts_with("~") &&
        once.find(':') == std::string::npos)
      std::abort();  // a normalized path normalizes to itself
  }
  (void)total;
  (void)policy::describe_views(call);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  policy::CallContext call;
  call.method = "tools/call";
  policy::Json arguments;
  switch (data[0]) {
    case 'c':
      call.tool = "run_command";
      arguments = {{"command", std::string(input)}};
      break;
    case 'p':
      call.tool = "run_python";
      arguments = {{"code", std::string(input)}, {"language", "python"}};
      break;
    default: {
      call.tool = "tool";
      auto parsed = json::parse(input);
      if (!parsed.ok()) return 0;
      arguments = std::move(parsed.value);
    }
  }
  call.arguments = &arguments;
  check(call);
  return 0;
}
