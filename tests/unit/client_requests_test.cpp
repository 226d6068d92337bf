#include <catch2/catch.hpp>

#include "gateway/client_requests.hpp"

using membrane::gateway::can_elicit_form;
using membrane::gateway::ClientAnswer;
using membrane::gateway::ClientRequests;
using membrane::gateway::Confirmation;
using membrane::gateway::confirmation_from;
using membrane::mcp::Json;

namespace {
Confirmation::Outcome outcome_of(const Json& response) {
  ClientAnswer answer;
  answer.kind = ClientAnswer::Kind::answered;
  answer.response = response;
  return confirmation_from(answer).outcome;
}

membrane::mcp::Message response_with_id(const Json& id) {
  return membrane::mcp::Message(
      membrane::mcp::MessageKind::response,
      {{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"action", "accept"}}}});
}
}  // namespace

TEST_CASE("only an explicit accept approves") {
  using Outcome = Confirmation::Outcome;
  CHECK(outcome_of({{"result", {{"action", "accept"}, {"content", Json::object()}}}}) ==
        Outcome::accepted);
  CHECK(outcome_of({{"result", {{"action", "decline"}}}}) == Outcome::declined);
  CHECK(outcome_of({{"result", {{"action", "cancel"}}}}) == Outcome::cancelled);
  CHECK(outcome_of({{"result", {{"action", "ACCEPT"}}}}) == Outcome::failed);
  CHECK(outcome_of({{"result", {{"action", true}}}}) == Outcome::failed);
  CHECK(outcome_of({{"result", "accept"}}) == Outcome::failed);
  CHECK(outcome_of(Json::object()) == Outcome::failed);
  ClientAnswer error;
  error.kind = ClientAnswer::Kind::answered;
  error.response = {{"error", {{"code", -32601}, {"message", "Method not found"}}}};
  const auto failed = confirmation_from(error);
  CHECK(failed.outcome == Outcome::failed);
  CHECK(failed.detail.find("Method not found") != std::string::npos);
  ClientAnswer late;
  late.kind = ClientAnswer::Kind::timed_out;
  CHECK(confirmation_from(late).outcome == Outcome::timed_out);
}

TEST_CASE("form elicitation is available when the client declared it") {
  CHECK(can_elicit_form({{"elicitation", Json::object()}}));
  CHECK(can_elicit_form({{"elicitation", {{"form", Json::object()}}}}));
  CHECK(can_elicit_form({{"elicitation", {{"form", Json::object()}, {"url", Json::object()}}}}));
  CHECK_FALSE(can_elicit_form({{"elicitation", {{"url", Json::object()}}}}));
  CHECK_FALSE(can_elicit_form({{"sampling", Json::object()}}));
  CHECK_FALSE(can_elicit_form(Json()));
  CHECK_FALSE(can_elicit_form({{"elicitation", true}}));
}

TEST_CASE("answers to gateway requests never go upstream, and only the asked session counts") {
  boost::asio::io_context io;
  ClientRequests requests;
  auto pending = requests.open("ev\nsession-a", io.get_executor());
  REQUIRE(pending->id().rfind(std::string(ClientRequests::id_prefix), 0) == 0);
  // Not a gateway id: it belongs to the upstream.
  CHECK_FALSE(requests.consume("ev\nsession-a", response_with_id(7)));
  CHECK_FALSE(requests.consume("ev\nsession-a", response_with_id("abc")));
  // A gateway id on another session is consumed (dropped), not delivered.
  CHECK(requests.consume("ev\nsession-b", response_with_id(pending->id())));
  // Unknown (expired) gateway ids are dropped too.
  CHECK(requests.consume("ev\nsession-a", response_with_id("membrane-expired")));

  std::optional<ClientAnswer> got;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        auto answer =
            co_await pending->wait(membrane::gateway::Clock::now() + std::chrono::seconds(5),
                                   std::chrono::milliseconds(50),
                                   []() -> boost::asio::awaitable<bool> { co_return true; });
        got = std::move(answer);
      },
      boost::asio::detached);
  io.run_for(std::chrono::milliseconds(120));
  CHECK_FALSE(got);  // the answer from session b did not arrive
  CHECK(requests.consume("ev\nsession-a", response_with_id(pending->id())));
  io.restart();
  io.run_for(std::chrono::milliseconds(500));
  REQUIRE(got);
  CHECK(got->kind == ClientAnswer::Kind::answered);
  CHECK(got->response["result"]["action"] == "accept");
}

TEST_CASE("a client that stops answering keep-alives is noticed") {
  boost::asio::io_context io;
  ClientRequests requests;
  auto pending = requests.open("ev\ns", io.get_executor());
  std::optional<ClientAnswer> got;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        got = co_await pending->wait(membrane::gateway::Clock::now() + std::chrono::seconds(5),
                                     std::chrono::milliseconds(10),
                                     []() -> boost::asio::awaitable<bool> { co_return false; });
      },
      boost::asio::detached);
  io.run_for(std::chrono::milliseconds(500));
  REQUIRE(got);
  CHECK(got->kind == ClientAnswer::Kind::client_gone);
}

TEST_CASE("answers nobody waits for here go to the relay; relayed answers reach their waiter") {
  boost::asio::io_context io;
  ClientRequests asking;    // the replica that asked
  ClientRequests answered;  // the replica the client's answer reached
  std::vector<std::tuple<std::string, std::string, membrane::mcp::Json>> relayed;
  answered.set_relay(
      [&](const std::string& id, const std::string& session, const membrane::mcp::Json& response) {
        relayed.emplace_back(id, session, response);
      });
  auto pending = asking.open("ev\nsession-a", io.get_executor());
  CHECK(answered.consume("ev\nsession-a", response_with_id(pending->id())));
  REQUIRE(relayed.size() == 1);
  CHECK(std::get<0>(relayed[0]) == pending->id());
  CHECK(std::get<1>(relayed[0]) == "ev\nsession-a");
  // Upstream ids are never relayed.
  CHECK_FALSE(answered.consume("ev\nsession-a", response_with_id(7)));
  CHECK(relayed.size() == 1);

  // On the asking replica: another session's claim, or an unknown id, is not delivered.
  CHECK_FALSE(asking.deliver(pending->id(), "ev\nsession-b", std::get<2>(relayed[0])));
  CHECK_FALSE(asking.deliver("membrane-other", "ev\nsession-a", std::get<2>(relayed[0])));
  CHECK(asking.deliver(pending->id(), "ev\nsession-a", std::get<2>(relayed[0])));
  std::optional<ClientAnswer> got;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        got = co_await pending->wait(membrane::gateway::Clock::now() + std::chrono::seconds(5),
                                     std::chrono::milliseconds(50),
                                     []() -> boost::asio::awaitable<bool> { co_return true; });
      },
      boost::asio::detached);
  io.run_for(std::chrono::milliseconds(300));
  REQUIRE(got);
  CHECK(got->kind == ClientAnswer::Kind::answered);
  CHECK(got->response["result"]["action"] == "accept");
}
