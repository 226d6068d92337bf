#include "membrane/app/policy_commands.hpp"
#include "membrane/core/json.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "membrane/core/yaml_nesting.hpp"
#include "membrane/mcp/tool_pins.hpp"
#include "membrane/policy/policy.hpp"

namespace membrane::app {
namespace {

using policy::Json;

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw YAML::BadFile(path.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool is_test_file(const std::filesystem::path& path) {
  return policy::is_test_file(path.filename().string());
}

// A call description may hold at most this many YAML nodes once aliases are expanded: a few
// aliases of aliases ("billion laughs") would otherwise expand into billions of values.
constexpr std::size_t max_call_nodes = 100'000;

// YAML -> JSON for call descriptions written in test files. Scalars that read as numbers or
// booleans become those; everything else stays a string. The file's nesting was bounded before
// it was loaded, so the recursion is too; `budget` bounds the expansion of aliases.
Json to_json(const YAML::Node& node, std::size_t& budget) {
  if (budget == 0) throw std::runtime_error("the call expands to more than 100000 values");
  --budget;
  if (node.IsMap()) {
    Json object = Json::object();
    for (const auto& item : node)
      object[item.first.Scalar()] = to_json(item.second, budget);
    return object;
  }
  if (node.IsSequence()) {
    Json array = Json::array();
    for (const auto& item : node)
      array.push_back(to_json(item, budget));
    return array;
  }
  if (!node.IsScalar() || node.IsNull()) return nullptr;
  const std::string& text = node.Scalar();
  if (node.Tag() != "!") {
    if (text == "true") return true;
    if (text == "false") return false;
    const auto number = json::parse_or_discarded(text);
    if (number.is_number()) return number;
  }
  return text;
}

policy::Verdict verdict_named(const std::string& name, bool& ok) {
  ok = true;
  if (name == "allow") return policy::Verdict::allow;
  if (name == "deny") return policy::Verdict::deny;
  if (name == "ask") return policy::Verdict::ask;
  if (name == "redact") return policy::Verdict::redact;
  ok = false;
  return policy::Verdict::allow;
}

}  // namespace

int policy_check(const std::vector<std::string>& paths) {
  try {
    const auto loaded = policy::Policy::load(paths);
    std::cout << "ok: " << loaded.rule_count() << " rule" << (loaded.rule_count() == 1 ? "" : "s");
    if (const auto limits = loaded.limit_rules().size(); limits > 0)
      std::cout << ", " << limits << " rate limit" << (limits == 1 ? "" : "s");
    std::cout << "\n";
    return 0;
  } catch (const policy::PolicyError& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
}

namespace {

// What a labelled case (`label:` and `area:`) adds up to, per area.
struct AreaTally {
  int attacks = 0;          // labelled deny or ask
  int caught = 0;           // of those, judged deny or ask
  int ordinary = 0;         // labelled allow
  int false_positives = 0;  // of those, judged deny or ask
};

struct TestRun {
  int passed = 0;
  int failed = 0;
  std::map<std::string, AreaTally> areas;
};

// A tools/list recording is read whole; this bounds it.
constexpr std::size_t max_fixture_bytes = 8 * 1024 * 1024;

// `- tools: FILE`: a recorded tools/list ({"server": NAME, "tools": [...]}). Cases calling that
// server get the listed tool's definition as the gateway would have learnt it.
std::string load_tool_fixture(const std::filesystem::path& file,
                              std::map<std::string, std::map<std::string, Json>>& fixtures) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return "cannot read " + file.string() + ": " + ec.message();
  if (size > max_fixture_bytes) return file.string() + " is larger than 8 MiB";
  const auto parsed = json::parse(read_text_file(file));
  if (!parsed.ok()) return file.string() + ": " + parsed.reason();
  const Json& recording = parsed.value;
  const auto server = recording.is_object() ? recording.find("server") : recording.end();
  const auto tools = recording.is_object() ? recording.find("tools") : recording.end();
  if (!recording.is_object() || server == recording.end() || !server->is_string() ||
      tools == recording.end() || !tools->is_array())
    return file.string() + ": expected {\"server\": NAME, \"tools\": [...]}";
  auto& by_name = fixtures[server->get<std::string>()];
  for (const auto& tool : *tools) {
    if (tool.is_object() && tool.contains("name") && tool["name"].is_string())
      by_name[tool["name"].get<std::string>()] = tool;
  }
  return {};
}

void run_test_file(const policy::Policy& loaded, const std::filesystem::path& test_file,
                   TestRun& run) {
  YAML::Node cases;
  try {
    const std::string text = read_text_file(test_file);
    if (const auto crossing = yaml_nesting::first_crossing(text)) {
      std::cerr << test_file.string() << ":" << crossing->line
                << ":1: " << yaml_nesting::describe(*crossing) << "\n";
      ++run.failed;
      return;
    }
    cases = YAML::Load(text);
  } catch (const YAML::Exception& error) {
    std::cerr << test_file.string() << ":" << error.mark.line + 1 << ":" << error.mark.column + 1
              << ": " << error.msg << "\n";
    ++run.failed;
    return;
  }
  if (!cases.IsSequence()) {
    std::cerr << test_file.string()
              << ":1:1: a test file is a list of cases (name, call, expect)\n";
    ++run.failed;
    return;
  }
  std::map<std::string, std::map<std::string, Json>> fixtures;
  for (const auto& test_case : cases) {
    const std::string where = test_file.string() + ":" + std::to_string(test_case.Mark().line + 1);
    if (test_case.IsMap() && test_case["tools"]) {
      const std::filesystem::path fixture = test_file.parent_path() / test_case["tools"].Scalar();
      if (const auto problem = load_tool_fixture(fixture, fixtures); !problem.empty()) {
        std::cerr << where << ": " << problem << "\n";
        ++run.failed;
      }
      continue;
    }
    const std::string name = test_case["name"] ? test_case["name"].Scalar() : "(unnamed)";
    const bool labelled = static_cast<bool>(test_case["label"]);
    bool ok = false;
    const auto expected =
        verdict_named(labelled ? test_case["label"].Scalar()
                               : (test_case["expect"] ? test_case["expect"].Scalar() : ""),
                      ok);
    if (!ok || !test_case["call"] || (labelled && expected == policy::Verdict::redact)) {
      std::cerr << where << ": case '" << name
                << "' needs 'call' and 'expect: allow|deny|ask|redact' (or 'label: "
                   "allow|deny|ask' with 'area')\n";
      ++run.failed;
      continue;
    }
    Json call;
    try {
      std::size_t budget = max_call_nodes;
      call = to_json(test_case["call"], budget);
    } catch (const std::runtime_error& error) {
      std::cerr << where << ": case '" << name << "': " << error.what() << "\n";
      ++run.failed;
      continue;
    }
    std::string problem;
    // A case for a recorded server calls one of its recorded tools, with its definition.
    const std::string server = call.is_object() ? call.value("server", std::string()) : "";
    if (const auto recorded = fixtures.find(server);
        recorded != fixtures.end() && !call.contains("tool")) {
      const Json* params =
          call.contains("params") && call["params"].is_object() ? &call["params"] : nullptr;
      const std::string tool = params && params->contains("name") && (*params)["name"].is_string()
                                   ? (*params)["name"].get<std::string>()
                                   : std::string();
      if (const auto definition = recorded->second.find(tool);
          definition != recorded->second.end()) {
        call["tool"] = definition->second;
      } else if (call.value("method", std::string("tools/call")) == "tools/call") {
        problem = "tool '" + tool + "' is not in the recording of server '" + server + "'";
      }
    }
    std::string tool_text;
    const auto decision = loaded.decide(policy::call_from_json(call, tool_text), true);
    const bool blocked =
        decision.verdict == policy::Verdict::deny || decision.verdict == policy::Verdict::ask;
    if (labelled) {
      auto& area = run.areas[test_case["area"] ? test_case["area"].Scalar() : "(no area)"];
      if (expected == policy::Verdict::allow) {
        ++area.ordinary;
        if (blocked) ++area.false_positives;
      } else {
        ++area.attacks;
        if (blocked) ++area.caught;
      }
    }
    // `label: allow` is ordinary work: it must be forwarded (allow, or redact: forwarded with
    // its result masked).
    const bool verdict_fits =
        labelled && expected == policy::Verdict::allow ? !blocked : decision.verdict == expected;
    if (!problem.empty()) {
    } else if (!verdict_fits) {
      problem = "expected " + std::string(to_string(expected)) + ", got " +
                std::string(to_string(decision.verdict)) +
                (decision.rule ? " (rule '" + decision.rule->id + "')" : " (default verdict)");
    } else if (const YAML::Node rule = test_case["rule"];
               rule && (!decision.rule || decision.rule->id != rule.Scalar())) {
      problem =
          "expected rule '" + rule.Scalar() + "' to decide, got " +
          (decision.rule ? "'" + decision.rule->id + "'" : std::string("the default verdict"));
    }
    if (const YAML::Node limits = test_case["limits"]; problem.empty() && limits) {
      // The ids of the limits that charge this call, in file order.
      std::vector<std::string> expected_limits;
      if (limits.IsSequence()) {
        for (const auto& id : limits)
          expected_limits.push_back(id.Scalar());
      } else {
        expected_limits.push_back(limits.Scalar());
      }
      std::vector<std::string> charged;
      for (const auto& charge : loaded.limits(policy::call_from_json(call, tool_text)))
        charged.push_back(charge.limit->id);
      if (charged != expected_limits) {
        const auto listed = [](const std::vector<std::string>& ids) {
          std::string text = "[";
          for (const auto& id : ids)
            text += (text.size() > 1 ? ", " : "") + id;
          return text + "]";
        };
        problem = "expected limits " + listed(expected_limits) + ", got " + listed(charged);
      }
    }
    if (problem.empty()) {
      ++run.passed;
    } else {
      ++run.failed;
      std::cout << "FAIL " << where << ": " << name << ": " << problem << "\n";
    }
  }
}

std::vector<std::filesystem::path> test_files_under(const std::filesystem::path& base) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(base)) {
    // A recorder's node_modules, or a dot directory, holds no cases of ours.
    for (auto it = std::filesystem::recursive_directory_iterator(base);
         it != std::filesystem::recursive_directory_iterator(); ++it) {
      const std::string name = it->path().filename().string();
      if (it->is_directory() && (name == "node_modules" || name.starts_with("."))) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && is_test_file(it->path())) files.push_back(it->path());
    }
  } else {
    files.push_back(base);
  }
  std::sort(files.begin(), files.end());
  return files;
}

