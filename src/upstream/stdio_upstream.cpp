// stdio upstream: one child process per downstream session (a stdio MCP server speaks to exactly
// one client: one initialize, one id space). Newline-delimited JSON-RPC on stdin/stdout, stderr
// to the log. The child is an implementation detail of the session: when it is gone (crash,
// idle stop, another replica, a restart) the next request spawns a new one and replays the
// client's initialize from the sealed session id.
// A server that speaks 2026-07-28 keeps no session: its stateless requests, from every client,
// share one child that never sees initialize, each under an id of the gateway's.

#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "membrane/core/ascii.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/revisions.hpp"
#include "upstream/factory.hpp"
#include "upstream/stdio_instance.hpp"

namespace membrane::upstream {
namespace {

using namespace asio::experimental::awaitable_operators;
using stdio::ChildRole;
using stdio::Clock;
using stdio::Delivery;
using stdio::DeliveryStream;
using stdio::StdioInstance;

class StdioUpstream final : public Upstream {
 public:
  explicit StdioUpstream(StdioUpstreamOptions options) : options_(std::move(options)) {}

  const std::string& name() const override { return options_.name; }
  std::string_view transport() const override { return "stdio"; }
  const UpstreamTraits& traits() const override {
    static constexpr UpstreamTraits stdio{.replies_at_once = true,
                                          .cancels_dropped_calls = true,
                                          .shared_session_stream = false,
                                          .process_per_session = true,
                                          .needs_initialize_replay = true,
                                          .may_be_stateless = true,
                                          .sees_request_headers = false};
    return stdio;
  }
  std::string_view declared_protocol() const override { return options_.protocol; }

  awaitable<UpstreamReply> send(const mcp::Message& message, std::string raw,
                                const mcp::SessionClaims* session,
                                const ForwardContext& context) override {
    if (!session && !message.is_initialize())
      co_return co_await send_stateless(message, std::move(raw), context);
    std::shared_ptr<StdioInstance> instance;
    if (message.is_initialize()) {
      auto [created, refusal] = co_await create_instance(
          mcp::base64url_encode(mcp::random_bytes(16)), nullptr, context.caller);
      if (!created) co_return std::move(refusal);
      instance = std::move(created);
    } else {
      if (!session) co_return UpstreamReply::failure("no session");
      auto [found, reply] = co_await instance_for(*session, context.caller);
      if (!found) co_return std::move(reply);
      instance = std::move(found);
    }

    // Newline-delimited framing: a message must be one line (MCP transports §stdio).
    if (ascii::find_line_break(raw) != std::string::npos) raw = message.body().dump();

    UpstreamReply reply;
    if (!message.is_request()) {
      if (!co_await instance->write_line(std::move(raw))) {
        co_return UpstreamReply::failure(unavailable(*instance));
      }
      reply.kind = UpstreamReply::Kind::accepted;
      reply.http_status = 202;
      co_return reply;
    }
    const auto consumer = co_await asio::this_coro::executor;
    auto channel = instance->register_request(message, consumer);
    if (!channel) co_return UpstreamReply::failure(unavailable(*instance));
    const std::string key = mcp::id_key(message.id());
    std::weak_ptr<StdioInstance> weak = instance;
    auto give_up = [weak, key, id = message.id(), limit = options_.response_timeout,
                    name = options_.name] {
      std::string reason = "upstream '" + name + "' sent nothing for this request in " +
                           std::to_string(limit.count()) +
                           " ms (timeouts.upstream_response); it was cancelled";
      if (auto alive = weak.lock()) alive->cancel_request(key, id, reason);
      return reason;
    };
    reply.stream = std::make_unique<DeliveryStream>(
        channel,
        [weak, key, id = message.id(), cancellable = !message.is_initialize()] {
          if (auto alive = weak.lock()) alive->abandon_request(key, id, cancellable);
        },
        options_.response_timeout, std::move(give_up));
    if (!co_await instance->write_line(std::move(raw))) {
      co_return UpstreamReply::failure(unavailable(*instance));
    }
    reply.kind = UpstreamReply::Kind::stream;
    reply.http_status = 200;
    reply.upstream_session = instance->id();
    co_return reply;
  }

