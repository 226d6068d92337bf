#include <catch2/catch.hpp>

#include "membrane/core/ascii.hpp"
#include "membrane/http/sse.hpp"

using membrane::http::SseDecoder;
using membrane::http::SseEvent;

namespace {
std::vector<SseEvent> decode_in_pieces(std::string_view stream, std::size_t piece) {
  SseDecoder decoder(1 << 20);
  std::vector<SseEvent> events;
  for (std::size_t i = 0; i < stream.size(); i += piece)
    REQUIRE(decoder.feed(stream.substr(i, piece), events));
  return events;
}
}  // namespace

TEST_CASE("SSE events are decoded whatever the chunk boundaries") {
  const std::string stream =
      "id: 1\nevent: message\ndata: {\"a\":1}\n\n"
      ": keep-alive\n\n"
      "data: line one\r\ndata: line two\r\n\r\n"
      "id: 3\rdata:no-space\r\r";
  for (std::size_t piece : {1, 2, 3, 5, 7, 64, 4096}) {
    const auto events = decode_in_pieces(stream, piece);
    REQUIRE(events.size() == 3);
    CHECK(events[0].id == "1");
    CHECK(events[0].type == "message");
    CHECK(events[0].data == "{\"a\":1}");
    CHECK(events[1].data == "line one\nline two");
    CHECK_FALSE(events[1].has_id);
    CHECK(events[2].id == "3");
    CHECK(events[2].data == "no-space");
  }
}

TEST_CASE("lines ended by CR alone are split one by one, in a stream of many") {
  std::string stream;
  for (int i = 0; i < 2000; ++i)
    stream += "data: " + std::to_string(i) + "\r";
  stream += "\r";
  for (std::size_t piece : {7, 4096, 1 << 20}) {
    const auto events = decode_in_pieces(stream, piece);
    REQUIRE(events.size() == 1);
    CHECK(events[0].data.starts_with("0\n1\n2\n"));
    CHECK(events[0].data.ends_with("\n1998\n1999"));
  }
  membrane::http::SseEvent event;
  event.data = std::string(3000, '\r');
  const auto wire = membrane::http::format_sse_event(event);
  CHECK(wire.size() == 3001 * std::string("data: \n").size() + 1);
}

TEST_CASE("a priming event (id, empty data) is kept so the client can resume") {
  const auto events = decode_in_pieces("id: abc\ndata: \n\n", 4);
  REQUIRE(events.size() == 1);
  CHECK(events[0].has_id);
  CHECK(events[0].data.empty());
}

TEST_CASE("retry is parsed and a leading BOM is ignored") {
  const auto events = decode_in_pieces("\xEF\xBB\xBFretry: 1500\ndata: x\n\n", 2);
  REQUIRE(events.size() == 1);
  CHECK(events[0].retry_ms == 1500UL);
  CHECK(events[0].data == "x");
}

TEST_CASE("an event larger than the limit stops the decoder") {
  SseDecoder decoder(16);
  std::vector<SseEvent> events;
  CHECK_FALSE(decoder.feed("data: " + std::string(100, 'x'), events));
}

TEST_CASE("encoding splits multi-line data and round-trips through the decoder") {
  SseEvent event;
  event.id = "7";
  event.has_id = true;
  event.type = "message";
  event.data = "first\nsecond\r\nthird";
  const auto wire = membrane::http::format_sse_event(event);
  CHECK(wire == "id: 7\nevent: message\ndata: first\ndata: second\ndata: third\n\n");
  const auto events = decode_in_pieces(wire, 3);
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == "first\nsecond\nthird");
}

TEST_CASE(
    "the first line break is found wherever CR and LF fall, and header values keep to one line") {
  using membrane::ascii::find_line_break;
  using membrane::ascii::is_header_value;
  constexpr auto none = std::string_view::npos;
  CHECK(find_line_break("") == none);
  CHECK(find_line_break(std::string(5000, 'x')) == none);
  CHECK(find_line_break("ab\ncd\ref") == 2);
  CHECK(find_line_break("ab\rcd\nef") == 2);
  CHECK(find_line_break("ab\r\ncd") == 2);
  CHECK(find_line_break("\n") == 0);
  CHECK(find_line_break("\r") == 0);
  std::string long_line(4000, 'x');
  long_line.append("\ryyyyyyyyyy\n");
  CHECK(find_line_break(long_line) == 4000);
  long_line[4000] = '\n';
  long_line.back() = '\r';
  CHECK(find_line_break(long_line) == 4000);

  // Breaks on either side of the scan's block boundaries.
  for (const std::size_t at : {255u, 256u, 257u, 511u, 512u, 1000u}) {
    std::string text(1200, 'x');
    text[at] = '\r';
    CHECK(find_line_break(text) == at);
    text[at] = '\n';
    text[at + 100] = '\r';
    CHECK(find_line_break(text) == at);
  }

  CHECK(is_header_value(std::string(800, 'a')));
  CHECK(is_header_value(""));
  std::string value(800, 'a');
  value.append("\r\nX-Injected: 1");
  CHECK_FALSE(is_header_value(value));
  value[800] = ' ';
  CHECK_FALSE(is_header_value(value));
  CHECK_FALSE(is_header_value("a\rb"));
  CHECK_FALSE(is_header_value(std::string("a\0b", 3)));
}
