// `membrane token mint|verify`: make a signed JWT for tests and demos, and check one the way the
// gateway would (printing its claims, or why it is refused).
#pragma once

#include "membrane/app/cli.hpp"

namespace membrane::app {

int token_mint(const CommandLine::Token& options);
int token_verify(const CommandLine::Token& options);
// `membrane audit verify [--jwks FILE] FILE...`: the chain, and the checkpoints' signatures when a
// key set is given. Exit code.
int audit_verify(const std::vector<std::string>& files, const std::string& jwks_file);
// `membrane audit query`: matching records as JSON lines, or a table. Exit code.
int audit_query(const std::vector<std::string>& files, const audit::QueryFilter& filter,
                bool json_output);

}  // namespace membrane::app
