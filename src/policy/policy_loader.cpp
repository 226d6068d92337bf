// Loading policy files (Falco-style: a YAML sequence of `list`, `macro`, `rule` and `limit`
// entries) into a compiled policy: every entry checked with its file:line, conditions parsed and
// type-checked, rules ordered and indexed.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "membrane/core/yaml_nesting.hpp"
#include "policy/compiled_policy.hpp"

namespace membrane::policy {

namespace {

std::string location(const std::string& file, int line, int column) {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string location(const std::string& file, const YAML::Mark& mark) {
  return location(file, mark.line + 1, mark.column + 1);
}

[[noreturn]] void fail(const std::string& file, const YAML::Mark& mark,
                       const std::string& message) {
  throw PolicyError(location(file, mark) + ": " + message);
}

// Maps an offset inside a scalar's value to its place in the file, for expression errors. The
// value's lines are found in the source lines at or after the scalar's mark; block scalars and
// quotes are handled because the search looks for the text itself.
OffsetLocator scalar_locator(const std::string& file, const std::vector<std::string>& source_lines,
                             const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  const std::string value = node.Scalar();
  return [file, &source_lines, mark, value](std::size_t offset) {
    offset = std::min(offset, value.size());
    const std::size_t line_index =
        static_cast<std::size_t>(std::count(value.begin(), value.begin() + offset, '\n'));
    const std::size_t line_start = value.rfind('\n', offset == 0 ? 0 : offset - 1);
    const std::size_t start = (line_start == std::string::npos || offset == 0) ? 0 : line_start + 1;
    const std::size_t end = value.find('\n', start);
    const std::string value_line =
        value.substr(start, end == std::string::npos ? std::string::npos : end - start);
    for (std::size_t line = static_cast<std::size_t>(mark.line) + line_index;
         line < source_lines.size() && line <= static_cast<std::size_t>(mark.line) + line_index + 2;
         ++line) {
      const std::size_t from =
          line == static_cast<std::size_t>(mark.line) ? static_cast<std::size_t>(mark.column) : 0;
      const auto found =
          value_line.empty() ? std::string::npos : source_lines[line].find(value_line, from);
      if (found != std::string::npos) {
        return location(file, static_cast<int>(line) + 1,
                        static_cast<int>(found + (offset - start)) + 1);
      }
    }
    return location(file, mark);
  };
}

std::string required_string(const YAML::Node& entry, const char* key, const std::string& file) {
  const YAML::Node node = entry[key];
  if (!node) fail(file, entry.Mark(), std::string("missing '") + key + "'");
  if (!node.IsScalar()) fail(file, node.Mark(), std::string("'") + key + "' must be a string");
  return node.Scalar();
}

void check_keys(const YAML::Node& entry, const std::set<std::string>& allowed,
                const std::string& file, const std::string& kind) {
  for (const auto& item : entry) {
    const std::string key = item.first.Scalar();
    if (!allowed.contains(key)) {
      std::string list;
      for (const auto& name : allowed)
        list += (list.empty() ? "" : ", ") + name;
      fail(file, item.first.Mark(),
           "unknown key '" + key + "' in a " + kind + " (allowed: " + list + ")");
    }
  }
}

Verdict parse_verdict(const YAML::Node& node, const std::string& file) {
  const std::string text = node.Scalar();
  if (text == "allow") return Verdict::allow;
  if (text == "deny") return Verdict::deny;
  if (text == "ask") return Verdict::ask;
  if (text == "redact") return Verdict::redact;
  fail(file, node.Mark(), "unknown verdict '" + text + "' (use allow, deny, ask or redact)");
}

// `approver: user | console | [user, console]`, on ask rules only.
void read_approver(const YAML::Node& node, const std::string& file, RuleInfo& rule) {
  if (rule.verdict != Verdict::ask)
    fail(file, node.Mark(), "'approver' belongs to rules with 'verdict: ask'");
  std::vector<YAML::Node> names;
  if (node.IsScalar()) {
    names.push_back(node);
  } else if (node.IsSequence() && node.size() > 0) {
    for (const auto& name : node)
      names.push_back(name);
  } else {
    fail(file, node.Mark(), "'approver' must be user, console or a list of them");
  }
  rule.approver_user = false;
  rule.approver_console = false;
  for (const auto& name : names) {
    const std::string text = name.IsScalar() ? name.Scalar() : std::string();
    if (text == "user") {
      rule.approver_user = true;
    } else if (text == "console") {
      rule.approver_console = true;
    } else {
      fail(file, name.Mark(),
           "unknown approver '" + text + "' (use user, console, or [user, console])");
    }
  }
}

// An entry's `enabled` flag (default true): a disabled entry is checked but not loaded.
bool read_enabled(const YAML::Node& entry, const std::string& file) {
  const YAML::Node flag = entry["enabled"];
  if (!flag) return true;
  try {
    return flag.as<bool>();
  } catch (const YAML::Exception&) {
    fail(file, flag.Mark(), "'enabled' must be true or false");
  }
}

struct LoadState {
  Environment environment;
  std::map<std::string, std::string> rule_locations;   // id -> where first defined
  std::map<std::string, std::string> limit_locations;  // id -> where first defined
  std::vector<CompiledRule> rules;
  std::vector<LimitInfo> limit_infos;
  std::vector<CompiledLimit> limits;
};

// "30/minute", "5/s", "100/15m": a positive whole count per a period of whole seconds or more.
void parse_rate(const YAML::Node& node, const std::string& file, LimitInfo& limit) {
  const std::string text = node.IsScalar() ? node.Scalar() : std::string();
  const auto bad = [&](const std::string& why) {
    fail(file, node.Mark(),
         "'rate' " + why + " (write COUNT/PERIOD: 30/minute, 5/second, 1000/hour, 100/15m)");
  };
  const auto slash = text.find('/');
  if (slash == std::string::npos) bad("needs a '/'");
  const std::string count_text = text.substr(0, slash);
  std::string period_text = text.substr(slash + 1);
  const auto whole = [](const std::string& digits) {
    return !digits.empty() && digits.size() <= 9 &&
           std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!whole(count_text) || std::stol(count_text) < 1)
    bad("must start with a whole count of 1 or more");
  std::size_t digits = 0;
  while (digits < period_text.size() && period_text[digits] >= '0' && period_text[digits] <= '9')
    ++digits;
  long multiple = 1;
  if (digits > 0) {
    if (!whole(period_text.substr(0, digits)) || std::stol(period_text.substr(0, digits)) < 1)
      bad("has a period multiple that is not a whole number of 1 or more");
    multiple = std::stol(period_text.substr(0, digits));
    period_text = period_text.substr(digits);
  }
  static const std::map<std::string, long> seconds_per = {
      {"s", 1},       {"sec", 1},  {"second", 1},  {"m", 60},    {"min", 60},
      {"minute", 60}, {"h", 3600}, {"hour", 3600}, {"d", 86400}, {"day", 86400}};
  const auto unit = seconds_per.find(period_text);
  if (unit == seconds_per.end()) bad("has an unknown period '" + period_text + "'");
  if (multiple > 366L * 86400 / unit->second) bad("has a period longer than a year");
  limit.count = static_cast<double>(std::stol(count_text));
  limit.period = std::chrono::milliseconds(multiple * unit->second * 1000);
  limit.rate_text = text;
}

void load_limit(const YAML::Node& entry, const std::string& file,
                const std::vector<std::string>& source_lines, LoadState& state) {
  check_keys(entry,
             {"limit", "description", "condition", "rate", "burst", "by", "message", "enabled"},
             file, "limit");
  LimitInfo info;
  info.id = required_string(entry, "limit", file);
  info.file = file;
  info.line = entry["limit"].Mark().line + 1;
  if (const auto previous = state.limit_locations.find(info.id);
      previous != state.limit_locations.end()) {
    fail(file, entry["limit"].Mark(),
         "limit '" + info.id + "' is already defined at " + previous->second);
  }
  state.limit_locations[info.id] = location(file, entry["limit"].Mark());
  if (entry["description"]) info.description = entry["description"].Scalar();
  if (entry["message"]) info.message = entry["message"].Scalar();
  const YAML::Node rate = entry["rate"];
  if (!rate) fail(file, entry.Mark(), "limit '" + info.id + "' needs a 'rate' such as 30/minute");
  parse_rate(rate, file, info);
  info.burst = info.count;
  if (const YAML::Node burst = entry["burst"]) {
    long value = 0;
    try {
      value = burst.as<long>();
    } catch (const YAML::Exception&) {
      fail(file, burst.Mark(), "'burst' must be a whole number");
    }
    if (value < 1 || value > 1'000'000'000)
      fail(file, burst.Mark(), "'burst' must be from 1 to 1000000000");
    info.burst = static_cast<double>(value);
  }
  CompiledLimit limit;
  if (const YAML::Node condition = entry["condition"]) {
    if (!condition.IsScalar()) fail(file, condition.Mark(), "'condition' must be a string");
    limit.program = optimize(compile_condition(condition.Scalar(), state.environment,
                                               scalar_locator(file, source_lines, condition)));
  }
  if (const YAML::Node by = entry["by"]) {
    const auto add = [&](const YAML::Node& field) {
      if (!field.IsScalar()) fail(file, field.Mark(), "each 'by' entry is a field name");
      limit.by.push_back(compile_field(field.Scalar(), scalar_locator(file, source_lines, field)));
      info.by.push_back(field.Scalar());
    };
    if (by.IsSequence()) {
      for (const auto& field : by)
        add(field);
    } else {
      add(by);
    }
  }
  if (!read_enabled(entry, file)) return;
  state.limit_infos.push_back(std::move(info));
  state.limits.push_back(std::move(limit));
}

void load_document(const std::string& text, const std::string& file, LoadState& state) {
  std::vector<std::string> source_lines;
  {
    std::istringstream stream(text);
    for (std::string line; std::getline(stream, line);)
      source_lines.push_back(line);
  }
  if (const auto crossing = yaml_nesting::first_crossing(text)) {
    throw PolicyError(file + ":" + std::to_string(crossing->line) +
                      ":1: " + yaml_nesting::describe(*crossing));
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& error) {
    throw PolicyError(location(file, error.mark) + ": " + error.msg);
  }
  if (!root || root.IsNull()) return;  // an empty file is a valid, empty policy
  if (!root.IsSequence()) {
    fail(file, root.Mark(),
         "a policy file is a list of entries: '- list: …', '- macro: …', '- rule: …' or "
         "'- limit: …'");
  }
  for (const auto& entry : root) {
    if (!entry.IsMap())
      fail(file, entry.Mark(), "each entry must be a map with 'list', 'macro', 'rule' or 'limit'");
    if (entry["list"]) {
      check_keys(entry, {"list", "items"}, file, "list");
      const std::string name = required_string(entry, "list", file);
      const YAML::Node items = entry["items"];
      if (!items || !items.IsSequence())
        fail(file, entry.Mark(), "list '" + name + "' needs 'items: [...]'");
      std::vector<std::string> values;
      for (const auto& item : items) {
        if (!item.IsScalar()) fail(file, item.Mark(), "list items must be strings or numbers");
        // A list may include another list by name, as Falco's do.
        if (const auto nested = state.environment.lists.find(item.Scalar());
            nested != state.environment.lists.end()) {
          values.insert(values.end(), nested->second.begin(), nested->second.end());
        } else {
          values.push_back(item.Scalar());
        }
      }
      state.environment.lists[name] = std::move(values);
    } else if (entry["macro"]) {
      check_keys(entry, {"macro", "condition"}, file, "macro");
      const std::string name = required_string(entry, "macro", file);
      const YAML::Node condition = entry["condition"];
      if (!condition || !condition.IsScalar())
        fail(file, entry.Mark(), "macro '" + name + "' needs a 'condition'");
      state.environment.macros[name] = compile_condition(
          condition.Scalar(), state.environment, scalar_locator(file, source_lines, condition));
    } else if (entry["rule"]) {
      check_keys(entry,
                 {"rule", "description", "priority", "tags", "condition", "verdict", "message",
                  "enabled", "redact", "approver"},
                 file, "rule");
      CompiledRule rule;
      rule.info.id = required_string(entry, "rule", file);
      rule.info.file = file;
      rule.info.line = entry["rule"].Mark().line + 1;
      if (const auto previous = state.rule_locations.find(rule.info.id);
          previous != state.rule_locations.end()) {
        fail(file, entry["rule"].Mark(),
             "rule '" + rule.info.id + "' is already defined at " + previous->second);
      }
      state.rule_locations[rule.info.id] = location(file, entry["rule"].Mark());
      if (entry["description"]) rule.info.description = entry["description"].Scalar();
      if (const YAML::Node priority = entry["priority"]) {
        try {
          rule.info.priority = priority.as<int>();
        } catch (const YAML::Exception&) {
          fail(file, priority.Mark(), "'priority' must be an integer");
        }
      }
      if (const YAML::Node tags = entry["tags"]) {
        if (!tags.IsSequence()) fail(file, tags.Mark(), "'tags' must be a list");
        for (const auto& tag : tags)
          rule.info.tags.push_back(tag.Scalar());
      }
      const YAML::Node verdict = entry["verdict"];
      if (!verdict)
        fail(file, entry.Mark(),
             "rule '" + rule.info.id + "' needs a 'verdict' (allow, deny, ask or redact)");
      rule.info.verdict = parse_verdict(verdict, file);
      if (entry["message"]) rule.info.message = entry["message"].Scalar();
      if (const YAML::Node approver = entry["approver"]) read_approver(approver, file, rule.info);
      const YAML::Node condition = entry["condition"];
      if (!condition || !condition.IsScalar())
        fail(file, entry.Mark(), "rule '" + rule.info.id + "' needs a 'condition'");
      rule.condition = compile_condition(condition.Scalar(), state.environment,
                                         scalar_locator(file, source_lines, condition));
      rule.uses_arguments = references_arguments(*rule.condition);
      if (const auto methods = required_methods(*rule.condition)) {
        rule.names_methods = true;
        rule.methods = 0;
        for (const auto& method : *methods)
          rule.methods |= bit_of_method(method);
      }
      if (const YAML::Node patterns = entry["redact"]) {
        if (rule.info.verdict != Verdict::redact) {
          fail(file, patterns.Mark(), "'redact' patterns belong to rules with 'verdict: redact'");
        }
        if (!patterns.IsSequence() || patterns.size() == 0) {
          fail(file, patterns.Mark(), "'redact' must be a list of regular expressions");
        }
        std::size_t entry_number = 0;
        for (const auto& pattern : patterns) {
          ++entry_number;
          if (!pattern.IsScalar() || pattern.Scalar().empty()) {
            // An empty entry's own mark points past it, at the next line.
            fail(file, pattern.IsNull() ? patterns.Mark() : pattern.Mark(),
                 "redact entry " + std::to_string(entry_number) +
                     ": a redact pattern must be a non-empty regular expression");
          }
          auto regex = std::make_shared<const re2::RE2>(pattern.Scalar(), re2::RE2::Quiet);
          if (!regex->ok())
            fail(file, pattern.Mark(), "invalid regular expression: " + regex->error());
          // A pattern that matches nothing at all ('x*', '(a)?') masks nothing real: it is a
          // mistake, and would otherwise only hide what the operator meant to write.
          if (re2::RE2::FullMatch("", *regex)) {
            fail(file, pattern.Mark(),
                 "the redact pattern '" + pattern.Scalar() +
                     "' matches the empty string; write what it must find (e.g. 'x+' for 'x*')");
          }
          rule.info.redact_patterns.push_back(pattern.Scalar());
          rule.redactions.push_back(std::move(regex));
        }
      } else if (rule.info.verdict == Verdict::redact) {
        fail(file, entry["verdict"].Mark(),
             "a redact rule needs 'redact: [patterns]' to mask in results");
      }
      if (read_enabled(entry, file)) state.rules.push_back(std::move(rule));
    } else if (entry["limit"]) {
      load_limit(entry, file, source_lines, state);
    } else {
      fail(file, entry.Mark(), "an entry needs one of 'list', 'macro', 'rule' or 'limit'");
    }
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw PolicyError(path.string() + ":0:0: cannot read the policy file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::shared_ptr<const CompiledPolicy> finish(LoadState state, Verdict default_verdict) {
  auto compiled = std::make_shared<CompiledPolicy>();
  compiled->default_verdict = default_verdict;
  std::stable_sort(state.rules.begin(), state.rules.end(),
                   [](const CompiledRule& a, const CompiledRule& b) {
                     if (a.info.verdict != b.info.verdict) return a.info.verdict > b.info.verdict;
                     return a.info.priority > b.info.priority;
                   });
  for (const auto& rule : state.rules)
    compiled->infos.push_back(rule.info);
  compiled->ordered = std::move(state.rules);
  std::vector<NodePtr> programs;
  for (auto& rule : compiled->ordered) {
    rule.program = optimize(rule.condition);
    const auto names = required_tool_names(*rule.condition);
    rule.indexed_program = names ? without_tool_selector(rule.program, *names) : rule.program;
    programs.push_back(rule.program);
    programs.push_back(rule.indexed_program);
  }
  compiled->decision_index = build_decision_index(programs);
  compiled->any_request_headers =
      std::any_of(
          compiled->ordered.begin(), compiled->ordered.end(),
          [](const CompiledRule& rule) { return references_request_headers(*rule.condition); }) ||
      std::any_of(state.limits.begin(), state.limits.end(), [](const CompiledLimit& limit) {
        return (limit.program && references_request_headers(*limit.program)) ||
               std::any_of(limit.by.begin(), limit.by.end(),
                           [](const NodePtr& field) { return references_request_headers(*field); });
      });
  compiled->limit_infos = std::move(state.limit_infos);
  compiled->limits = std::move(state.limits);
  compiled->any_redactions =
      std::any_of(compiled->ordered.begin(), compiled->ordered.end(),
                  [](const CompiledRule& rule) { return rule.info.verdict == Verdict::redact; });
  if (compiled->any_redactions) {
    auto prefilter = std::make_shared<re2::RE2::Set>(re2::RE2::Quiet, re2::RE2::UNANCHORED);
    bool added = true;
    for (const auto& rule : compiled->ordered) {
      for (const auto& pattern : rule.redactions)
        added = added && prefilter->Add(pattern->pattern(), nullptr) >= 0;
    }
    // A pattern the set cannot take leaves results to the full scan, never unmasked.
    if (added && prefilter->Compile()) compiled->redaction_prefilter = std::move(prefilter);
  }
  for (std::uint32_t position = 0; position < compiled->ordered.size(); ++position) {
    if (const auto names = required_tool_names(*compiled->ordered[position].condition)) {
      for (const auto& name : *names) {
        auto& bucket = compiled->by_tool[name];
        if (bucket.empty() || bucket.back() != position) bucket.push_back(position);
      }
    } else {
      compiled->any_tool.push_back(position);
    }
  }
  return compiled;
}

}  // namespace

std::shared_ptr<const CompiledPolicy> compile_files(const std::vector<std::string>& files,
                                                    Verdict default_verdict) {
  LoadState state;
  for (const auto& file : files)
    load_document(read_file(file), file, state);
  return finish(std::move(state), default_verdict);
}

std::shared_ptr<const CompiledPolicy> compile_text(const std::string& yaml_text,
                                                   const std::string& source,
                                                   Verdict default_verdict) {
  LoadState state;
  load_document(yaml_text, source, state);
  return finish(std::move(state), default_verdict);
}

}  // namespace membrane::policy
