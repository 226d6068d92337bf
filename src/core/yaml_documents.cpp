#include "membrane/core/yaml_documents.hpp"

#include <yaml-cpp/eventhandler.h>

#include <sstream>
#include <vector>

namespace membrane::yaml_documents {
namespace {

// Only where documents start matters; the nodes are built by YAML::Load afterwards.
class DocumentStarts final : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;

  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

SingleDocument load_first(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  // Two documents at most: the second only says that there is one.
  for (int handled = 0; handled < 2 && parser.HandleNextDocument(starts); ++handled) {
  }
  const auto& marks = starts.marks;
  // A "document" that starts where the previous one did consumed nothing: the parser is stuck
  // on something it cannot read, and LoadAll would produce such documents forever.
  if (marks.size() == 2 && marks[1].pos <= marks[0].pos) {
    throw YAML::ParserException(marks[1],
                                "cannot parse the text from here (a stray ',', ':' or "
                                "flow indicator?)");
  }
  SingleDocument document;
  document.root = YAML::Load(text);
  if (marks.size() == 2) document.extra_document = marks[1];
  return document;
}

}  // namespace membrane::yaml_documents