void print_areas(const TestRun& run) {
  if (run.areas.empty()) return;
  std::cout << "area                 attacks caught  recall  ordinary false-positives\n";
  for (const auto& [name, tally] : run.areas) {
    char line[160];
    const double recall = tally.attacks == 0 ? 100.0 : 100.0 * tally.caught / tally.attacks;
    std::snprintf(line, sizeof line, "%-20s %7d %6d %6.1f%% %9d %15d\n", name.c_str(),
                  tally.attacks, tally.caught, recall, tally.ordinary, tally.false_positives);
    std::cout << line;
  }
}

// The labelled cases per area, then "N passed, M failed"; the exit code.
int report(const TestRun& run) {
  print_areas(run);
  std::cout << run.passed << " passed, " << run.failed << " failed\n";
  return run.failed == 0 ? 0 : 1;
}

// The policy of `paths`, or nothing when it does not load (the error is printed).
std::optional<policy::Policy> load_or_report(const std::vector<std::string>& paths) {
  try {
    return policy::Policy::load(paths);
  } catch (const policy::PolicyError& error) {
    std::cerr << error.what() << "\n";
    return std::nullopt;
  }
}

}  // namespace

int policy_test(const std::vector<std::string>& paths, const std::vector<std::string>& case_paths) {
  TestRun run;
  if (!case_paths.empty()) {
    // Rules from -p, cases from the paths given.
    const auto loaded = load_or_report(paths);
    if (!loaded) return 1;
    for (const auto& root : case_paths) {
      if (!std::filesystem::exists(root)) {
        std::cerr << root << ": no such file or directory\n";
        return 1;
      }
      for (const auto& file : test_files_under(root))
        run_test_file(*loaded, file, run);
    }
    return report(run);
  }
  // Each path's rules and the cases beside them.
  for (const auto& root : paths) {
    std::vector<std::filesystem::path> policy_files;
    std::vector<std::filesystem::path> test_files;
    const std::filesystem::path base(root);
    if (std::filesystem::is_directory(base)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(base)) {
        const auto extension = entry.path().extension();
        if (!entry.is_regular_file() || (extension != ".yaml" && extension != ".yml")) continue;
        (is_test_file(entry.path()) ? test_files : policy_files).push_back(entry.path());
      }
    } else if (is_test_file(base)) {
      test_files.push_back(base);
      for (const auto& entry : std::filesystem::directory_iterator(
               base.parent_path().empty() ? "." : base.parent_path())) {
        const auto extension = entry.path().extension();
        if (entry.is_regular_file() && (extension == ".yaml" || extension == ".yml") &&
            !is_test_file(entry.path())) {
          policy_files.push_back(entry.path());
        }
      }
    } else {
      std::cerr << root << ": not a directory or a *.test.yaml file\n";
      return 1;
    }
    std::sort(policy_files.begin(), policy_files.end());
    std::sort(test_files.begin(), test_files.end());
    std::vector<std::string> policy_paths;
    for (const auto& file : policy_files)
      policy_paths.push_back(file.string());
    const auto loaded = load_or_report(policy_paths);
    if (!loaded) return 1;
    for (const auto& test_file : test_files)
      run_test_file(*loaded, test_file, run);
  }
  return report(run);
}