  // A 2026-07-28 message: it belongs to no session, so it goes to the shared child. The gateway's
  // probe gets a child of its own, stopped once it has answered.
  awaitable<UpstreamReply> send_stateless(const mcp::Message& message, std::string raw,
                                          const ForwardContext& context) {
    mcp::Json body = json::parse_or_discarded(raw);
    if (!body.is_object()) body = message.body();
    std::pair<std::shared_ptr<StdioInstance>, UpstreamReply> found;
    if (context.probe) {
      found = co_await create_instance("probe-" + mcp::base64url_encode(mcp::random_bytes(9)),
                                       nullptr, std::string(), ChildRole::shared);
    } else {
      found = co_await shared_instance();
    }
    auto& [instance, refusal] = found;
    if (!instance) co_return std::move(refusal);

    UpstreamReply reply;
    if (!message.is_request()) {
      if (message.method() == "notifications/cancelled") {
        // It names the client's id; the child knows that request by the gateway's.
        const auto* params = message.params();
        const mcp::Json wire = params && params->contains("requestId")
                                   ? instance->wire_id_of(context.caller, (*params)["requestId"])
                                   : mcp::Json();
        if (wire.is_null()) {
          reply.kind = UpstreamReply::Kind::accepted;
          reply.http_status = 202;
          co_return reply;
        }
        body["params"]["requestId"] = wire;
      }
      if (!co_await instance->write_line(
              body.dump(-1, ' ', false, mcp::Json::error_handler_t::replace))) {
        co_return UpstreamReply::failure(unavailable(*instance));
      }
      reply.kind = UpstreamReply::Kind::accepted;
      reply.http_status = 202;
      co_return reply;
    }

    auto request = instance->register_shared_request(std::move(body), context.caller,
                                                     co_await asio::this_coro::executor);
    if (!request.channel) co_return UpstreamReply::failure(unavailable(*instance));
    const std::string key = mcp::id_key(request.wire_id);
    std::weak_ptr<StdioInstance> weak = instance;
    const bool probe = context.probe;
    // Every request must hear back in time; once acknowledged, a listen lasts as long as the
    // client wants it.
    const bool listen = message.method() == "subscriptions/listen";
    std::chrono::milliseconds quiet_limit = options_.response_timeout;
    if (probe) quiet_limit = std::min(quiet_limit, probe_timeout);
    const auto timed_out = std::make_shared<bool>(false);
    auto give_up = [weak, key, id = request.wire_id, limit = quiet_limit, name = options_.name,
                    timed_out] {
      *timed_out = true;
      std::string reason = "upstream '" + name + "' sent nothing for this request in " +
                           std::to_string(limit.count()) + " ms; it was cancelled";
      if (auto alive = weak.lock()) alive->cancel_request(key, id, reason);
      return reason;
    };
    auto stream = std::make_unique<DeliveryStream>(
        request.channel,
        [weak, key, id = request.wire_id, probe] {
          auto alive = weak.lock();
          if (!alive) return;
          alive->abandon_request(key, id, true);
          if (probe) {
            asio::co_spawn(
                alive->executor(), [alive] { return alive->stop("the probe was answered"); },
                asio::detached);
          }
        },
        quiet_limit, std::move(give_up));
    if (!co_await instance->write_line(std::move(request.line))) {
      co_return UpstreamReply::failure(unavailable(*instance));
    }
    // Over HTTP a 2026-07-28 server answers with one JSON response, whose status its revision
    // sets for an error, or with a stream. Over stdio the first line about the request decides
    // which of the two the gateway has.
    auto first = co_await stream->next();
    if (first.status != ReadStatus::message && *timed_out) {
      // The process is there and said nothing: its answer is that error, as a call's stream ends
      // with it when the process falls silent later.
      reply.kind = UpstreamReply::Kind::message;
      reply.http_status = 200;
      reply.content_type = "application/json";
      reply.body = mcp::make_error_response(message.id(), mcp::error_code::upstream_unavailable,
                                            first.error);
      co_return reply;
    }
    if (first.status != ReadStatus::message) {
      co_return UpstreamReply::failure(first.error.empty() ? unavailable(*instance)
                                                           : std::move(first.error));
    }
    auto answer = json::parse_or_discarded(first.event.data);
    if (answer.is_object() && answer.contains("id") &&
        (answer.contains("result") || answer.contains("error"))) {
      const unsigned status = mcp::stateless_http_status(answer);
      reply.kind = status == 200 ? UpstreamReply::Kind::message : UpstreamReply::Kind::rejected;
      reply.http_status = status;
      reply.content_type = "application/json";
      reply.body = std::move(first.event.data);
      co_return reply;
    }
    stream->put_back(std::move(first));
    if (listen) stream->set_quiet_limit(std::chrono::milliseconds(0));
    reply.stream = std::move(stream);
    reply.kind = UpstreamReply::Kind::stream;
    reply.http_status = 200;
    co_return reply;
  }

