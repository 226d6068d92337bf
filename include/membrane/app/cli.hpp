// Command line of the `membrane` executable. Parsing only: no I/O beyond reading the config
// file a flag names, so it is unit-testable.
#pragma once

#include <string>
#include <vector>

#include "membrane/app/config.hpp"

namespace membrane::app {

enum class Verb {
  serve,         // membrane serve (-c FILE | --listen ... --upstream ...)
  check_config,  // membrane config check -c FILE : load + validate, print "ok" or the error
  policy_check,  // membrane policy check FILE|DIR... : load + type-check policy files
  version,       // membrane --version | membrane version
  help,          // membrane --help | membrane help | membrane serve --help
};

struct CommandLine {
  Verb verb = Verb::help;
  Config config;                          // filled for serve and check_config
  std::vector<std::string> policy_paths;  // policy_check
};

// Thrown for command-line mistakes (unknown flag, missing value, -c combined with
// --upstream, ...). Config problems inside a file or flag value throw ConfigError instead.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

CommandLine parse_command_line(const std::vector<std::string>& args);  // args exclude argv[0]
std::string usage_text();

}  // namespace membrane::app
