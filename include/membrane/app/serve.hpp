// `membrane serve`: builds the gateway from a validated Config and runs it until SIGTERM/SIGINT,
// then drains gracefully. Returns the process exit code.
#pragma once

#include "membrane/app/config.hpp"

namespace membrane::app {

int serve(const Config& config);

}  // namespace membrane::app
