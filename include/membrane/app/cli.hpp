// Command line of the `membrane` executable. Parsing only: no I/O beyond reading the config
// file a flag names, so it is unit-testable.
#pragma once

#include <string>
#include <vector>

#include "membrane/app/config.hpp"
#include "membrane/audit/audit_log.hpp"
#include "membrane/inject/webhook.hpp"

namespace membrane::app {

enum class Verb {
  serve,           // membrane serve (-c FILE | --listen ... --upstream ...)
  check_config,    // membrane config check -c FILE : load + validate, print "ok" or the error
  policy_check,    // membrane policy check FILE|DIR... : load + type-check policy files
  policy_test,     // membrane policy test PATH : run the *.test.yaml cases against the policy
  policy_explain,  // membrane policy explain -p FILE --call JSON [--format json]
  policy_pin,      // membrane policy pin --pins FILE [--server NAME] [--prune] RECORDING...
  token_mint,      // membrane token mint --key FILE [claims flags]
  token_verify,    // membrane token verify TOKEN|- --jwks FILE [--issuer ISS] [--audience AUD]
  audit_verify,    // membrane audit verify FILE... (paths in policy_paths)
  audit_query,     // membrane audit query FILE... [filters] [--format json|table]
  inject,          // membrane inject --listen ADDR --tls-cert FILE --tls-key FILE [-c FILE]
  version,         // membrane --version | membrane version
  help,            // membrane --help | membrane help | membrane serve --help
};

struct CommandLine {
  CommandLine() = default;
  explicit CommandLine(Verb verb, Config config = {}, std::vector<std::string> policy_paths = {})
      : verb(verb), config(std::move(config)), policy_paths(std::move(policy_paths)) {}

  Verb verb = Verb::help;
  Config config;                          // filled for serve and check_config
  std::vector<std::string> policy_paths;  // policy_check, policy_test, policy_explain; audit files
  std::string policy_call;                // policy_explain: the call as JSON
  // policy_test -p: the rules come from policy_paths, the cases from here.
  std::vector<std::string> case_paths;
  struct Pin {
    std::string pins_file;   // written (and read first when it exists)
    std::string server;      // names the upstream of recordings that do not say
    bool prune = false;      // drop pinned tools a recording no longer lists
  } pin;                     // policy_pin (recordings in policy_paths)
  bool json_output = false;  // policy_explain --format json

  struct Token {
    std::string key_file;   // mint: private JWK or JWKS (first key signs)
    std::string jwks_file;  // verify: the keys
    std::string token;      // verify: the token ("-" = standard input)
    std::string subject, issuer, type;
    std::vector<std::string> audiences;
    std::string claims_json;  // mint: extra claims, a JSON object
    long lifetime_seconds = 300;
  } token;  // token_mint, token_verify

  audit::QueryFilter
      audit_query;  // audit_query (files in policy_paths, --format json in json_output)

  inject::WebhookOptions inject;  // inject: the listener and the loaded injector config
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
