#include "membrane/mcp/tool_pins.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "membrane/core/sha256.hpp"
#include "membrane/core/yaml_nesting.hpp"

namespace membrane::mcp {
namespace {

constexpr std::uintmax_t max_pins_file_bytes = 16 * 1024 * 1024;

std::string sha256_hex(std::string_view text) {
  return "sha256:" + core::sha256_hex(text);
}

std::string canonical(const Json& value) {
  // nlohmann's objects are ordered maps: dump() is canonical for key order.
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

ToolDigest digest_tool(const Json& tool) {
  ToolDigest out;
  std::string whole;
  for (const char* part : pinned_tool_parts) {
    const auto found = tool.is_object() ? tool.find(part) : tool.end();
    const std::string text = tool.is_object() && found != tool.end() ? canonical(*found) : "";
    out.parts[part] = sha256_hex(text);
    whole += part;
    whole.push_back('\x1f');
    whole += out.parts[part];
    whole.push_back('\x1e');
  }
  out.digest = sha256_hex(whole);
  return out;
}

std::string changed_parts(const ToolDigest& pinned, const ToolDigest& now) {
  std::string out;
  for (const char* part : pinned_tool_parts) {
    const auto before = pinned.parts.find(part);
    const auto after = now.parts.find(part);
    const bool differs =
        before == pinned.parts.end() || after == now.parts.end() || before->second != after->second;
    if (!differs) continue;
    if (!out.empty()) out += ", ";
    out += part;
  }
  return out;
}

ToolPins read_pins_file(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw PinsFileError(path + ":1:1: cannot read the pins file: " + ec.message());
  if (size > max_pins_file_bytes) throw PinsFileError(path + ":1:1: the pins file is over 16 MiB");
  std::ifstream in(path, std::ios::binary);
  const std::string text(std::istreambuf_iterator<char>(in), {});
  if (const auto crossing = yaml_nesting::first_crossing(text))
    throw PinsFileError(path + ":" + std::to_string(crossing->line) +
                        ":1: " + yaml_nesting::describe(*crossing));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& error) {
    throw PinsFileError(path + ":" + std::to_string(error.mark.line + 1) + ":" +
                        std::to_string(error.mark.column + 1) + ": " + error.msg);
  }
  const auto where = [&path](const YAML::Node& node) {
    return path + ":" + std::to_string(node.Mark().line + 1) + ":" +
           std::to_string(node.Mark().column + 1) + ": ";
  };
  ToolPins pins;
  if (root.IsNull()) return pins;
  if (!root.IsMap() || !root["upstreams"])
    throw PinsFileError(where(root) + "a pins file is a map with 'upstreams:'");
  const YAML::Node upstreams = root["upstreams"];
  if (upstreams.IsNull()) return pins;
  if (!upstreams.IsMap())
    throw PinsFileError(where(upstreams) + "'upstreams' maps upstream names to their tools");
  for (const auto& upstream : upstreams) {
    if (!upstream.second.IsMap())
      throw PinsFileError(where(upstream.second) + "upstream '" + upstream.first.Scalar() +
                          "' maps tool names to pins");
    auto& tools = pins[upstream.first.Scalar()];
    for (const auto& tool : upstream.second) {
      const YAML::Node& pin = tool.second;
      ToolDigest digest;
      if (pin.IsScalar()) {
        digest.digest = pin.Scalar();
      } else if (pin.IsMap() && pin["digest"] && pin["digest"].IsScalar()) {
        digest.digest = pin["digest"].Scalar();
        for (const char* part : pinned_tool_parts) {
          if (pin[part] && pin[part].IsScalar()) digest.parts[part] = pin[part].Scalar();
        }
      } else {
        throw PinsFileError(where(pin) + "tool '" + tool.first.Scalar() +
                            "' needs 'digest: sha256:…'");
      }
      if (!digest.digest.starts_with("sha256:") || digest.digest.size() != 7 + 64)
        throw PinsFileError(where(pin) + "tool '" + tool.first.Scalar() +
                            "': a digest is 'sha256:' and 64 hex digits");
      tools[tool.first.Scalar()] = std::move(digest);
    }
  }
  return pins;
}

void write_pins_file(const std::string& path, const ToolPins& pins) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "upstreams" << YAML::Value << YAML::BeginMap;
  for (const auto& [upstream, tools] : pins) {
    out << YAML::Key << upstream << YAML::Value << YAML::BeginMap;
    for (const auto& [name, digest] : tools) {
      out << YAML::Key << name << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "digest" << YAML::Value << digest.digest;
      for (const char* part : pinned_tool_parts) {
        if (const auto found = digest.parts.find(part); found != digest.parts.end())
          out << YAML::Key << part << YAML::Value << found->second;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    file << "# Tool pins: the digest of each tool's definition as its server listed it.\n"
            "# Written by `membrane policy pin`; a listed tool whose definition differs is\n"
            "# `tool.changed` to the policy (the default ruleset hides it and refuses its calls).\n"
         << out.c_str() << "\n";
    if (!file) throw PinsFileError(path + ":1:1: cannot write " + temporary);
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) throw PinsFileError(path + ":1:1: cannot replace the pins file: " + ec.message());
}

}  // namespace membrane::mcp
