#include "gateway/client_requests.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include "membrane/core/log.hpp"

namespace membrane::gateway {

using namespace asio::experimental::awaitable_operators;

struct PendingClientRequest::State {
  State(std::string id, std::string session_key, const asio::any_io_executor& executor)
      : id(std::move(id)),
        session_key(std::move(session_key)),
        answer(executor, 1),
        timer(executor) {}
  std::string id;
  std::string session_key;
  asio::experimental::concurrent_channel<void(error_code, mcp::Json)> answer;
  asio::steady_timer timer;
};

PendingClientRequest::PendingClientRequest(ClientRequests& owner, std::unique_ptr<State> state)
    : owner_(owner), state_(std::move(state)) {}

PendingClientRequest::~PendingClientRequest() {
  owner_.forget(state_->id);
}

const std::string& PendingClientRequest::id() const {
  return state_->id;
}

std::string PendingClientRequest::request_message(std::string_view method,
                                                  const mcp::Json& params) const {
  const mcp::Json request = {
      {"jsonrpc", "2.0"}, {"id", state_->id}, {"method", method}, {"params", params}};
  return request.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

awaitable<ClientAnswer> PendingClientRequest::wait(Clock::time_point deadline,
                                                   std::chrono::milliseconds tick,
                                                   StillThere still_there) {
  ClientAnswer out;
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) {
      out.kind = ClientAnswer::Kind::timed_out;
      co_return out;
    }
    state_->timer.expires_after(std::min<Clock::duration>(tick, deadline - now));
    auto result = co_await (state_->answer.async_receive(use_nothrow) ||
                            state_->timer.async_wait(use_nothrow));
    if (result.index() == 0) {
      auto& [ec, response] = std::get<0>(result);
      if (ec) {
        out.kind = ClientAnswer::Kind::cancelled;
        co_return out;
      }
      out.kind = ClientAnswer::Kind::answered;
      out.response = std::move(response);
      co_return out;
    }
    if (const auto [timer_ec] = std::get<1>(result); timer_ec) {
      out.kind = ClientAnswer::Kind::cancelled;
      co_return out;
    }
    if (Clock::now() < deadline && !co_await still_there()) {
      out.kind = ClientAnswer::Kind::client_gone;
      co_return out;
    }
  }
}

std::string ClientRequests::session_key(const mcp::SessionClaims& session) {
  std::string key = session.upstream;
  key.push_back('\n');
  key += session.upstream_session;
  return key;
}

std::unique_ptr<PendingClientRequest> ClientRequests::open(std::string session_key,
                                                           const asio::any_io_executor& executor) {
  auto state = std::make_unique<PendingClientRequest::State>(
      std::string(id_prefix) + mcp::base64url_encode(mcp::random_bytes(16)), std::move(session_key),
      executor);
  {
    std::lock_guard lock(mutex_);
    pending_.emplace(state->id, state.get());
  }
  return std::make_unique<PendingClientRequest>(*this, std::move(state));
}

bool ClientRequests::consume(std::string_view session_key, const mcp::Message& response) {
  const mcp::Json& id = response.id();
  if (!id.is_string()) return false;
  const auto& text = id.get_ref<const std::string&>();
  if (text.compare(0, id_prefix.size(), id_prefix) != 0) return false;
  if (deliver(text, session_key, response.body())) return true;
  if (relay_) {
    relay_(text, std::string(session_key), response.body());
  } else {
    log::info("an answer to gateway request ", text,
              " arrived too late or on another session; it is dropped");
  }
  return true;
}

bool ClientRequests::deliver(std::string_view id, std::string_view session_key,
                             mcp::Json response) {
  std::lock_guard lock(mutex_);
  const auto it = pending_.find(std::string(id));
  if (it == pending_.end() || it->second->session_key != session_key) return false;
  // A second answer to the same question finds the channel full and is dropped.
  it->second->answer.try_send(error_code(), std::move(response));
  return true;
}

void ClientRequests::forget(const std::string& id) {
  std::lock_guard lock(mutex_);
  pending_.erase(id);
}

Confirmation confirmation_from(const ClientAnswer& answer) {
  Confirmation confirmation;
  switch (answer.kind) {
    case ClientAnswer::Kind::timed_out:
      confirmation.outcome = Confirmation::Outcome::timed_out;
      return confirmation;
    case ClientAnswer::Kind::client_gone:
      confirmation.outcome = Confirmation::Outcome::client_gone;
      return confirmation;
    case ClientAnswer::Kind::cancelled:
      confirmation.outcome = Confirmation::Outcome::failed;
      confirmation.detail = "the gateway is shutting down";
      return confirmation;
    case ClientAnswer::Kind::deferred:
    case ClientAnswer::Kind::unavailable:
      confirmation.outcome = Confirmation::Outcome::failed;
      confirmation.detail = "the client cannot be asked here";
      return confirmation;
    case ClientAnswer::Kind::answered:
      break;
  }
  const mcp::Json& response = answer.response;
  if (const auto error = response.find("error"); error != response.end()) {
    confirmation.outcome = Confirmation::Outcome::failed;
    confirmation.detail = "the client could not show the request";
    if (error->is_object()) {
      if (const auto message = error->find("message");
          message != error->end() && message->is_string()) {
        confirmation.detail += ": " + message->get<std::string>();
      }
    }
    return confirmation;
  }
  std::string action;
  if (const auto result = response.find("result");
      result != response.end() && result->is_object()) {
    if (const auto field = result->find("action"); field != result->end() && field->is_string())
      action = field->get<std::string>();
  }
  if (action == "accept") {
    confirmation.outcome = Confirmation::Outcome::accepted;
  } else if (action == "decline") {
    confirmation.outcome = Confirmation::Outcome::declined;
  } else if (action == "cancel") {
    confirmation.outcome = Confirmation::Outcome::cancelled;
  } else {
    confirmation.outcome = Confirmation::Outcome::failed;
    confirmation.detail = "the client's answer has no valid action (accept, decline or cancel)";
  }
  return confirmation;
}

bool can_elicit_form(const mcp::Json& client_capabilities) {
  if (!client_capabilities.is_object()) return false;
  const auto elicitation = client_capabilities.find("elicitation");
  if (elicitation == client_capabilities.end() || !elicitation->is_object()) return false;
  // Only `url` listed means the client cannot render a form.
  return elicitation->empty() || elicitation->contains("form") || !elicitation->contains("url");
}

}  // namespace membrane::gateway
