// The policy's decisions: which rule decides a call (policy_loader.cpp reads the files), what a
// listing hides, which limits a call is charged to, and what redaction masks.
#include "membrane/policy/policy.hpp"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <filesystem>

#include "membrane/core/json.hpp"
#include "policy/compiled_policy.hpp"

namespace membrane::policy {

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::allow:
      return "allow";
    case Verdict::redact:
      return "redact";
    case Verdict::ask:
      return "ask";
    case Verdict::deny:
      return "deny";
  }
  return "?";
}

std::vector<std::string> Policy::source_files(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& path_text : paths) {
    const std::filesystem::path path(path_text);
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec)) {
      out.push_back(path_text);
      continue;
    }
    std::vector<std::filesystem::path> files;
    for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      const auto name = it->path().filename().string();
      if (!name.empty() && name.front() == '.') {
        it.disable_recursion_pending();
        continue;
      }
      const auto extension = it->path().extension();
      std::error_code type_ec;
      if (it->is_regular_file(type_ec) && (extension == ".yaml" || extension == ".yml") &&
          !is_test_file(name)) {
        files.push_back(it->path());
      }
    }
    if (ec) throw PolicyError(path_text + ": cannot list the directory: " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& file : files)
      out.push_back(file.string());
  }
  return out;
}

Policy Policy::load(const std::vector<std::string>& paths, Verdict default_verdict) {
  return Policy(compile_files(source_files(paths), default_verdict));
}

Policy Policy::parse(const std::string& yaml_text, const std::string& source,
                     Verdict default_verdict) {
  return Policy(compile_text(yaml_text, source, default_verdict));
}

Decision Policy::decide(const CallContext& call, bool collect_matches) const {
  Decision decision;
  // A listing is judged only by the rules written for listings, and is not a call: the default
  // verdict does not apply to it.
  const bool listing = call.method == "tools/list";
  decision.verdict = listing ? Verdict::allow : compiled_->default_verdict;
  const DecisionScope decision_scope(compiled_->decision_index.get());
  compiled_->for_candidates(call.method, call.tool,
                            [&](const CompiledRule& rule, const Node& program) {
                              if (listing && !rule.names_methods) return true;
                              if (!evaluate(program, call)) return true;
                              if (!decision.rule) {
                                decision.rule = &rule.info;
                                decision.verdict = rule.info.verdict;
                                if (!collect_matches) return false;
                              }
                              decision.matched.push_back(&rule.info);
                              return true;
                            });
  return decision;
}

const RuleInfo* Policy::never_allowed(const CallContext& call) const {
  const RuleInfo* found = nullptr;
  const DecisionScope decision_scope(compiled_->decision_index.get());
  compiled_->for_candidates(call.method, call.tool,
                            [&](const CompiledRule& rule, const Node& program) {
                              if (rule.info.verdict != Verdict::deny)
                                return false;  // deny rules come first
                              if (!rule.uses_arguments && evaluate(program, call))
                                found = &rule.info;
                              return found == nullptr;
                            });
  return found;
}

const RuleInfo* Policy::listing_denied(const CallContext& call) const {
  CallContext listing = call;
  listing.method = "tools/list";
  const Decision decision = decide(listing);
  return decision.verdict == Verdict::deny ? decision.rule : nullptr;
}

bool is_test_file(std::string_view filename) {
  return filename.ends_with(".test.yaml") || filename.ends_with(".test.yml");
}

namespace {
void append_schema_strings(const Json& schema, std::string& out) {
  if (schema.is_string()) {
    out += schema.get_ref<const std::string&>();
    out.push_back('\n');
  } else if (schema.is_object()) {
    for (const auto& [key, value] : schema.items()) {
      // Property names are read by the model too; JSON Schema keywords are not worth matching.
      if (!key.empty() && key.front() != '$' && !value.is_boolean()) {
        out += key;
        out.push_back('\n');
      }
      append_schema_strings(value, out);
    }
  } else if (schema.is_array()) {
    for (const auto& element : schema)
      append_schema_strings(element, out);
  }
}
}  // namespace

