// libFuzzer target: arbitrary bytes as a policy file. Loading must either succeed or throw
// PolicyError (file:line:col); anything else (a crash, a sanitizer report, another exception)
// is a bug. A successful load is also evaluated against a fixed call.
#include <cstddef>
#include <cstdint>
#include <string>

#include "membrane/policy/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace membrane::policy;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const Policy policy = Policy::parse(text, "fuzz.yaml");
    static const Json arguments = {{"path", "/workspace/../etc/shadow"}, {"count", 3}, {"items", {1, "a"}}};
    CallContext call;
    call.method = "tools/call";
    call.server = "fs";
    call.tool = "read_file";
    call.arguments = &arguments;
    (void)policy.decide(call, true);
    (void)policy.never_allowed(call);
  } catch (const PolicyError&) {
    // the expected way to refuse input
  }
  return 0;
}
