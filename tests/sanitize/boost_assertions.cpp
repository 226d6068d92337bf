// Boost's assertions in the sanitizer build (MEMBRANE_SANITIZE defines BOOST_ENABLE_ASSERT_HANDLER;
// docs/sanitizers.md): each one aborts with the message assert() would print, except one that is
// known to be wrong.
//
// Boost 1.81's Beast asserts `n >= 5` in basic_parser::parse_chunk_header when a chunked body's
// last chunk ("0\r\n") has arrived and its end has not: after a read that ends inside the trailer
// section only the three bytes "0\r\n" may be unparsed, and the code after the assertion handles
// them (it asks for more bytes). Any client can get there by sending the last chunk and the final
// CRLF in separate packets; the http_request fuzz target did. Upstream relaxed the assertion
// (boostorg/beast#2861, Boost 1.86). Release builds define NDEBUG and never check it.
#include <boost/assert.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace boost {

void assertion_failed_msg(char const* expr, char const* msg, char const* function,
                          char const* file, long line) {
  const std::string_view expression(expr);
  const std::string_view where(file);
  if (expression == "n >= 5" && where.ends_with("beast/http/impl/basic_parser.ipp")) return;
  std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed.%s%s\n", file, line, function, expr,
               msg ? " " : "", msg ? msg : "");
  std::abort();
}

void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  assertion_failed_msg(expr, nullptr, function, file, line);
}

}  // namespace boost
