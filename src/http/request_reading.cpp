#include "http/request_reading.hpp"

#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace membrane::http {
namespace {

bool is_quiet_disconnect(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == beast::error::timeout || ec == asio::ssl::error::stream_truncated;
}

std::string body_limit_text(const ServerOptions& options) {
  return " exceeds the limit of " + std::to_string(options.max_body_bytes) + " bytes";
}

}  // namespace

void apply_request_limits(RequestParser& parser, const ServerOptions& options) {
  parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
  parser.body_limit(options.max_body_bytes);
}

std::optional<ReadRefusal> read_refusal(const error_code& ec, ReadPhase phase,
                                        const RequestParser& parser, const ServerOptions& options) {
  if (ec == bhttp::error::body_limit) {
    // In the header phase Beast has checked a declared Content-Length against the limit. The
    // header is not done for Beast then (content_length() asserts that it is), but its fields are
    // parsed and Content-Length is known to be a number.
    std::string message = "request body";
    if (phase == ReadPhase::header) {
      if (const auto declared = parser.get()[bhttp::field::content_length]; !declared.empty())
        message += " of " + std::string(declared) + " bytes";
    }
    return ReadRefusal{bhttp::status::payload_too_large, message + body_limit_text(options), true};
  }
  if (phase == ReadPhase::header && ec == bhttp::error::header_limit) {
    return ReadRefusal{
        bhttp::status::request_header_fields_too_large,
        "request headers exceed " + std::to_string(options.max_header_bytes) + " bytes", false};
  }
  if (ec == beast::error::timeout) {
    return ReadRefusal{bhttp::status::request_timeout,
                       phase == ReadPhase::header ? "request headers not received in time"
                                                  : "request body not received in time",
                       false};
  }
  if (is_quiet_disconnect(ec)) return std::nullopt;
  return ReadRefusal{
      bhttp::status::bad_request,
      (phase == ReadPhase::header ? "malformed HTTP request: " : "malformed HTTP request body: ") +
          ec.message(),
      false};
}

std::optional<ReadRefusal> declared_length_refusal(const RequestParser& parser,
                                                   const ServerOptions& options) {
  const auto declared = parser.content_length();
  if (!declared || *declared <= options.max_body_bytes) return std::nullopt;
  return ReadRefusal{
      bhttp::status::payload_too_large,
      "request body of " + std::to_string(*declared) + " bytes" + body_limit_text(options), true};
}

error_code parse_buffered(RequestParser& parser, beast::flat_buffer& buffer, ReadPhase phase) {
  parser.eager(phase == ReadPhase::body);
  error_code ec;
  while (buffer.size() > 0 && !parser.is_done()) {
    const std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_more) return {};
    if (ec || used == 0) return ec;
    if (phase == ReadPhase::header && parser.is_header_done()) return {};
  }
  return ec;
}

}  // namespace membrane::http
