// Operator-written policy: Falco-style YAML files of lists, macros and rules whose conditions are
// expressions over the MCP call context. Loading parses, type-checks and compiles every rule once
// (errors name file:line:col); deciding evaluates the compiled program against one call.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace membrane::policy {

using Json = nlohmann::json;

enum class Verdict { allow = 0, redact = 1, ask = 2, deny = 3 };  // ordered by precedence
std::string_view to_string(Verdict verdict);

// Everything a condition can look at. Pointers may be null (absent); strings may be empty.
struct CallContext {
  std::string_view method;  // mcp.method
  std::string_view server;  // server.name: the upstream that acts on the call
  // Through a virtual server (several upstreams published as one): its name and the name the
  // client called the tool / prompt by; server.name and tool.name stay the upstream's own.
  std::string_view virtual_server;         // virtual.name
  std::string_view published_name;         // virtual.published_name
  std::string_view tool;                   // tool.name (params.name / params.uri target)
  const Json* tool_annotations = nullptr;  // tool.annotations.*
  // tools/list, per listed tool: what the model will read about it.
  std::string_view tool_description;      // tool.description
  std::string_view tool_text;             // tool.text (see listed_tool_text)
  const Json* arguments = nullptr;        // args.*
  std::string_view identity_subject;      // identity.sub
  const Json* identity_claims = nullptr;  // identity.claims.*
  const Json* txn = nullptr;              // txn.*
  std::string_view client_address;        // request.client_address
  const Json* request_headers = nullptr;  // request.headers.<lower-case name> (object of strings)
  std::string_view session_id;            // session.id
  std::string_view protocol_version;      // session.protocol_version
  // The called tool as its server listed it (inputSchema, annotations), when the gateway has
  // seen the listing: the views (call.*) learn each argument's role from its schema.
  const Json* tool_definition = nullptr;
  // Tool pinning: the listed definition's digest and the pinned one, when they differ.
  bool tool_changed = false;            // tool.changed
  std::string_view tool_changes;        // tool.changes: "description, inputSchema", …
  std::string_view tool_digest;         // tool.digest
  std::string_view tool_pinned_digest;  // tool.pinned_digest
};

// The normalized views of a call (call.paths, call.commands, call.code, call.urls, call.strings
// and their parts), as `membrane policy explain` shows them: {"call.paths": [...], ...} for the
// views that are not empty, and "call.incomplete": true when a bound stopped the reading.
Json describe_views(const CallContext& call);

// Everything a model reads about a tool in a tools/list result, one piece per line: its name,
// title, description, annotation title, and every string in its input and output schemas
// (parameter names, descriptions, enum values, defaults). Tool-poisoning rules match this text.
std::string listed_tool_text(const Json& tool);

// A call described as JSON, as `membrane policy explain --call` and policy test cases take it:
// {"method": "tools/call", "server": NAME, "params": {"name": TOOL, "arguments": {…}},
//  "identity": {"sub": …, "claims": {…}}, "txn": {…}, "request": {"client_address": …,
//  "headers": {…}}, "annotations": {…}, "tool_changes": "description"}; "tool": {a tool as listed}
// (for tools/list, the listed tool; for a call, the definition its views read roles from). The
// context points into `call` and `text_storage` (tool.text), which must outlive it.
CallContext call_from_json(const Json& call, std::string& text_storage);

// Files named *.test.yaml / *.test.yml hold test cases (membrane policy test), not rules.
bool is_test_file(std::string_view filename);

class PolicyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;  // what() = "file:line:col: message"
};

struct RuleInfo {
  std::string id;
  std::string description;
  int priority = 0;
  std::vector<std::string> tags;
  Verdict verdict = Verdict::deny;
  std::string message;
  std::vector<std::string> redact_patterns;  // verdict redact: RE2 patterns masked in results
  // verdict ask: who may approve the call: the caller's own user (an elicitation), an approver
  // at the security console, or either of them (the first answer counts).
  bool approver_user = true;
  bool approver_console = false;
  std::string file;
  int line = 0;
};

// A rate limit: a token bucket per distinct value of its `by` fields, refilled at
// `count` per `period`, holding at most `burst` calls.
struct LimitInfo {
  std::string id;
  std::string description;
  std::string message;
  double count = 0;
  std::chrono::milliseconds period{0};
  double burst = 0;
  std::vector<std::string> by;  // the fields as written, e.g. "identity.sub"
  std::string rate_text;        // as written, e.g. "30/minute", for messages
  std::string file;
  int line = 0;

