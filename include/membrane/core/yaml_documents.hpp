// Reading the one YAML document of an operator file (the config, the injector config) without
// YAML::LoadAll. yaml-cpp 0.7 (Debian 12) loops forever in LoadAll on some malformed texts, and
// allocates on every turn until memory runs out: a 6-byte file (",n\n: i", found by the config
// fuzz target) hung `membrane config check`. Upstream fixed it after 0.7 (jbeder/yaml-cpp#1319).
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

namespace membrane::yaml_documents {

struct SingleDocument {
  YAML::Node root;                           // null for an empty text
  std::optional<YAML::Mark> extra_document;  // where a second document starts, if one does
};

// The first document of `text`, and where a second one starts. Throws YAML::Exception (with its
// mark) on a syntax error, including the texts yaml-cpp cannot get past.
SingleDocument load_first(const std::string& text);

}  // namespace membrane::yaml_documents