  awaitable<UpstreamReply> listen(const mcp::SessionClaims& session,
                                  const ForwardContext& context) override {
    auto [instance, reply] = co_await instance_for(session, context.caller);
    if (!instance) co_return std::move(reply);
    const auto consumer = co_await asio::this_coro::executor;
    auto channel = instance->attach_listener(consumer);
    std::weak_ptr<StdioInstance> weak = instance;
    reply.kind = UpstreamReply::Kind::stream;
    reply.http_status = 200;
    reply.stream = std::make_unique<DeliveryStream>(channel, [weak, channel] {
      if (auto alive = weak.lock()) alive->detach_listener(channel);
    });
    co_return std::move(reply);
  }

  awaitable<UpstreamReply> end_session(const mcp::SessionClaims& session,
                                       const ForwardContext&) override {
    std::shared_ptr<StdioInstance> instance;
    {
      std::lock_guard lock(mutex_);
      if (const auto it = instances_.find(session.upstream_session); it != instances_.end()) {
        instance = it->second;
        instances_.erase(it);
      }
      remember_ended(session.upstream_session);
    }
    if (instance) {
      co_await asio::co_spawn(instance->executor(), instance->stop("session deleted by the client"),
                              asio::use_awaitable);
    }
    UpstreamReply reply;
    reply.kind = UpstreamReply::Kind::accepted;
    reply.http_status = 200;
    co_return reply;
  }

  awaitable<void> stop() override {
    std::vector<std::shared_ptr<StdioInstance>> all;
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
      for (auto& [id, instance] : instances_)
        all.push_back(instance);
      instances_.clear();
    }
    // Stop every child in parallel: shutdown takes one grace period, not one per session.
    std::vector<std::shared_ptr<asio::experimental::concurrent_channel<void(error_code)>>> done;
    for (auto& instance : all) {
      auto signal = std::make_shared<asio::experimental::concurrent_channel<void(error_code)>>(
          co_await asio::this_coro::executor, 1);
      done.push_back(signal);
      asio::co_spawn(instance->executor(), instance->stop("gateway shutting down"),
                     [signal](std::exception_ptr) { signal->try_send(error_code()); });
    }
    for (auto& signal : done)
      co_await signal->async_receive(use_nothrow);
  }

 private:
  static std::string unavailable(const StdioInstance& instance) {
    const std::string failure = instance.failure();
    return failure.empty() ? "upstream is not running" : failure;
  }

