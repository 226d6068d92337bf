// The exchange lifecycle that every transport runs through ExchangeRunner: filter order on the
// way in and out, pauses and their resumption, a filter that answers instead of the upstream, an
// answer a filter withholds, and completion exactly once on every path (completed, abandoned,
// thrown, cancelled while paused).
#include <catch2/catch.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "gateway/exchange/runner.hpp"
#include "http/asio.hpp"

namespace gw = membrane::gateway;
namespace asio = membrane::asio;
using membrane::awaitable;
using membrane::mcp::Json;
using Verdict = gw::ExchangeRunner::Verdict;
using namespace std::chrono_literals;

namespace {

// Everything the filters and the port did, in order.
using Journal = std::vector<std::string>;

// The downstream side as a transport would present it, recording what reached the client.
class FakePort final : public gw::DownstreamPort {
 public:
  explicit FakePort(Journal& journal) : journal_(journal) {}
  bool streaming() const override { return streaming_; }
  awaitable<bool> respond(membrane::http::Response response) override {
    journal_.push_back("respond " + std::to_string(response.result_int()) + " " + response.body());
    co_return client_there;
  }
  awaitable<bool> deliver(std::string message, bool last) override {
    journal_.push_back(std::string(last ? "deliver-last " : "deliver ") + message);
    co_return client_there;
  }
  awaitable<gw::ClientAnswer> ask_client(std::string_view method, const Json&) override {
    journal_.push_back("ask " + std::string(method));
    co_return answer;
  }

  bool streaming_ = false;
  bool client_there = true;
  gw::ClientAnswer answer{gw::ClientAnswer::Kind::answered,
                          Json{{"result", {{"action", "accept"}}}}};

 private:
  Journal& journal_;
};

// A filter whose every hook writes its name in the journal, and whose request step is scripted.
struct Script {
  gw::FilterStep first = gw::FilterStep::proceed();
  // What resume() does after a pause: wait on a timer, ask the client, then decide.
  bool wait_on_timer = false;
  bool ask_client = false;
  gw::FilterStep after_pause = gw::FilterStep::proceed();
  std::string withhold;  // on_answer's reason
  bool rewrite_replies = false;
};

class ScriptedFilter final : public gw::Filter {
 public:
  ScriptedFilter(std::string name, Journal& journal, Script script)
      : name_(std::move(name)), journal_(journal), script_(std::move(script)) {}

  gw::FilterStep on_request(gw::Exchange&) override {
    journal_.push_back(name_ + ".request");
    return script_.first;
  }
  awaitable<gw::FilterStep> resume(gw::Exchange&, gw::ClientAsker& client) override {
    journal_.push_back(name_ + ".resume");
    if (script_.wait_on_timer) {
      asio::steady_timer timer(co_await asio::this_coro::executor, 10ms);
      co_await timer.async_wait(asio::use_awaitable);  // throws when cancelled
    }
    if (script_.ask_client) {
      const auto answer = co_await client.ask_client("elicitation/create", Json::object());
      if (answer.kind == gw::ClientAnswer::Kind::client_gone)
        co_return gw::FilterStep::answer(200, "refused: nobody to ask");
    }
    co_return script_.after_pause;
  }
  void on_upstream_message(gw::Exchange&, std::string& message) override {
    journal_.push_back(name_ + ".reply");
    if (script_.rewrite_replies) message += "+" + name_;
  }
  bool gates_answer() const override { return true; }
  awaitable<std::string> on_answer(gw::Exchange&) override {
    journal_.push_back(name_ + ".answer");
    co_return script_.withhold;
  }
  void on_complete(const gw::Exchange&) override { journal_.push_back(name_ + ".complete"); }

