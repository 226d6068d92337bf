// How the server reads the bytes of one request: a Beast parser with the configured header and
// body limits, and the answer to input that breaks them. Apart from server.cpp so that this step
// can be driven without a socket (tests/fuzz/http_request_fuzz.cpp feeds it bytes).
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <optional>
#include <string>

#include "http/server.hpp"

namespace membrane::http {

using RequestParser = bhttp::request_parser<bhttp::string_body>;

// The server's limits on one request: the header's size, and the body's (a declared
// Content-Length over the limit fails as soon as the header is complete).
void apply_request_limits(RequestParser& parser, const ServerOptions& options);

enum class ReadPhase { header, body };

// What the server answers instead of handling the request.
struct ReadRefusal {
  bhttp::status status = bhttp::status::bad_request;
  std::string message;
  // The client may still be sending a body nobody will read: read it away before closing, so
  // that the client sees the answer instead of a reset.
  bool linger = false;
};

// The answer to a read of `phase` that failed with `ec`; nullopt when the client simply went
// away (nothing to answer).
std::optional<ReadRefusal> read_refusal(const error_code& ec, ReadPhase phase,
                                        const RequestParser& parser, const ServerOptions& options);

// Feeds `parser` what `buffer` already holds, consuming what it parsed: the header only
// (`phase` header), or as much of the body as there is. A small request usually arrives whole in
// the first read; parsing it here costs no read operation, no timer and no trip through the event
// loop. Running out of bytes is not an error: a read then waits for the rest.
error_code parse_buffered(RequestParser& parser, beast::flat_buffer& buffer, ReadPhase phase);

// Once the header is in: a declared body larger than the limit.
std::optional<ReadRefusal> declared_length_refusal(const RequestParser& parser,
                                                   const ServerOptions& options);

}  // namespace membrane::http
