// The shared standalone stream of a pooled upstream session: where a server's question goes when
// a stateless client's call may or may not be there to carry it.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <vector>

#include "gateway/bridging.hpp"
#include "http/asio.hpp"

namespace gw = membrane::gateway;
using membrane::mcp::Json;
using Held = gw::SessionStream::HeldQuestion;
using Role = gw::SessionStream::Role;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<gw::EventPump> fed_pump(membrane::asio::io_context& io) {
  std::shared_ptr<gw::EventPump> pump;
  membrane::asio::co_spawn(
      io, [&]() -> membrane::awaitable<void> { pump = co_await gw::EventPump::start_fed(); },
      membrane::asio::detached);
  // The pump keeps work pending on `io`: run only until it exists.
  while (!pump && io.run_one() > 0) {
  }
  return pump;
}

Held question(int id, std::chrono::steady_clock::duration lifetime = 1min) {
  return Held{{},
              Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "roots/list"}},
              std::chrono::steady_clock::now() + lifetime};
}

}  // namespace

TEST_CASE(
    "a server question that comes before its call waits for the next call that can carry it") {
  membrane::asio::io_context io;
  const auto pump = fed_pump(io);
  REQUIRE(pump);
  gw::SessionStream stream;
  std::optional<Held> evicted;

  CHECK(stream.route_question(question(1), evicted) == nullptr);
  std::vector<Held> handed;
  // A call that cannot require input (tools/list) does not take it, nor does a listen.
  const auto listing = stream.attach(Role::call, pump, false, &handed);
  const auto listen = stream.attach(Role::listen, pump, true, &handed);
  CHECK(handed.empty());
  CHECK(stream.route_question(question(2), evicted) == nullptr);

  auto call = stream.attach(Role::call, pump, true, &handed);
  REQUIRE(handed.size() == 2);
  CHECK(handed[0].request["id"] == 1);
  CHECK(handed[1].request["id"] == 2);
  // While that call is attached, questions go to it at once.
  CHECK(stream.route_question(question(3), evicted) == pump);
  CHECK_FALSE(evicted);
  call.reset();
  CHECK(stream.route_question(question(4), evicted) == nullptr);
  CHECK(stream.take_expired(std::chrono::steady_clock::now(), true).size() == 1);
}

TEST_CASE("held questions are bounded and refused when their time is up") {
  gw::SessionStream stream;
  std::optional<Held> evicted;
  for (int id = 0; id < static_cast<int>(gw::SessionStream::max_held_questions); ++id) {
    CHECK(stream.route_question(question(id, id < 2 ? 0s : 1min), evicted) == nullptr);
    CHECK_FALSE(evicted);
  }
  // One more pushes out the oldest, which the caller refuses.
  CHECK(stream.route_question(question(100), evicted) == nullptr);
  REQUIRE(evicted);
  CHECK(evicted->request["id"] == 0);
  // Question 1 has expired; the others wait.
  const auto expired = stream.take_expired(std::chrono::steady_clock::now());
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].request["id"] == 1);
  CHECK(stream.take_expired(std::chrono::steady_clock::now(), true).size() ==
        gw::SessionStream::max_held_questions - 1);
}
