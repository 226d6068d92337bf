#include <catch2/catch.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>

#include "http/request_reading.hpp"

using namespace membrane;
using http::ReadPhase;
using http::RequestParser;

namespace {

http::ServerOptions limits(std::size_t header, std::size_t body) {
  http::ServerOptions options;
  options.max_header_bytes = header;
  options.max_body_bytes = body;
  return options;
}

// Feeds `text` to a parser with the server's limits the way the server reads a header.
error_code read_header(RequestParser& parser, std::string_view text,
                       const http::ServerOptions& options) {
  http::apply_request_limits(parser, options);
  error_code ec;
  parser.put(asio::buffer(text.data(), text.size()), ec);
  return ec;
}

}  // namespace

TEST_CASE("a declared body over the limit is refused with 413 and a lingering close") {
  const auto options = limits(1024, 100);
  RequestParser parser;
  const auto ec = read_header(
      parser, "POST /mcp/x HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", options);
  REQUIRE(ec == http::bhttp::error::body_limit);
  const auto refusal = http::read_refusal(ec, ReadPhase::header, parser, options);
  REQUIRE(refusal);
  CHECK(refusal->status == http::bhttp::status::payload_too_large);
  CHECK(refusal->message == "request body of 101 bytes exceeds the limit of 100 bytes");
  CHECK(refusal->linger);
}

TEST_CASE("headers over the limit get 431, malformed requests 400, a departed client nothing") {
  const auto options = limits(64, 100);
  RequestParser parser;
  const auto ec = read_header(
      parser, "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n",
      options);
  REQUIRE(ec == http::bhttp::error::header_limit);
  auto refusal = http::read_refusal(ec, ReadPhase::header, parser, options);
  REQUIRE(refusal);
  CHECK(refusal->status == http::bhttp::status::request_header_fields_too_large);
  CHECK(refusal->message == "request headers exceed 64 bytes");
  CHECK_FALSE(refusal->linger);

  RequestParser broken;
  const auto bad = read_header(broken, "GET / HTTP/9\r\n\r\n", limits(1024, 100));
  REQUIRE(bad);
  refusal = http::read_refusal(bad, ReadPhase::header, broken, options);
  REQUIRE(refusal);
  CHECK(refusal->status == http::bhttp::status::bad_request);
  CHECK_THAT(refusal->message, Catch::StartsWith("malformed HTTP request: "));

  CHECK_FALSE(http::read_refusal(asio::error::eof, ReadPhase::header, broken, options));
  refusal = http::read_refusal(http::bhttp::error::body_limit, ReadPhase::body, broken, options);
  REQUIRE(refusal);
  CHECK(refusal->message == "request body exceeds the limit of 100 bytes");
}

TEST_CASE("a declared length within the limit is accepted") {
  const auto options = limits(1024, 100);
  RequestParser parser;
  REQUIRE_FALSE(
      read_header(parser, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", options));
  CHECK_FALSE(http::declared_length_refusal(parser, options));
}

// Boost 1.81's Beast asserts wrongly on this (tests/sanitize/boost_assertions.cpp): the last
// chunk and the final CRLF in separate reads, with one byte of the CRLF in between.
TEST_CASE("a chunked body whose last chunk and final CRLF arrive apart is read whole") {
  const auto options = limits(1024, 100);
  RequestParser parser;
  http::apply_request_limits(parser, options);
  parser.eager(true);
  std::string pending;
  error_code ec;
  const auto feed = [&](std::string_view bytes) {
    pending += bytes;
    const std::size_t used = parser.put(asio::buffer(pending.data(), pending.size()), ec);
    pending.erase(0, used);
  };
  feed("POST /mcp/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  feed("2\r\n{}\r\n0\r\n");
  CHECK(ec == http::bhttp::error::need_more);
  feed("\r");
  CHECK(ec == http::bhttp::error::need_more);
  feed("\n");
  CHECK_FALSE(ec);
  REQUIRE(parser.is_done());
  CHECK(parser.get().body() == "{}");
}
