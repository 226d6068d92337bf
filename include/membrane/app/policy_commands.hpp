// `membrane policy check|test|explain`: the operator's lint, unit tests and "why" for policies.
#pragma once

#include <string>
#include <vector>

namespace membrane::app {

// Loads and type-checks; prints "ok: N rules" or the file:line:col error. Exit code.
int policy_check(const std::vector<std::string>& paths);
// Loads the policy files under each PATH (everything but *.test.yaml) and runs the test cases of
// the *.test.yaml files there; prints each failure and "N passed, M failed". Exit code.
int policy_test(const std::vector<std::string>& paths);
// The verdict for one call (JSON) and every rule that held; text or JSON output. Exit code.
int policy_explain(const std::vector<std::string>& paths, const std::string& call_json,
                   bool json_output);

}  // namespace membrane::app