 private:
  std::string name_;
  Journal& journal_;
  Script script_;
};

class ScriptedFactory final : public gw::FilterFactory {
 public:
  ScriptedFactory(std::string name, Journal& journal, Script script, bool applies = true)
      : name_(std::move(name)), journal_(journal), script_(std::move(script)), applies_(applies) {}
  std::string_view name() const override { return name_; }
  std::unique_ptr<gw::Filter> make(const gw::Exchange&) const override {
    if (!applies_) return nullptr;
    return std::make_unique<ScriptedFilter>(name_, journal_, script_);
  }

 private:
  std::string name_;
  Journal& journal_;
  Script script_;
  bool applies_;
};

const membrane::mcp::Message& tool_call() {
  static const membrane::mcp::Message message(
      membrane::mcp::MessageKind::request,
      Json{{"jsonrpc", "2.0"}, {"id", 7}, {"method", "tools/call"}, {"params", {{"name", "x"}}}});
  return message;
}

gw::ExchangeRequest request_for(const membrane::mcp::Message& message) {
  gw::ExchangeRequest request;
  request.upstream = "fs";
  request.message = &message;
  request.protocol_version = "2025-11-25";
  return request;
}

std::size_t count(const Journal& journal, const std::string& entry) {
  return static_cast<std::size_t>(std::count(journal.begin(), journal.end(), entry));
}

// Runs `body` to completion on a fresh io_context; rethrows what it threw. (No co_await inside a
// CHECK: GCC evaluates a Catch assertion's expression more than once.)
template <class Body>
void run(Body body) {
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, body(), [&](std::exception_ptr error) { failure = error; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

TEST_CASE("request filters run in order, replies come back through them in reverse") {
  Journal journal;
  Script rewriting;
  rewriting.rewrite_replies = true;
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("a", journal, rewriting));
  chain.add(std::make_unique<ScriptedFactory>("b", journal, rewriting));
  chain.add(std::make_unique<ScriptedFactory>("c", journal, rewriting));
  FakePort port(journal);
  std::string reply = "r";
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    const auto verdict = co_await runner.run_request_filters();
    CHECK(verdict == Verdict::forward);
    runner.on_upstream_message(reply);
    CHECK(runner.exchange().upstream_messages == 1);
    co_await runner.answer_json(200, reply);
  });
  CHECK(reply == "r+c+b+a");
  CHECK(journal == Journal{"a.request", "b.request", "c.request", "c.reply", "b.reply", "a.reply",
                           "a.answer", "b.answer", "c.answer", "respond 200 r+c+b+a", "a.complete",
                           "b.complete", "c.complete"});
}

TEST_CASE("a factory with nothing to do for an exchange makes no filter") {
  Journal journal;
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("skipped", journal, Script{}, false));
  chain.add(std::make_unique<ScriptedFactory>("kept", journal, Script{}));
  FakePort port(journal);
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    const auto verdict = co_await runner.run_request_filters();
    CHECK(verdict == Verdict::forward);
  });
  CHECK(journal == Journal{"kept.request", "kept.complete"});
}

TEST_CASE("a filter that answers stops the chain, and its answer goes through on_answer") {
  Journal journal;
  Script refusing;
  refusing.first = gw::FilterStep::answer(200, "denied");
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("first", journal, Script{}));
  chain.add(std::make_unique<ScriptedFactory>("refuser", journal, refusing));
  chain.add(std::make_unique<ScriptedFactory>("never", journal, Script{}));
  FakePort port(journal);
  gw::Outcome outcome{};
  unsigned status = 0;
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    const auto verdict = co_await runner.run_request_filters();
    CHECK(verdict == Verdict::answered);
    outcome = runner.exchange().outcome;
    status = runner.exchange().http_status;
  });
  CHECK(outcome == gw::Outcome::answered_by_gateway);
  CHECK(status == 200);
  CHECK(count(journal, "never.request") == 0);
  CHECK(count(journal, "respond 200 denied") == 1);
  CHECK(count(journal, "never.complete") == 1);  // every filter made completes, ran or not
  CHECK(journal.back() == "never.complete");
}

