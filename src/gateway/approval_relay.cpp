#include "gateway/approval_relay.hpp"
#include "membrane/core/json.hpp"

#include "membrane/core/log.hpp"

namespace membrane::gateway {

ApprovalRelay::ApprovalRelay(ClientRequests& requests, std::shared_ptr<cluster::RedisClient> redis,
                             cluster::RedisOptions options, std::string channel)
    : requests_(requests),
      redis_(std::move(redis)),
      channel_(std::move(channel)),
      subscriber_(redis_->url(), options, {channel_},
                  [this](std::string_view, std::string_view payload) { on_message(payload); }) {}

ApprovalRelay::~ApprovalRelay() {
  stop();
}

void ApprovalRelay::start(asio::any_io_executor executor) {
  executor_ = executor;
  subscriber_.start(executor);
  requests_.set_relay(
      [this](const std::string& id, const std::string& session_key, const mcp::Json& response) {
        const mcp::Json envelope = {{"id", id}, {"session", session_key}, {"response", response}};
        std::string payload = envelope.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
        asio::co_spawn(executor_, publish(std::move(payload), id), asio::detached);
      });
}

void ApprovalRelay::stop() {
  subscriber_.stop();
}

awaitable<void> ApprovalRelay::publish(std::string payload, std::string id) {
  std::vector<std::string> command = {"PUBLISH", channel_, std::move(payload)};
  const auto result = co_await redis_->command(std::move(command));
  if (!result.ok() || result.reply.kind == cluster::RedisReply::Kind::error) {
    log::warn("approvals: could not pass the answer to gateway request ", id,
              " to the other replicas (", result.ok() ? result.reply.text : result.error,
              "); the replica that asked will time out");
    co_return;
  }
  published_.fetch_add(1, std::memory_order_relaxed);
  log::debug("approvals: answer to ", id, " passed on to ", result.reply.integer, " replica(s)");
}

void ApprovalRelay::on_message(std::string_view payload) {
  auto envelope = json::parse_or_discarded(payload);
  if (!envelope.is_object() || !envelope.contains("id") || !envelope["id"].is_string() ||
      !envelope.contains("session") || !envelope["session"].is_string() ||
      !envelope.contains("response")) {
    log::warn("approvals: ignoring a malformed message on ", channel_);
    return;
  }
  const auto& id = envelope["id"].get_ref<const std::string&>();
  const auto& session = envelope["session"].get_ref<const std::string&>();
  if (requests_.deliver(id, session, std::move(envelope["response"]))) {
    delivered_.fetch_add(1, std::memory_order_relaxed);
    log::info("approvals: the answer to gateway request ", id, " arrived through another replica");
  }
}

}  // namespace membrane::gateway