std::string listed_tool_text(const Json& tool) {
  std::string text;
  if (!tool.is_object()) return text;
  for (const char* key : {"name", "title", "description"}) {
    if (const auto it = tool.find(key); it != tool.end() && it->is_string()) {
      text += it->get_ref<const std::string&>();
      text.push_back('\n');
    }
  }
  if (const auto annotations = tool.find("annotations");
      annotations != tool.end() && annotations->is_object()) {
    if (const auto title = annotations->find("title");
        title != annotations->end() && title->is_string()) {
      text += title->get_ref<const std::string&>();
      text.push_back('\n');
    }
  }
  for (const char* key : {"inputSchema", "outputSchema"}) {
    if (const auto schema = tool.find(key); schema != tool.end())
      append_schema_strings(*schema, text);
  }
  return text;
}

CallContext call_from_json(const Json& call, std::string& text_storage) {
  CallContext context;
  const auto member = [](const Json& object, const char* key) -> const Json* {
    const auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  };
  if (!call.is_object()) return context;
  context.method = json::string_member(call, "method");
  if (context.method.empty()) context.method = "tools/call";
  context.server = json::string_member(call, "server");
  if (const Json* through = member(call, "virtual"); through && through->is_object()) {
    context.virtual_server = json::string_member(*through, "name");
    context.published_name = json::string_member(*through, "published_name");
  }
  context.tool_annotations = member(call, "annotations");
  if (const Json* params = member(call, "params"); params && params->is_object()) {
    context.tool = json::string_member(*params, "name");
    if (context.tool.empty()) context.tool = json::string_member(*params, "uri");
    context.arguments = context.method == "resources/read" ? params : member(*params, "arguments");
  }
  if (const Json* identity = member(call, "identity"); identity && identity->is_object()) {
    context.identity_subject = json::string_member(*identity, "sub");
    context.identity_claims = member(*identity, "claims");
  }
  if (const Json* tool = member(call, "tool"); tool && tool->is_object()) {
    context.tool_definition = tool;
    if (context.tool.empty()) context.tool = json::string_member(*tool, "name");
    context.tool_description = json::string_member(*tool, "description");
    if (!context.tool_annotations) context.tool_annotations = member(*tool, "annotations");
    text_storage = listed_tool_text(*tool);
    context.tool_text = text_storage;
  }
  // Tool pinning, as the gateway reports it: "tool_changes": "description, inputSchema".
  context.tool_changes = json::string_member(call, "tool_changes");
  context.tool_changed = !context.tool_changes.empty();
  context.txn = member(call, "txn");
  if (const Json* request = member(call, "request"); request && request->is_object()) {
    context.client_address = json::string_member(*request, "client_address");
    context.request_headers = member(*request, "headers");
  }
  return context;
}

namespace {

// One matching redact rule: its patterns and the mask that replaces what they find.
struct Masking {
  const std::vector<std::shared_ptr<const re2::RE2>>* patterns;
  std::string mask;
};

// Every pattern of every masking looks at the original text, and overlapping finds merge into
// one mask (the first rule's): no pattern ever matches a mask, so each character becomes part of
// at most one mask and the result grows at most linearly, however many patterns there are.
bool mask_text(std::string& text, const std::vector<Masking>& maskings) {
  struct Span {
    std::size_t begin;
    std::size_t end;
    std::size_t masking;
  };
  std::vector<Span> spans;
  const re2::StringPiece input(text.data(), text.size());
  for (std::size_t index = 0; index < maskings.size(); ++index) {
    for (const auto& pattern : *maskings[index].patterns) {
      std::size_t position = 0;
      re2::StringPiece found;
      while (position <= text.size() &&
             pattern->Match(input, position, text.size(), re2::RE2::UNANCHORED, &found, 1)) {
        const auto begin = static_cast<std::size_t>(found.data() - text.data());
        const std::size_t end = begin + found.size();
        if (end > begin) spans.push_back({begin, end, index});
        position = end > begin ? end : begin + 1;  // an empty find moves on by one character
      }
    }
  }
  if (spans.empty()) return false;
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.masking < b.masking;
  });
  std::string masked;
  std::size_t copied = 0;
  for (std::size_t i = 0; i < spans.size();) {
    Span merged = spans[i];
    for (++i; i < spans.size() && spans[i].begin < merged.end; ++i)
      merged.end = std::max(merged.end, spans[i].end);
    masked.append(text, copied, merged.begin - copied);
    masked += maskings[merged.masking].mask;
    copied = merged.end;
  }
  masked.append(text, copied, std::string::npos);
  text = std::move(masked);
  return true;
}