TEST_CASE("on a stream, a filter's answer is the stream's last message") {
  Journal journal;
  Script refusing;
  refusing.first = gw::FilterStep::answer(200, "denied");
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("refuser", journal, refusing));
  FakePort port(journal);
  port.streaming_ = true;
  unsigned status = 0;
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    co_await runner.run_request_filters();
    status = runner.exchange().http_status;
  });
  CHECK(count(journal, "deliver-last denied") == 1);
  CHECK(status == 200);
}

TEST_CASE("a filter that withholds the answer replaces it with a 503 error") {
  Journal journal;
  Script withholding;
  withholding.withhold = "the audit trail is unavailable";
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("audit", journal, withholding));
  FakePort port(journal);
  unsigned status = 0;
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    co_await runner.run_request_filters();
    co_await runner.answer_json(200, R"({"jsonrpc":"2.0","id":7,"result":{}})");
    status = runner.exchange().http_status;
  });
  CHECK(status == 503);
  const auto responded = std::find_if(journal.begin(), journal.end(), [](const std::string& entry) {
    return entry.starts_with("respond ");
  });
  REQUIRE(responded != journal.end());
  CHECK(responded->find("respond 503") == 0);
  CHECK(responded->find("the audit trail is unavailable") != std::string::npos);
  CHECK(responded->find("\"id\":7") != std::string::npos);
}

TEST_CASE("a paused filter is resumed, may ask the client, and the chain goes on after it") {
  Journal journal;
  Script pausing;
  pausing.first = gw::FilterStep::pause();
  pausing.wait_on_timer = true;
  pausing.ask_client = true;
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("approval", journal, pausing));
  chain.add(std::make_unique<ScriptedFactory>("next", journal, Script{}));
  FakePort port(journal);
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    const auto verdict = co_await runner.run_request_filters();
    CHECK(verdict == Verdict::forward);
  });
  CHECK(journal == Journal{"approval.request", "approval.resume", "ask elicitation/create",
                           "next.request", "approval.complete", "next.complete"});
}

TEST_CASE("a filter that keeps pausing ends the exchange with an error") {
  Journal journal;
  Script looping;
  looping.first = gw::FilterStep::pause();
  looping.after_pause = gw::FilterStep::pause();
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("loop", journal, looping));
  FakePort port(journal);
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    const auto verdict = co_await runner.run_request_filters();
    CHECK(verdict == Verdict::answered);
  });
  CHECK(count(journal, "loop.resume") == 16);
  const auto& answer = journal[journal.size() - 2];
  CHECK(answer.find("respond 200") == 0);
  CHECK(answer.find("did not finish deciding") != std::string::npos);
}

TEST_CASE("a client that leaves while asked gets no answer, and the exchange says so") {
  Journal journal;
  Script asking;
  asking.first = gw::FilterStep::pause();
  asking.ask_client = true;
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("approval", journal, asking));
  FakePort port(journal);
  port.answer = gw::ClientAnswer{gw::ClientAnswer::Kind::client_gone, {}};
  gw::Outcome outcome{};
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    const auto verdict = co_await runner.run_request_filters();
    CHECK(verdict == Verdict::answered);
    outcome = runner.exchange().outcome;
  });
  CHECK(outcome == gw::Outcome::client_gone);
  CHECK(std::none_of(journal.begin(), journal.end(),
                     [](const std::string& entry) { return entry.starts_with("respond"); }));
  CHECK(count(journal, "approval.complete") == 1);
}

TEST_CASE("a deferred question ends the filters without an answer from them") {
  Journal journal;
  Script deferring;
  deferring.first = gw::FilterStep::pause();
  deferring.after_pause = gw::FilterStep::deferred();
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("approval", journal, deferring));
  chain.add(std::make_unique<ScriptedFactory>("later", journal, Script{}));
  FakePort port(journal);
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
    const auto verdict = co_await runner.run_request_filters();
    CHECK(verdict == Verdict::deferred);
  });
  CHECK(count(journal, "later.request") == 0);
  CHECK(std::none_of(journal.begin(), journal.end(),
                     [](const std::string& entry) { return entry.starts_with("respond"); }));
}