int policy_pin(const std::vector<std::string>& recordings, const std::string& pins_file,
               const std::string& server, bool prune) {
  mcp::ToolPins pins;
  std::error_code ec;
  try {
    if (std::filesystem::exists(pins_file, ec)) pins = mcp::read_pins_file(pins_file);
  } catch (const mcp::PinsFileError& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  int changes = 0;
  for (const auto& source : recordings) {
    std::string text;
    if (source == "-") {
      // Bounded like a file: a recording is read whole.
      char buffer[64 * 1024];
      while (std::cin.read(buffer, sizeof buffer) || std::cin.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(std::cin.gcount()));
        if (text.size() > max_fixture_bytes) {
          std::cerr << "-: the recording is larger than 8 MiB\n";
          return 1;
        }
      }
    } else {
      const auto size = std::filesystem::file_size(source, ec);
      if (ec || size > max_fixture_bytes) {
        std::cerr << source << ": " << (ec ? ec.message() : "larger than 8 MiB") << "\n";
        return 1;
      }
      text = read_text_file(source);
    }
    const auto parsed = json::parse(text);
    if (!parsed.ok()) {
      std::cerr << source << ": " << parsed.reason() << "\n";
      return 1;
    }
    const Json* listing = &parsed.value;
    if (listing->is_object() && listing->contains("result") && (*listing)["result"].is_object())
      listing = &(*listing)["result"];
    std::string name = server;
    if (listing->is_object() && listing->contains("server") && (*listing)["server"].is_string())
      name = (*listing)["server"].get<std::string>();
    if (!listing->is_object() || !listing->contains("tools") || !(*listing)["tools"].is_array()) {
      std::cerr << source << ": expected a tools/list result ({\"tools\": [...]})\n";
      return 1;
    }
    if (name.empty()) {
      std::cerr << source << ": the recording does not name its upstream; pass --server NAME\n";
      return 1;
    }
    auto& pinned = pins[name];
    std::map<std::string, mcp::ToolDigest> listed;
    for (const auto& tool : (*listing)["tools"]) {
      if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) continue;
      listed[tool["name"].get<std::string>()] = mcp::digest_tool(tool);
    }
    for (auto& [tool, digest] : listed) {
      const auto before = pinned.find(tool);
      if (before == pinned.end()) {
        std::cout << "added     " << name << "/" << tool << " " << digest.digest << "\n";
        ++changes;
      } else if (!(before->second == digest)) {
        std::cout << "changed   " << name << "/" << tool << " ("
                  << mcp::changed_parts(before->second, digest) << ") " << before->second.digest
                  << " -> " << digest.digest << "\n";
        ++changes;
      }
      pinned[tool] = std::move(digest);
    }
    if (prune) {
      for (auto it = pinned.begin(); it != pinned.end();) {
        if (listed.contains(it->first)) {
          ++it;
          continue;
        }
        std::cout << "removed   " << name << "/" << it->first << "\n";
        ++changes;
        it = pinned.erase(it);
      }
    }
  }
  try {
    mcp::write_pins_file(pins_file, pins);
  } catch (const mcp::PinsFileError& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  std::size_t total = 0;
  for (const auto& [upstream, tools] : pins)
    total += tools.size();
  std::cout << pins_file << ": " << total << " tool" << (total == 1 ? "" : "s") << " pinned, "
            << changes << " change" << (changes == 1 ? "" : "s") << "\n";
  return 0;
}

