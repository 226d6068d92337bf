#include "http/wire.hpp"

namespace membrane::http {
namespace bhttp = boost::beast::http;

namespace {
void append_fields(std::string& out, const bhttp::fields& fields) {
  for (const auto& field : fields) {
    out.append(field.name_string());
    out.append(": ");
    out.append(field.value());
    out.append("\r\n");
  }
  out.append("\r\n");
}

void append_version(std::string& out, unsigned version) {
  out.append("HTTP/");
  out.push_back(static_cast<char>('0' + version / 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + version % 10));
}
}  // namespace

void append_head(std::string& out, const bhttp::response_header<>& head) {
  append_version(out, head.version());
  out.push_back(' ');
  out.append(std::to_string(head.result_int()));
  out.push_back(' ');
  const auto reason = head.reason();
  out.append(reason.empty() ? bhttp::obsolete_reason(head.result()) : reason);
  out.append("\r\n");
  append_fields(out, head);
}

void append_head(std::string& out, const bhttp::request_header<>& head) {
  out.append(head.method_string());
  out.push_back(' ');
  out.append(head.target());
  out.push_back(' ');
  append_version(out, head.version());
  out.append("\r\n");
  append_fields(out, head);
}

}  // namespace membrane::http