// Results are parsed under the JSON depth limit, so this recursion is bounded by it.
bool mask_strings(Json& value, const std::vector<Masking>& maskings) {
  bool changed = false;
  if (value.is_string()) {
    changed = mask_text(value.get_ref<std::string&>(), maskings);
  } else if (value.is_array() || value.is_object()) {
    for (auto& element : value)
      changed = mask_strings(element, maskings) || changed;
  }
  return changed;
}

}  // namespace

bool Policy::redact(const CallContext& call, Json& result) const {
  std::vector<Masking> maskings;
  {
    const DecisionScope decision_scope(compiled_->decision_index.get());
    compiled_->for_candidates(
        call.method, call.tool, [&](const CompiledRule& rule, const Node& program) {
          // Rules are sorted by verdict, strongest first: past the redact rules there is nothing
          // to do.
          if (rule.info.verdict != Verdict::redact) return rule.info.verdict > Verdict::redact;
          if (evaluate(program, call))
            maskings.push_back({&rule.redactions, "[REDACTED:" + rule.info.id + "]"});
          return true;
        });
  }
  return !maskings.empty() && mask_strings(result, maskings);
}

bool Policy::redact_all(Json& result) const {
  std::vector<Masking> maskings;
  for (const auto& rule : compiled_->ordered) {
    if (rule.info.verdict == Verdict::redact)
      maskings.push_back({&rule.redactions, "[REDACTED:" + rule.info.id + "]"});
  }
  return !maskings.empty() && mask_strings(result, maskings);
}

bool Policy::has_redactions() const {
  return compiled_->any_redactions;
}

bool Policy::may_redact(std::string_view message) const {
  if (!compiled_->any_redactions) return false;
  const auto* prefilter = compiled_->redaction_prefilter.get();
  if (!prefilter) return true;
  // Each string on its own, as the masking sees it: anchors and word boundaries mean the same.
  std::string decoded;
  for (std::size_t at = message.find('"'); at != std::string_view::npos;
       at = message.find('"', at)) {
    decoded.clear();
    // A string that is not well-formed ends the scan with "may": the redaction itself judges it.
    at = json::decode_string(message, at, decoded);
    if (at == std::string_view::npos) return true;
    re2::RE2::Set::ErrorInfo error{};
    if (prefilter->Match(decoded, nullptr, &error)) return true;
    if (error.kind != re2::RE2::Set::kNoError) return true;
  }
  return false;
}

bool Policy::uses_request_headers() const {
  return compiled_->any_request_headers;
}

std::vector<LimitCharge> Policy::limits(const CallContext& call) const {
  std::vector<LimitCharge> charges;
  for (std::size_t index = 0; index < compiled_->limits.size(); ++index) {
    const CompiledLimit& limit = compiled_->limits[index];
    if (limit.program && !evaluate(*limit.program, call)) continue;
    LimitCharge charge;
    charge.limit = &compiled_->limit_infos[index];
    charge.bucket = charge.limit->id;
    for (const auto& field : limit.by) {
      charge.bucket.push_back('\x1f');
      append_field_text(*field, call, charge.bucket);
    }
    charges.push_back(std::move(charge));
  }
  return charges;
}

const std::vector<LimitInfo>& Policy::limit_rules() const {
  return compiled_->limit_infos;
}

std::size_t Policy::rule_count() const {
  return compiled_->ordered.size();
}
const std::vector<RuleInfo>& Policy::rules() const {
  return compiled_->infos;
}

}  // namespace membrane::policy