int policy_explain(const std::vector<std::string>& paths, const std::string& call_json,
                   bool json_output) {
  std::optional<policy::Policy> loaded;
  try {
    loaded = policy::Policy::load(paths);
  } catch (const policy::PolicyError& error) {
    std::cerr << error.what() << "\n";
    return 1;
  }
  const Json call = json::parse_or_discarded(call_json);
  if (!call.is_object()) {
    std::cerr << "--call: expected a JSON object like {\"method\":\"tools/call\",\"server\":\"fs\","
                 "\"params\":{\"name\":\"read_file\",\"arguments\":{\"path\":\"/etc/passwd\"}}}\n";
    return 2;
  }
  std::string tool_text;
  const auto context = policy::call_from_json(call, tool_text);
  const auto decision = loaded->decide(context, true);
  const auto charges = loaded->limits(context);
  // A bucket is the limit id, then one "\x1f<value>" per `by` field.
  const auto bucket_values = [](const policy::LimitCharge& charge) {
    std::vector<std::string> values;
    std::size_t start = charge.bucket.find('\x1f');
    while (start != std::string::npos) {
      const std::size_t end = charge.bucket.find('\x1f', start + 1);
      values.push_back(charge.bucket.substr(
          start + 1, end == std::string::npos ? std::string::npos : end - start - 1));
      start = end;
    }
    return values;
  };
  if (json_output) {
    Json out = {{"verdict", to_string(decision.verdict)},
                {"rule", decision.rule ? Json(decision.rule->id) : Json(nullptr)},
                {"rules", Json::array()}};
    for (const auto* rule : decision.matched) {
      out["rules"].push_back(rule->id);
      out["matched"].push_back({{"id", rule->id},
                                {"verdict", to_string(rule->verdict)},
                                {"priority", rule->priority},
                                {"description", rule->description},
                                {"message", rule->message},
                                {"source", rule->file + ":" + std::to_string(rule->line)}});
    }
    out["views"] = policy::describe_views(context);
    out["limits"] = Json::array();
    for (const auto& charge : charges) {
      Json bucket = Json::object();
      const auto values = bucket_values(charge);
      for (std::size_t i = 0; i < charge.limit->by.size() && i < values.size(); ++i)
        bucket[charge.limit->by[i]] = values[i];
      out["limits"].push_back(
          {{"id", charge.limit->id},
           {"rate", charge.limit->rate_text},
           {"burst", static_cast<long long>(charge.limit->burst)},
           {"bucket", std::move(bucket)},
           {"source", charge.limit->file + ":" + std::to_string(charge.limit->line)}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "verdict: " << to_string(decision.verdict);
  if (decision.rule)
    std::cout << " (decided by rule '" << decision.rule->id << "')\n";
  else
    std::cout << " (no rule holds: default verdict)\n";
  for (const auto* rule : decision.matched) {
    std::cout << "  matched " << rule->id << ": " << to_string(rule->verdict) << ", priority "
              << rule->priority << ", " << rule->file << ":" << rule->line;
    if (!rule->description.empty()) std::cout << " — " << rule->description;
    std::cout << "\n";
  }
  const Json views = policy::describe_views(context);
  for (const auto& [view, values] : views.items()) {
    std::cout << "  " << view << ": " << values.dump(-1, ' ', false, Json::error_handler_t::replace)
              << "\n";
  }
  for (const auto& charge : charges) {
    std::cout << "  limit " << charge.limit->id << ": " << charge.limit->rate_text << ", burst "
              << charge.limit->burst << ", " << charge.limit->file << ":" << charge.limit->line;
    const auto values = bucket_values(charge);
    for (std::size_t i = 0; i < charge.limit->by.size() && i < values.size(); ++i)
      std::cout << (i == 0 ? ", bucket " : ", ") << charge.limit->by[i] << "=" << values[i];
    std::cout << "\n";
  }
  return 0;
}

}  // namespace membrane::app
