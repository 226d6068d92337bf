// membrane: an MCP gateway. See `membrane --help`.
#include <iostream>
#include <string>
#include <vector>

#include "membrane/app/cli.hpp"
#include "membrane/app/config.hpp"
#include "membrane/app/policy_commands.hpp"
#include "membrane/app/serve.hpp"
#include "membrane/app/thread_cache.hpp"
#include "membrane/app/token_commands.hpp"

int main(int argc, char** argv) {
  using namespace membrane::app;
  const std::vector<std::string> args(argv + 1, argv + argc);
  CommandLine command;
  try {
    command = parse_command_line(args);
  } catch (const UsageError& error) {
    std::cerr << "membrane: " << error.what() << "\n\n" << usage_text();
    return 2;
  } catch (const ConfigError& error) {
    std::cerr << error.what() << "\n";
    return 2;
  }
  switch (command.verb) {
    case Verb::help:
      std::cout << usage_text();
      return 0;
    case Verb::version:
      std::cout << "membrane " << MEMBRANE_VERSION << "\n";
      return 0;
    case Verb::check_config:
      std::cout << command.config.source << ": ok (" << command.config.upstreams.size()
                << " upstream" << (command.config.upstreams.size() == 1 ? "" : "s") << ")\n";
      return 0;
    case Verb::policy_check:
      return policy_check(command.policy_paths);
    case Verb::policy_test:
      return policy_test(command.policy_paths, command.case_paths);
    case Verb::policy_pin:
      return policy_pin(command.policy_paths, command.pin.pins_file, command.pin.server,
                        command.pin.prune);
    case Verb::policy_explain:
      return policy_explain(command.policy_paths, command.policy_call, command.json_output);
    case Verb::token_mint:
      return token_mint(command.token);
    case Verb::token_verify:
      return token_verify(command.token);
    case Verb::audit_verify:
      return audit_verify(command.policy_paths, command.token.jwks_file);
    case Verb::audit_query:
      return audit_query(command.policy_paths, command.audit_query, command.json_output);
    case Verb::inject:
      try {
        return membrane::inject::run_webhook(command.inject);
      } catch (const std::exception& error) {
        std::cerr << "membrane: cannot start: " << error.what() << "\n";
        return 1;
      }
    case Verb::serve:
      break;
  }
  start_with_deeper_thread_cache(argv);
  try {
    return serve(command.config);
  } catch (const std::exception& error) {
    // Start-up failures (port in use, unreadable TLS files, bad key): say so and exit non-zero.
    std::cerr << "membrane: cannot start: " << error.what() << "\n";
    return 1;
  }
}