  void remember_ended(const std::string& id) {
    // Bounded: a deleted session id must 404 on this replica, but the set must not grow forever.
    if (ended_order_.size() >= 100'000) {
      ended_.erase(ended_order_.front());
      ended_order_.pop_front();
    }
    if (ended_.insert(id).second) ended_order_.push_back(id);
  }

  Clock::duration restart_delay() {
    std::lock_guard lock(mutex_);
    if (consecutive_crashes_ == 0) return Clock::duration::zero();
    const std::chrono::milliseconds delay = std::min<std::chrono::milliseconds>(
        options_.restart_backoff_initial * (1 << std::min(consecutive_crashes_ - 1, 20)),
        options_.restart_backoff_max);
    const auto since = Clock::now() - last_crash_;
    return since >= delay ? Clock::duration::zero() : Clock::duration(delay - since);
  }

  // Makes room for one more child of `caller` under max_processes and
  // max_processes_per_caller: stops the least recently used idle child where a cap is reached
  // (its session restarts it when used again). Returns the refusal when every child in the way
  // is busy. Called with mutex_ held.
  std::optional<UpstreamReply> make_room_locked(
      const std::string& caller, std::vector<std::shared_ptr<StdioInstance>>& evicted) {
    const auto over = [&](bool per_caller) {
      std::size_t count = 0;
      for (const auto& [id, instance] : instances_)
        count += !per_caller || instance->caller() == caller;
      return count >= (per_caller ? options_.max_processes_per_caller : options_.max_processes);
    };
    for (const bool per_caller : {true, false}) {
      // The gateway's own children (shared, probes) belong to no caller.
      if (per_caller && caller.empty()) continue;
      while (over(per_caller)) {
        std::shared_ptr<StdioInstance> idlest;
        for (const auto& [id, instance] : instances_) {
          if ((per_caller && instance->caller() != caller) || instance->busy()) continue;
          if (!idlest || instance->last_activity() < idlest->last_activity()) idlest = instance;
        }
        if (!idlest) {
          const auto limit = per_caller ? http::OverloadLimit::processes_per_caller
                                        : http::OverloadLimit::processes;
          std::string reason =
              per_caller
                  ? "Too Many Requests: this caller already has " +
                        std::to_string(options_.max_processes_per_caller) + " busy sessions on '" +
                        options_.name + "' (max_processes_per_caller); retry later or end one"
                  : "Service Unavailable: upstream '" + options_.name + "' runs its limit of " +
                        std::to_string(options_.max_processes) +
                        " processes, all busy (max_processes); retry later";
          // Counted and logged at most once per interval: a flood costs one line.
          if (options_.overload_stats)
            options_.overload_stats->refused(limit, reason);
          else
            log::warn("upstream '", options_.name, "': ", reason);
          return UpstreamReply::overload(limit, std::move(reason), std::chrono::seconds(5));
        }
        instances_.erase(idlest->id());
        evicted.push_back(std::move(idlest));
      }
    }
    return std::nullopt;
  }