  double refill_per_second() const { return count * 1000.0 / static_cast<double>(period.count()); }
};

// One bucket a call spends a token from: the limit, and the bucket its `by` values select
// ("<limit id>" followed by one "\x1f<value>" per field).
struct LimitCharge {
  const LimitInfo* limit = nullptr;
  std::string bucket;
};

struct Decision {
  Verdict verdict = Verdict::allow;
  const RuleInfo* rule = nullptr;  // the rule that decided; null when the default verdict applied
  // Every rule whose condition held, in evaluation order (explain).
  std::vector<const RuleInfo*> matched;
};

class CompiledPolicy;

// An immutable compiled policy, safe to share between threads.
class Policy {
 public:
  // Loads every `*.yaml` / `*.yml` file of the given files and directories (directories in
  // name order). Throws PolicyError naming file:line:col.
  static Policy load(const std::vector<std::string>& paths,
                     Verdict default_verdict = Verdict::allow);
  // The files `load` reads, in order: each file given, and each directory's `*.yaml` / `*.yml`
  // files except `*.test.yaml` cases. Entries whose name starts with a dot are skipped: a
  // Kubernetes ConfigMap volume keeps a second copy of every file under `..data` / `..<timestamp>`.
  static std::vector<std::string> source_files(const std::vector<std::string>& paths);
  // From YAML text, for tests and tools; `source` names it in errors.
  static Policy parse(const std::string& yaml_text, const std::string& source,
                      Verdict default_verdict = Verdict::allow);

  // The combined verdict: deny beats ask beats redact beats allow; the default when no rule holds.
  // For mcp.method "tools/list" (one listed tool) only the rules whose condition requires
  // tools/list are consulted, and nothing holding means allow.
  // `collect_matches` fills Decision::matched (costs allocation; for explain and audit).
  Decision decide(const CallContext& call, bool collect_matches = false) const;

  // The deny rule that refuses every call of `call.tool` whatever its arguments (one whose
  // condition does not look at args.*), or null. tools/list hides such tools.
  const RuleInfo* never_allowed(const CallContext& call) const;

  // The deny rule written for tools/list (its condition requires mcp.method == "tools/list")
  // that holds for one listed tool (`call.tool`, `tool_description`, `tool_text`,
  // `tool_annotations`), or null. tools/list hides such tools: poisoned descriptions never reach
  // the model. Rules written for calls are not consulted, so an args.* test cannot hide a tool.
  const RuleInfo* listing_denied(const CallContext& call) const;

  // Masks, in every string of `result`, the matches of the `redact` rules that hold for `call`
  // (replaced by "[REDACTED:<rule id>]"). Returns true when something was masked.
  bool redact(const CallContext& call, Json& result) const;
  // Masks the matches of every redact rule, whatever its condition: for a result whose call is
  // not known (a task created through another replica), masking too much is the safe side.
  bool redact_all(Json& result) const;
  bool has_redactions() const;
  // False when no string of the JSON text `message` (decoded: escapes like \u0041 or \n cannot
  // hide a match) holds a match of any redact pattern, so no redact rule could mask anything in
  // it; true when one may (or the text cannot be read that way). One pass, no parse.
  bool may_redact(std::string_view message) const;
  // True when some rule looks at request.headers.*: callers collect headers only then.
  bool uses_request_headers() const;

  // The rate limits whose condition holds for `call` (a tools/call, resources/read or
  // prompts/get), in file order, with the bucket each one charges.
  std::vector<LimitCharge> limits(const CallContext& call) const;
  const std::vector<LimitInfo>& limit_rules() const;

  std::size_t rule_count() const;
  // No rules and no limits: every call gets the default verdict.
  bool empty() const { return rule_count() == 0 && limit_rules().empty(); }
  const std::vector<RuleInfo>& rules() const;

 private:
  explicit Policy(std::shared_ptr<const CompiledPolicy> compiled)
      : compiled_(std::move(compiled)) {}
  std::shared_ptr<const CompiledPolicy> compiled_;
};

}  // namespace membrane::policy
