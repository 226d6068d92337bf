// libFuzzer target: YAML configuration text, read by the functions `membrane serve -c` and
// `membrane inject --config` read files with (app::load_config_text,
// inject::load_injector_config_text). Each must give a config or throw its own error naming
// file:line:col; any other exception, a crash or a sanitizer report is a bug. (Paths in the
// text are only checked for existence and readability; nothing is read from them.)
#include <cstddef>
#include <cstdint>
#include <string>

#include "membrane/app/config.hpp"
#include "membrane/core/log.hpp"
#include "membrane/inject/injector.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  membrane::log::set_level(membrane::log::Level::error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto config = membrane::app::load_config_text(text, "fuzz.yaml");
    if (config.source.empty()) __builtin_trap();
  } catch (const membrane::app::ConfigError& error) {
    if (std::string(error.what()).rfind("fuzz.yaml", 0) != 0) __builtin_trap();
  }
  try {
    (void)membrane::inject::load_injector_config_text(text, "fuzz.yaml");
  } catch (const membrane::inject::InjectorConfigError& error) {
    if (error.file() != "fuzz.yaml") __builtin_trap();
  }
  return 0;
}
