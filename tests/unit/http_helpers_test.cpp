#include <catch2/catch.hpp>

#include <boost/asio/write.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>

#include "gateway/responses.hpp"
#include "http/asio.hpp"
#include "http/client.hpp"

using membrane::http::UpstreamUrl;

TEST_CASE("upstream URLs are parsed into host, port, target and Host header") {
  std::string error;
  auto url = UpstreamUrl::parse("http://127.0.0.1:3001/mcp?x=1", error);
  REQUIRE(url);
  CHECK_FALSE(url->tls);
  CHECK(url->host == "127.0.0.1");
  CHECK(url->port == 3001);
  CHECK(url->target == "/mcp?x=1");
  CHECK(url->host_header == "127.0.0.1:3001");

  url = UpstreamUrl::parse("https://[::1]/mcp", error);
  REQUIRE(url);
  CHECK(url->tls);
  CHECK(url->host == "::1");
  CHECK(url->port == 443);
  CHECK(url->host_header == "[::1]");

  url = UpstreamUrl::parse("http://example.com", error);
  REQUIRE(url);
  CHECK(url->target == "/");
}

TEST_CASE("bad upstream URLs are refused with a reason") {
  std::string error;
  for (const char* bad : {"ftp://x/", "http://", "http://host:0/", "http://host:99999/",
                          "http://u:p@host/", "http://[::1/"}) {
    INFO(bad);
    CHECK_FALSE(UpstreamUrl::parse(bad, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("Accept negotiation honours wildcards and q=0") {
  using membrane::gateway::accepts;
  CHECK(accepts("application/json, text/event-stream", "text/event-stream"));
  CHECK(accepts("*/*", "application/json"));
  CHECK(accepts("text/*;q=0.5", "text/event-stream"));
  CHECK_FALSE(accepts("application/json", "text/event-stream"));
  CHECK_FALSE(accepts("", "application/json"));
  CHECK_FALSE(accepts("text/event-stream;q=0", "text/event-stream"));
}

TEST_CASE("media types ignore parameters and case") {
  using membrane::gateway::media_type_is;
  CHECK(media_type_is("application/json; charset=utf-8", "application/json"));
  CHECK(media_type_is("Application/JSON", "application/json"));
  CHECK_FALSE(media_type_is("text/plain", "application/json"));
  CHECK_FALSE(media_type_is("application/json-seq", "application/json"));
}

TEST_CASE("query parameters are found and percent-decoded") {
  using membrane::gateway::query_parameter;
  CHECK(query_parameter("/sse/x/message?sessionId=m1.abc_-", "sessionId") == "m1.abc_-");
  CHECK(query_parameter("/p?a=1&sessionId=a%2Db", "sessionId") == "a-b");
  CHECK(query_parameter("/p?a=1", "sessionId").empty());
  CHECK(query_parameter("/p", "sessionId").empty());
}

TEST_CASE("an outgoing request is written line by line; a later value replaces an earlier one") {
  membrane::http::OutgoingRequest request(boost::beast::http::verb::post, "/mcp?x=1");
  request.set("X-Api-Key", "one");
  request.set(boost::beast::http::field::content_type, "application/json");
  request.set("Mcp-Session-Id", "s-1");
  request.set("x-api-key", "two");  // same name, other case: replaces
  CHECK(request.head() ==
        "POST /mcp?x=1 HTTP/1.1\r\nContent-Type: application/json\r\nMcp-Session-Id: s-1\r\n"
        "x-api-key: two\r\n");
  CHECK(request.has("MCP-SESSION-ID"));
  CHECK_FALSE(request.has("Mcp-Session"));
  CHECK(request.refusal().empty());
}

TEST_CASE("an outgoing request refuses header lines smuggled in through a name or value") {
  using membrane::http::OutgoingRequest;
  const auto refused_after = [](std::string_view name, std::string_view value) {
    OutgoingRequest request(boost::beast::http::verb::post, "/mcp");
    request.set("Accept", "application/json");
    request.set(name, value);
    INFO(request.head());
    CHECK(request.head() == "POST /mcp HTTP/1.1\r\nAccept: application/json\r\n");
    return request.refusal();
  };
  CHECK_THAT(refused_after("Mcp-Method", "tools/call\r\nX-Injected: 1"),
             Catch::Contains("'Mcp-Method' was not sent"));
  CHECK_FALSE(refused_after("Mcp-Method", "a\nb").empty());
  CHECK_FALSE(refused_after("Mcp-Method", std::string_view("a\0b", 3)).empty());
  CHECK_FALSE(refused_after("Bad Name", "v").empty());
  CHECK_FALSE(refused_after("Bad:Name", "v").empty());
  CHECK_FALSE(refused_after("", "v").empty());
  OutgoingRequest spaced(boost::beast::http::verb::get, "/a b");
  CHECK_FALSE(spaced.refusal().empty());
}

TEST_CASE("a request built with Beast's message type goes out with the same fields") {
  boost::beast::http::request<boost::beast::http::string_body> beast_request{
      boost::beast::http::verb::post, "/token", 11};
  beast_request.set(boost::beast::http::field::content_type, "application/x-www-form-urlencoded");
  beast_request.set("X-Trace", "abc");
  beast_request.body() = "grant_type=client_credentials";
  const auto request = membrane::http::outgoing_request(beast_request);
  CHECK(request.head() ==
        "POST /token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "X-Trace: abc\r\n");
  CHECK(request.body() == "grant_type=client_credentials");
}

namespace {

// One HTTP/1.1 exchange on a loopback socket: what the client wrote, and a response sent back.
membrane::awaitable<void> answer_once(boost::asio::ip::tcp::acceptor& acceptor,
                                      std::string& received) {
  auto socket = co_await acceptor.async_accept(boost::asio::use_awaitable);
  std::string buffer;
  for (;;) {
    char chunk[4096];
    const auto n =
        co_await socket.async_read_some(boost::asio::buffer(chunk), boost::asio::use_awaitable);
    buffer.append(chunk, n);
    const auto end_of_head = buffer.find("\r\n\r\n");
    if (end_of_head == std::string::npos) continue;
    const auto length_at = buffer.find("Content-Length: ");
    const std::size_t length =
        length_at == std::string::npos ? 0 : std::stoul(buffer.substr(length_at + 16));
    if (buffer.size() >= end_of_head + 4 + length) break;
  }
  received = buffer;
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  co_await boost::asio::async_write(socket, boost::asio::buffer(response),
                                    boost::asio::use_awaitable);
}

}  // namespace

TEST_CASE(
    "the client writes an outgoing request with Host and Content-Length, and refuses a bad "
    "one without connecting") {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acceptor.local_endpoint().port();
  std::string error;
  auto url = UpstreamUrl::parse("http://127.0.0.1:" + std::to_string(port) + "/mcp", error);
  REQUIRE(url);
  membrane::http::HttpClient client(std::move(*url), {}, 1);
  std::string received;
  std::string body;
  std::string refused;
  boost::asio::co_spawn(io, answer_once(acceptor, received), boost::asio::detached);
  boost::asio::co_spawn(
      io,
      [&]() -> membrane::awaitable<void> {
        membrane::http::OutgoingRequest bad(boost::beast::http::verb::post, "/mcp");
        bad.set("Mcp-Name", "x\r\nEvil: 1");
        auto refusal = co_await client.send(std::move(bad));
        refused = refusal.error;
        membrane::http::OutgoingRequest request(boost::beast::http::verb::post,
                                                client.url().target);
        request.set("Accept", "application/json");
        request.body() = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
        auto result = co_await client.send(std::move(request));
        if (result.response) body = (co_await result.response->read_all(1024)).second;
      },
      boost::asio::detached);
  io.run();
  CHECK_THAT(refused, Catch::Contains("'Mcp-Name' was not sent"));
  CHECK(received == "POST /mcp HTTP/1.1\r\nAccept: application/json\r\nHost: 127.0.0.1:" +
                        std::to_string(port) +
                        "\r\nContent-Length: 40\r\n\r\n"
                        R"({"jsonrpc":"2.0","id":1,"method":"ping"})");
  CHECK(body == "ok");
}