  // Creates, registers and starts a child for session `id`. With `initialize_params`, replays
  // the client's initialize handshake to it first.
  awaitable<std::pair<std::shared_ptr<StdioInstance>, UpstreamReply>> create_instance(
      std::string id, const nlohmann::json* initialize_params, const std::string& caller,
      ChildRole role = ChildRole::session) {
    const auto executor = co_await asio::this_coro::executor;
    auto instance = std::make_shared<StdioInstance>(options_, id, caller, executor, role);
    std::vector<std::shared_ptr<StdioInstance>> evicted;
    std::shared_ptr<StdioInstance> started_meanwhile;
    {
      std::lock_guard lock(mutex_);
      if (stopped_)
        co_return std::pair{nullptr, UpstreamReply::failure("the gateway is shutting down")};
      if (const auto it = instances_.find(id); it != instances_.end()) {
        // Another request started the shared child first: one is enough.
        started_meanwhile = it->second;
      } else {
        if (auto refusal = make_room_locked(caller, evicted)) {
          co_return std::pair{nullptr, std::move(*refusal)};
        }
        instances_[id] = instance;
      }
    }
    if (started_meanwhile) {
      if (co_await started_meanwhile->wait_ready() == StdioInstance::State::ready)
        co_return std::pair{started_meanwhile, UpstreamReply{}};
      co_return std::pair{nullptr, UpstreamReply::failure(unavailable(*started_meanwhile))};
    }
    for (auto& victim : evicted) {
      log::info("upstream '", options_.name, "': stopping the least recently used idle process (",
                "pid ", victim->pid(), ") to make room; its session restarts it when used");
      asio::co_spawn(
          victim->executor(), [victim] { return victim->stop("stopped to make room"); },
          asio::detached);
    }
    instance->on_exit = [this](const std::shared_ptr<StdioInstance>& gone, bool crashed,
                               Clock::duration lived) {
      std::lock_guard lock(mutex_);
      if (const auto it = instances_.find(gone->id());
          it != instances_.end() && it->second == gone) {
        instances_.erase(it);
      }
      if (!crashed) return;
      consecutive_crashes_ = lived > std::chrono::seconds(60) ? 1 : consecutive_crashes_ + 1;
      last_crash_ = Clock::now();
    };

    if (const auto delay = restart_delay(); delay > Clock::duration::zero()) {
      log::info("upstream '", options_.name, "': restarting in ",
                std::chrono::duration_cast<std::chrono::milliseconds>(delay).count(),
                " ms (backoff)");
      asio::steady_timer pause(executor, delay);
      co_await pause.async_wait(use_nothrow);
    }
    if (std::string error = instance->spawn(); !error.empty()) {
      std::string reason = "upstream '" + options_.name + "' cannot start: " + error;
      log::error(reason);
      {
        std::lock_guard lock(mutex_);
        ++consecutive_crashes_;
        last_crash_ = Clock::now();
        instances_.erase(id);
      }
      instance->mark(StdioInstance::State::failed, reason);
      co_return std::pair{nullptr, UpstreamReply::failure(reason)};
    }
    if (initialize_params) {
      if (std::string error = co_await replay_initialize(*instance, *initialize_params);
          !error.empty()) {
        std::string reason =
            "upstream '" + options_.name + "' did not accept the session's initialize: " + error;
        log::warn(reason);
        instance->mark(StdioInstance::State::failed, reason);
        co_await instance->stop("initialize replay failed");
        co_return std::pair{nullptr, UpstreamReply::failure(reason)};
      }
    }
    instance->mark(StdioInstance::State::ready);
    co_return std::pair{instance, UpstreamReply{}};
  }

  awaitable<std::string> replay_initialize(StdioInstance& instance, const nlohmann::json& params) {
    const nlohmann::json request = {{"jsonrpc", "2.0"},
                                    {"id", "membrane-replay-" + instance.id().substr(0, 8)},
                                    {"method", "initialize"},
                                    {"params", params}};
    auto parsed = mcp::classify_message(request);
    auto channel = instance.register_request(*parsed.message, co_await asio::this_coro::executor);
    if (!channel || !co_await instance.write_line(request.dump())) co_return "the process exited";
    asio::steady_timer timeout(co_await asio::this_coro::executor, options_.initialize_timeout);
    auto outcome =
        co_await (channel->channel().async_receive(use_nothrow) || timeout.async_wait(use_nothrow));
    // Nobody reads this channel after the answer: closed, the reader never waits on it.
    channel->close();
    if (outcome.index() == 1) co_return "no initialize response within the timeout";
    auto& [ec, read] = std::get<0>(outcome);
    if (ec || read.status != ReadStatus::message) {
      std::string failure = read.error.empty() ? std::string("the process exited") : read.error;
      co_return failure;
    }
    const auto response = json::parse_or_discarded(read.event.data);
    if (!response.is_object() || response.contains("error")) {
      co_return "initialize failed: " + read.event.data.substr(0, 300);
    }
    const std::string initialized = R"({"jsonrpc":"2.0","method":"notifications/initialized"})";
    if (!co_await instance.write_line(initialized)) co_return "the process exited";
    log::info("upstream '", options_.name, "': session ", instance.id().substr(0, 8),
              " resumed on a new process (initialize replayed)");
    co_return std::string();
  }