// The chain of one filter whose completions are counted, for the completion tests.
struct CountedChain {
  Journal journal;
  gw::FilterChain chain;
  FakePort port{journal};
  CountedChain() { chain.add(std::make_unique<ScriptedFactory>("f", journal, Script{})); }
};

TEST_CASE("an exchange completed explicitly completes once, however often asked") {
  CountedChain counted;
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(counted.chain, counted.port, request_for(tool_call()));
    co_await runner.run_request_filters();
    runner.complete();
    runner.complete();
  });
  CHECK(count(counted.journal, "f.complete") == 1);
}

TEST_CASE("an exchange nobody completed completes when it ends") {
  CountedChain counted;
  run([&]() -> awaitable<void> {
    gw::ExchangeRunner runner(counted.chain, counted.port, request_for(tool_call()));
    co_await runner.run_request_filters();
  });
  CHECK(count(counted.journal, "f.complete") == 1);
}

TEST_CASE("an exchange whose transport throws still completes once") {
  CountedChain counted;
  const auto failing = [&]() -> awaitable<void> {
    gw::ExchangeRunner runner(counted.chain, counted.port, request_for(tool_call()));
    co_await runner.run_request_filters();
    throw std::runtime_error("the transport failed");
  };
  CHECK_THROWS_AS(run(failing), std::runtime_error);
  CHECK(count(counted.journal, "f.complete") == 1);
}

TEST_CASE("an exchange cancelled while a filter is paused still completes once") {
  Journal journal;
  Script waiting;
  waiting.first = gw::FilterStep::pause();
  waiting.wait_on_timer = true;
  gw::FilterChain chain;
  chain.add(std::make_unique<ScriptedFactory>("slow", journal, waiting));
  chain.add(std::make_unique<ScriptedFactory>("after", journal, Script{}));
  FakePort port(journal);
  asio::io_context io;
  asio::cancellation_signal cancel;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        gw::ExchangeRunner runner(chain, port, request_for(tool_call()));
        co_await runner.run_request_filters();
        journal.push_back("forwarded");
      },
      asio::bind_cancellation_slot(cancel.slot(),
                                   [&](std::exception_ptr error) { failure = error; }));
  // Run until the filter has paused on its timer, then cancel the exchange.
  while (std::find(journal.begin(), journal.end(), "slow.resume") == journal.end())
    io.run_one();
  cancel.emit(asio::cancellation_type::terminal);
  io.run();
  CHECK(failure);
  CHECK(count(journal, "forwarded") == 0);
  CHECK(count(journal, "after.request") == 0);
  CHECK(count(journal, "slow.complete") == 1);
  CHECK(count(journal, "after.complete") == 1);
}

TEST_CASE("the forwarded body is the client's bytes, with what filters add to params._meta") {
  Journal journal;
  gw::FilterChain chain;
  FakePort port(journal);
  run([&]() -> awaitable<void> {
    const auto& call = tool_call();
    gw::ExchangeRunner plain(chain, port, request_for(call));
    CHECK(plain.forwarded_body("client") == "client");
    const std::string bytes = call.body().dump();
    gw::ExchangeRunner added(chain, port, request_for(call));
    added.exchange().forwarded_meta = {{"traceparent", "00-t"}};
    const auto forwarded = Json::parse(added.forwarded_body(bytes));
    CHECK(forwarded["params"]["_meta"]["traceparent"] == "00-t");
    CHECK(forwarded["params"]["name"] == call.body()["params"]["name"]);
    CHECK(added.forwarded_message() == forwarded);
    // Bytes the splice cannot take (here: not JSON) are rewritten from the parsed message.
    CHECK(Json::parse(added.forwarded_body("not json")) == forwarded);
    co_return;
  });
}
