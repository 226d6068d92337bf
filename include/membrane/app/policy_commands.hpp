// `membrane policy check|test|explain`: the operator's lint, unit tests and "why" for policies.
#pragma once

#include <string>
#include <vector>

namespace membrane::app {

// Loads and type-checks; prints "ok: N rules" or the file:line:col error. Exit code.
int policy_check(const std::vector<std::string>& paths);
// Loads the policy files under each PATH (everything but *.test.yaml) and runs the test cases of
// the *.test.yaml files there; or, with `case_paths`, loads the rules of `paths` and runs the cases
// under `case_paths`. Prints each failure, a table per area for labelled cases (recall and false
// positives) and "N passed, M failed". Exit code.
int policy_test(const std::vector<std::string>& paths,
                const std::vector<std::string>& case_paths = {});
// The verdict for one call (JSON) and every rule that held; text or JSON output. Exit code.
// Pins every tool of the tools/list recordings (a JSON file or "-": {"server": NAME, "tools":
// [...]}, a tools/list result {"tools": [...]}, or a JSON-RPC response carrying one), merging into
// `pins_file` (created if absent). `server` names recordings that do not. Prints each tool added,
// changed (with what changed) or removed (`prune`: no longer listed). Exit code.
int policy_pin(const std::vector<std::string>& recordings, const std::string& pins_file,
               const std::string& server, bool prune);
int policy_explain(const std::vector<std::string>& paths, const std::string& call_json,
                   bool json_output);

}  // namespace membrane::app