  // The child every 2026-07-28 request shares, starting it when there is none.
  awaitable<std::pair<std::shared_ptr<StdioInstance>, UpstreamReply>> shared_instance() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::shared_ptr<StdioInstance> instance;
      {
        std::lock_guard lock(mutex_);
        if (const auto it = instances_.find(shared_child_id); it != instances_.end())
          instance = it->second;
      }
      if (!instance)
        co_return co_await create_instance(shared_child_id, nullptr, std::string(),
                                           ChildRole::shared);
      const auto state = co_await instance->wait_ready();
      if (state == StdioInstance::State::ready) co_return std::pair{instance, UpstreamReply{}};
      if (state == StdioInstance::State::failed)
        co_return std::pair{nullptr, UpstreamReply::failure(instance->failure())};
      std::lock_guard lock(mutex_);
      if (const auto it = instances_.find(shared_child_id);
          it != instances_.end() && it->second == instance) {
        instances_.erase(it);
      }
    }
    co_return std::pair{nullptr, UpstreamReply::failure("upstream '" + options_.name +
                                                        "' keeps exiting before it is ready")};
  }

  // The running child of a session, starting one (and replaying initialize) when there is none.
  awaitable<std::pair<std::shared_ptr<StdioInstance>, UpstreamReply>> instance_for(
      const mcp::SessionClaims& session, const std::string& caller) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::shared_ptr<StdioInstance> instance;
      {
        std::lock_guard lock(mutex_);
        if (ended_.contains(session.upstream_session)) break;
        if (const auto it = instances_.find(session.upstream_session); it != instances_.end()) {
          instance = it->second;
        }
      }
      if (!instance) {
        if (session.initialize_params.is_null()) break;
        // A named value: GCC 12 mis-destroys class temporaries of a conditional expression
        // inside a co_await expression.
        std::string owner = caller;
        if (!session.subject.empty()) owner = "sub:" + session.subject;
        co_return co_await create_instance(session.upstream_session, &session.initialize_params,
                                           owner);
      }
      const auto state = co_await instance->wait_ready();
      if (state == StdioInstance::State::ready) co_return std::pair{instance, UpstreamReply{}};
      if (state == StdioInstance::State::failed) {
        co_return std::pair{nullptr, UpstreamReply::failure(instance->failure())};
      }
      // dead: it exited; forget it and start over
      std::lock_guard lock(mutex_);
      if (const auto it = instances_.find(session.upstream_session);
          it != instances_.end() && it->second == instance) {
        instances_.erase(it);
      }
    }
    UpstreamReply reply;
    reply.kind = UpstreamReply::Kind::session_not_found;
    co_return std::pair{nullptr, std::move(reply)};
  }

  // Session ids are 22 base64url characters (16 random bytes), so this never names a session.
  inline static const std::string shared_child_id = "stateless";
  // A server that does not answer server/discover this soon is taken for a session server.
  static constexpr std::chrono::milliseconds probe_timeout{10'000};

  StdioUpstreamOptions options_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<StdioInstance>> instances_;
  std::unordered_set<std::string> ended_;
  std::deque<std::string> ended_order_;
  int consecutive_crashes_ = 0;
  Clock::time_point last_crash_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<Upstream> make_stdio_upstream(StdioUpstreamOptions options) {
  return std::make_unique<StdioUpstream>(std::move(options));
}

}  // namespace membrane::upstream
