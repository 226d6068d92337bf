// libFuzzer target: the bytes a client sends on one connection. They are read as the server reads
// them (http/request_reading.hpp: Beast's request parser with the server's limits, request after
// request on a kept-alive connection, in reads of a few bytes at a time), once with the gateway's
// default limits and once with small ones so the limit paths are reached too; each way twice, from
// the bytes already buffered first (as the server does) and by reads alone, which must agree. A
// complete request
// then goes through the checks the gateway makes before routing: path and query, Origin and
// Host, Accept and Content-Type, the headers policy rules see, and the posted JSON-RPC message.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/responses.hpp"
#include "gateway/revision.hpp"
#include "http/request_reading.hpp"
#include "membrane/app/config.hpp"
#include "membrane/core/log.hpp"
#include "membrane/http/origin_policy.hpp"

namespace {

using namespace membrane;

// A connection whose peer sent `bytes` and then closed it: reads return at most `step` bytes.
class ScriptedConnection {
 public:
  ScriptedConnection(std::string_view bytes, std::size_t step) : bytes_(bytes), step_(step) {}

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, error_code& ec) {
    ec = {};
    if (bytes_.empty()) {
      ec = asio::error::eof;
      return 0;
    }
    const std::size_t n =
        asio::buffer_copy(buffers, asio::buffer(bytes_.data(), std::min(step_, bytes_.size())));
    bytes_.remove_prefix(n);
    return n;
  }
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::string_view bytes_;
  std::size_t step_;
};

void look_at(http::Request& request) {
  static const http::OriginPolicy loopback_only({}, {}, true);
  static const http::OriginPolicy configured({"https://app.example.com", "http://localhost:*"},
                                             {"gateway.example.com", "localhost:*"}, false);
  const std::string_view target = request.target();
  const std::string_view path = gateway::target_path(target);
  (void)gateway::query_parameter(target, "sessionId");
  (void)path;
  for (const auto* policy : {&loopback_only, &configured}) {
    (void)policy->origin_allowed(request[http::bhttp::field::origin]);
    (void)policy->host_allowed(request[http::bhttp::field::host]);
  }
  const std::string_view accept = request[http::bhttp::field::accept];
  (void)gateway::accepts(accept, "application/json");
  (void)gateway::accepts(accept, "text/event-stream");
  (void)gateway::request_headers_json(request);
  if (request.method() != http::bhttp::verb::post) return;
  auto posted = gateway::read_posted_message(request);
  if (!posted.message) return;
  if (gateway::is_stateless_request(request, *posted.message))
    (void)gateway::check_stateless_request(request, *posted.message);
}

// Reads requests from the connection as serve_requests does, until one is refused or the
// connection would close: first from what is already buffered (http::parse_buffered), reading only
// for the rest; or, with `buffered_first` false, by reads alone. What was read is written down,
// one line per request or refusal: both ways must read the same.
std::string serve(std::string_view bytes, std::size_t step, const http::ServerOptions& options,
                  bool buffered_first) {
  ScriptedConnection connection(bytes, step);
  beast::flat_buffer buffer;
  std::string outcome;
  const auto refused = [&](const error_code& ec, http::ReadPhase phase,
                           const http::RequestParser& parser) {
    const auto refusal = http::read_refusal(ec, phase, parser, options);
    outcome += refusal
                   ? std::to_string(static_cast<unsigned>(refusal->status)) + " " + refusal->message
                   : "closed";
    return outcome;
  };
  for (int requests = 0; requests < 16; ++requests) {
    http::RequestParser parser;
    http::apply_request_limits(parser, options);
    error_code ec;
    if (buffered_first) ec = http::parse_buffered(parser, buffer, http::ReadPhase::header);
    if (!ec && !parser.is_header_done()) http::bhttp::read_header(connection, buffer, parser, ec);
    if (ec) return refused(ec, http::ReadPhase::header, parser);
    if (const auto refusal = http::declared_length_refusal(parser, options)) {
      return outcome + std::to_string(static_cast<unsigned>(refusal->status)) + " " +
             refusal->message;
    }
    if (buffered_first) ec = http::parse_buffered(parser, buffer, http::ReadPhase::body);
    if (!ec && !parser.is_done()) http::bhttp::read(connection, buffer, parser, ec);
    if (ec) return refused(ec, http::ReadPhase::body, parser);
    http::Request request = parser.release();
    outcome += std::string(request.method_string()) + " " + std::string(request.target()) + " " +
               std::to_string(request.body().size()) + ":" + request.body() + "\n";
    look_at(request);
    if (!request.keep_alive()) return outcome;
  }
  return outcome;
}

http::ServerOptions gateway_limits() {
  const app::LimitsConfig limits;  // what `membrane serve` configures when limits: is not set
  http::ServerOptions options;
  options.max_body_bytes = limits.max_request_body_bytes;
  options.max_header_bytes = limits.max_request_header_bytes;
  return options;
}

http::ServerOptions small_limits() {
  http::ServerOptions options;
  options.max_body_bytes = 512;
  options.max_header_bytes = 256;
  return options;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  membrane::log::set_level(membrane::log::Level::error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  static const http::ServerOptions defaults = gateway_limits();
  static const http::ServerOptions small = small_limits();
  // The whole input in one read, then in reads whose size depends on the input, so requests and
  // their fields are split at every kind of place.
  const std::pair<std::size_t, const http::ServerOptions*> ways[] = {
      {4096, &defaults}, {1 + size % 13, &defaults}, {1 + size % 7, &small}};
  for (const auto& [step, options] : ways) {
    if (serve(bytes, step, *options, true) != serve(bytes, step, *options, false)) __builtin_trap();
  }
  return 0;
}
