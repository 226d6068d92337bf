// libFuzzer target: the body of a POST /mutate, an AdmissionReview the Kubernetes API server
// sends the sidecar injector (inject::SidecarInjector::review), under the default injector
// configuration and under the checked-in example (tests/data/inject/injector.yaml). review()
// promises an answer for every input: 200 with an AdmissionReview, or 400 when there is no uid
// to answer, and always a JSON body.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "membrane/core/log.hpp"
#include "membrane/inject/injector.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  membrane::log::set_level(membrane::log::Level::error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using membrane::inject::SidecarInjector;
  static const SidecarInjector defaults{membrane::inject::InjectorConfig{}};
  static const SidecarInjector example{membrane::inject::load_injector_config_file(
      MEMBRANE_SOURCE_DIR "/tests/data/inject/injector.yaml")};
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const SidecarInjector* injector : {&defaults, &example}) {
    const auto answer = injector->review(body);
    if (answer.http_status != 200 && answer.http_status != 400) __builtin_trap();
    if (nlohmann::json::parse(answer.body, nullptr, false).is_discarded()) __builtin_trap();
  }
  return 0;
}
