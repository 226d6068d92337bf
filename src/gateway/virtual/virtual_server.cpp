#include "gateway/virtual/virtual_server.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include <mutex>
#include <unordered_map>

#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/protocol.hpp"

namespace membrane::gateway {

namespace {

using namespace asio::experimental::awaitable_operators;
using upstream::ReadStatus;
using upstream::StreamRead;
using upstream::UpstreamReply;
using Kind = UpstreamReply::Kind;

// ---- The members' sessions, sealed into the client's session id ------------------------------

// What one member said at initialize: its session, the revision it agreed to, and which
// capabilities it has (so that listings skip the members that have nothing to list).
struct MemberSession {
  std::string session;
  std::string protocol;
  std::string capabilities;  // one letter each: t tools, p prompts, r resources, l logging,
                             // c completions
  bool has(char capability) const { return capabilities.find(capability) != std::string::npos; }
};
using MemberSessions = std::map<std::string, MemberSession, std::less<>>;

std::string pack_sessions(const MemberSessions& sessions) {
  mcp::Json packed = mcp::Json::object();
  for (const auto& [upstream, member] : sessions)
    packed[upstream] = mcp::Json::array({member.session, member.protocol, member.capabilities});
  return packed.dump();
}

std::optional<MemberSessions> unpack_sessions(std::string_view text) {
  const auto parsed = json::parse(text, 2);
  if (!parsed.ok() || !parsed.value.is_object()) return std::nullopt;
  MemberSessions sessions;
  for (const auto& [upstream, member] : parsed.value.items()) {
    if (!member.is_array() || member.size() != 3 || !member[0].is_string() ||
        !member[1].is_string() || !member[2].is_string())
      return std::nullopt;
    sessions.emplace(upstream,
                     MemberSession{member[0].get<std::string>(), member[1].get<std::string>(),
                                   member[2].get<std::string>()});
  }
  return sessions;
}

std::string capability_letters(const mcp::Json& capabilities) {
  std::string letters;
  if (!capabilities.is_object()) return letters;
  const std::pair<const char*, char> known[] = {
      {"tools", 't'}, {"prompts", 'p'}, {"resources", 'r'}, {"logging", 'l'}, {"completions", 'c'}};
  for (const auto& [name, letter] : known) {
    if (capabilities.contains(name)) letters.push_back(letter);
  }
  return letters;
}

// ---- Replies the virtual server writes itself -------------------------------------------------

UpstreamReply json_reply(std::string body) {
  UpstreamReply reply;
  reply.kind = Kind::message;
  reply.http_status = 200;
  reply.content_type = "application/json";
  reply.body = std::move(body);
  return reply;
}

UpstreamReply result_reply(const mcp::Json& id, mcp::Json result) {
  const mcp::Json message = {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
  return json_reply(message.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
}

UpstreamReply error_reply(const mcp::Json& id, int code, std::string_view text) {
  return json_reply(mcp::make_error_response(id, code, text));
}

std::string describe_failure(const UpstreamReply& reply) {
  switch (reply.kind) {
    case Kind::rejected:
      return "answered HTTP " + std::to_string(reply.http_status);
    case Kind::session_not_found:
      return "no longer knows the session";
    case Kind::not_supported:
      return "does not support this";
    case Kind::accepted:
      return "accepted the request without answering it";
    default:
      return reply.body.empty() ? std::string("could not be reached") : reply.body;
  }
}

// ---- What members send the client --------------------------------------------------------------

// A member's request to the client (sampling, elicitation, roots) gets an id that names the
// member, and so does a member's cancellation of one; event ids are dropped, since a client could
// not resume a member's stream through the virtual server.
void tag_for_client(std::string_view upstream, http::SseEvent& event) {
  event.id.clear();
  event.has_id = false;
  if (event.data.find("\"method\"") == std::string::npos) return;
  auto parsed = json::parse(event.data);
  if (!parsed.ok() || !parsed.value.is_object()) return;
  mcp::Json& body = parsed.value;
  const auto method = body.find("method");
  if (method == body.end() || !method->is_string()) return;
  if (const auto id = body.find("id"); id != body.end() && !id->is_null()) {
    *id = VirtualCatalog::tag_request_id(upstream, *id);
  } else if (*method == "notifications/cancelled") {
    const auto params = body.find("params");
    if (params == body.end() || !params->is_object()) return;
    const auto request = params->find("requestId");
    if (request == params->end()) return;
    *request = VirtualCatalog::tag_request_id(upstream, *request);
  } else {
    return;
  }
  event.data = body.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
}

class TaggedStream final : public upstream::ReplyStream {
 public:
  TaggedStream(std::string upstream, std::unique_ptr<upstream::ReplyStream> inner)
      : upstream_(std::move(upstream)), inner_(std::move(inner)) {}

  awaitable<StreamRead> next() override {
    StreamRead read = co_await inner_->next();
    if (read.status == ReadStatus::message) tag_for_client(upstream_, read.event);
    co_return read;
  }
  void abort() override { inner_->abort(); }

 private:
  std::string upstream_;
  std::unique_ptr<upstream::ReplyStream> inner_;
};

// The members' listen streams as one: each is read by its own coroutine into a bounded channel
// (a member that floods waits for the client like any other), and the merged stream ends when
// every member's has.
class MergedStream final : public upstream::ReplyStream {
  using Channel = asio::experimental::channel<void(error_code, StreamRead)>;
  struct State {
    explicit State(asio::any_io_executor executor) : channel(executor, 64) {}
    Channel channel;
    std::vector<std::shared_ptr<upstream::ReplyStream>> streams;
  };

 public:
  static awaitable<std::unique_ptr<upstream::ReplyStream>> start(
      std::vector<std::pair<std::string, std::unique_ptr<upstream::ReplyStream>>> members) {
    auto executor = co_await asio::this_coro::executor;
    auto state = std::make_shared<State>(executor);
    for (auto& [upstream, stream] : members) {
      std::shared_ptr<upstream::ReplyStream> shared(std::move(stream));
      state->streams.push_back(shared);
      asio::co_spawn(executor, pump(state, upstream, shared), asio::detached);
    }
    co_return std::make_unique<MergedStream>(std::move(state), members.size());
  }

  MergedStream(std::shared_ptr<State> state, std::size_t open)
      : state_(std::move(state)), open_(open) {}
  ~MergedStream() override { abort(); }

  awaitable<StreamRead> next() override {
    while (open_ > 0) {
      auto [ec, read] = co_await state_->channel.async_receive(use_nothrow);
      if (ec) break;
      if (read.status == ReadStatus::message) co_return read;
      --open_;  // one member's stream ended (a failure was logged by its pump)
    }
    co_return StreamRead{};
  }

  void abort() override {
    if (aborted_) return;
    aborted_ = true;
    for (const auto& stream : state_->streams)
      stream->abort();
    state_->channel.close();
  }

 private:
  static awaitable<void> pump(std::shared_ptr<State> state, std::string upstream,
                              std::shared_ptr<upstream::ReplyStream> stream) {
    StreamRead last;
    try {
      for (;;) {
        StreamRead read = co_await stream->next();
        if (read.status != ReadStatus::message) {
          if (read.status == ReadStatus::failed)
            log::warn("virtual server: the stream of upstream '", upstream,
                      "' ended: ", read.error);
          break;
        }
        tag_for_client(upstream, read.event);
        auto [ec] = co_await state->channel.async_send(error_code(), std::move(read), use_nothrow);
        if (ec) co_return;  // the merged stream is gone
      }
    } catch (const std::exception& error) {
      log::warn("virtual server: reading the stream of upstream '", upstream,
                "' failed: ", error.what());
    }
    last.status = ReadStatus::end;
    co_await state->channel.async_send(error_code(), std::move(last), use_nothrow);
  }

  std::shared_ptr<State> state_;
  std::size_t open_;
  bool aborted_ = false;
};

// One member's answer to a request of the virtual server's own fan-out.
struct MemberAnswer {
  bool answered = false;  // a JSON-RPC response came back (result or error)
  mcp::Json response;
  std::string problem;  // otherwise: why not
  std::string session;  // initialize: the member's session
};

bool is_list_method(std::string_view method) {
  return method == "tools/list" || method == "prompts/list" || method == "resources/list" ||
         method == "resources/templates/list";
}

// ---- The virtual server -------------------------------------------------------------------------

class VirtualServer final : public upstream::Upstream, private upstream::MemberRouting {
 public:
  VirtualServer(std::shared_ptr<const VirtualCatalog> catalog,
                std::vector<upstream::Upstream*> members, VirtualServerOptions options)
      : catalog_(std::move(catalog)), members_(std::move(members)), options_(options) {
    traits_.replies_at_once = false;
    traits_.cancels_dropped_calls = false;
    traits_.shared_session_stream = false;
    traits_.may_be_stateless = false;
    traits_.sees_request_headers = false;
    for (const auto* member : members_) {
      traits_.process_per_session |= member->traits().process_per_session;
      traits_.needs_initialize_replay |= member->traits().needs_initialize_replay;
    }
  }

  const std::string& name() const override { return catalog_->name(); }
  std::string_view transport() const override { return "virtual"; }
  const upstream::UpstreamTraits& traits() const override { return traits_; }
  // Members are reached through sessions; 2026-07-28 clients come through the gateway's bridge.
  std::string_view declared_protocol() const override {
    return mcp::latest_session_protocol_version;
  }
  const upstream::MemberRouting* member_routing() const override { return this; }

  awaitable<UpstreamReply> send(const mcp::Message& message, std::string raw,
                                const mcp::SessionClaims* session,
                                const upstream::ForwardContext& context) override;
  awaitable<UpstreamReply> listen(const mcp::SessionClaims& session,
                                  const upstream::ForwardContext& context) override;
  awaitable<UpstreamReply> end_session(const mcp::SessionClaims& session,
                                       const upstream::ForwardContext& context) override;
  awaitable<void> stop() override { co_return; }  // the members are stopped as upstreams

 private:
  // MemberRouting
  const std::string& published_name() const override { return catalog_->name(); }
  std::optional<upstream::MemberTarget> route(const mcp::Message& message) const override;
  std::optional<upstream::MemberTarget> tool_owner(std::string_view published) const override {
    const auto owner = catalog_->owner_of(ItemKind::tool, published);
    if (!owner) return std::nullopt;
    return upstream::MemberTarget{catalog_->members()[owner->member].upstream, owner->name};
  }

  std::optional<std::size_t> resource_owner(std::string_view uri) const;
  void learn_resource(std::string_view uri, std::size_t member);

  mcp::SessionClaims member_claims(const mcp::SessionClaims& session, std::size_t member,
                                   const MemberSession& own) const {
    mcp::SessionClaims claims = session;
    claims.upstream = members_[member]->name();
    claims.upstream_session = own.session;
    return claims;
  }
  static upstream::ForwardContext member_context(const upstream::ForwardContext& context,
                                                 const MemberSession* own) {
    upstream::ForwardContext forwarded = context;
    forwarded.protocol_version = own ? own->protocol : std::string();
    forwarded.headers.clear();
    forwarded.last_event_id.clear();
    forwarded.member.reset();
    return forwarded;
  }

  // One request to one member, its answer collected from whatever form the reply takes, within
  // the member timeout.
  awaitable<MemberAnswer> ask(std::size_t member, mcp::Json request,
                              std::optional<mcp::SessionClaims> claims,
                              upstream::ForwardContext context);
  // The same request (one per member) to several members at once.
  awaitable<std::vector<MemberAnswer>> ask_each(const std::vector<std::size_t>& members,
                                                std::vector<mcp::Json> requests,
                                                const mcp::SessionClaims* session,
                                                const MemberSessions& sessions,
                                                const upstream::ForwardContext& context);
  awaitable<UpstreamReply> tell_each(const mcp::Message& message, std::string raw,
                                     const mcp::SessionClaims& session,
                                     const MemberSessions& sessions,
                                     const upstream::ForwardContext& context);
  awaitable<void> notify(std::size_t member, std::string raw, mcp::SessionClaims claims,
                         upstream::ForwardContext context);

  awaitable<UpstreamReply> initialize(const mcp::Message& message,
                                      const upstream::ForwardContext& context);
  awaitable<UpstreamReply> merged_list(const mcp::Message& message, std::string_view raw,
                                       const mcp::SessionClaims& session,
                                       const MemberSessions& sessions,
                                       const upstream::ForwardContext& context);
  awaitable<UpstreamReply> set_log_level(const mcp::Message& message, std::string_view raw,
                                         const mcp::SessionClaims& session,
                                         const MemberSessions& sessions,
                                         const upstream::ForwardContext& context);
  awaitable<UpstreamReply> answer_member(const mcp::Message& message, std::string_view raw,
                                         const mcp::SessionClaims& session,
                                         const MemberSessions& sessions,
                                         const upstream::ForwardContext& context);
  awaitable<UpstreamReply> forward_routed(const upstream::MemberTarget& target,
                                          const mcp::Message& message, std::string raw,
                                          const mcp::SessionClaims& session,
                                          const MemberSessions& sessions,
                                          const upstream::ForwardContext& context);

  std::shared_ptr<const VirtualCatalog> catalog_;
  std::vector<upstream::Upstream*> members_;
  VirtualServerOptions options_;
  upstream::UpstreamTraits traits_;
  mutable std::mutex resources_mutex_;
  std::unordered_map<std::string, std::size_t> resource_owners_;
};

std::optional<std::size_t> VirtualServer::resource_owner(std::string_view uri) const {
  {
    std::lock_guard lock(resources_mutex_);
    if (const auto known = resource_owners_.find(std::string(uri)); known != resource_owners_.end())
      return known->second;
  }
  // A URI no listing showed (one from a template, say): the first member that publishes it.
  for (std::size_t member = 0; member < members_.size(); ++member) {
    if (catalog_->publishes_resource(member, uri)) return member;
  }
  return std::nullopt;
}

void VirtualServer::learn_resource(std::string_view uri, std::size_t member) {
  std::lock_guard lock(resources_mutex_);
  if (resource_owners_.size() >= options_.max_known_resources) return;
  // The first member to list a URI keeps it: where a URI goes never changes under a session.
  resource_owners_.emplace(std::string(uri), member);
}

std::optional<upstream::MemberTarget> VirtualServer::route(const mcp::Message& message) const {
  if (!message.is_request()) return std::nullopt;
  const std::string_view method = message.method();
  const auto owned = [&](ItemKind kind,
                         std::string_view published) -> std::optional<upstream::MemberTarget> {
    const auto owner = catalog_->owner_of(kind, published);
    if (!owner) return std::nullopt;
    return upstream::MemberTarget{members_[owner->member]->name(), owner->name};
  };
  const auto resource = [&](std::string_view uri) -> std::optional<upstream::MemberTarget> {
    const auto owner = resource_owner(uri);
    if (!owner) return std::nullopt;
    return upstream::MemberTarget{members_[*owner]->name(), std::string(uri)};
  };
  if (method == "tools/call") return owned(ItemKind::tool, message.target_name());
  if (method == "prompts/get") return owned(ItemKind::prompt, message.target_name());
  if (method == "resources/read" || method == "resources/subscribe" ||
      method == "resources/unsubscribe")
    return resource(message.target_name());
  if (method == "completion/complete") {
    const auto* params = message.params();
    if (!params) return std::nullopt;
    const auto ref = params->find("ref");
    if (ref == params->end() || !ref->is_object()) return std::nullopt;
    const auto type = ref->value("type", std::string());
    if (type == "ref/prompt") {
      const auto name = ref->find("name");
      if (name != ref->end() && name->is_string())
        return owned(ItemKind::prompt, name->get_ref<const std::string&>());
    } else if (type == "ref/resource") {
      const auto uri = ref->find("uri");
      if (uri != ref->end() && uri->is_string())
        return resource(uri->get_ref<const std::string&>());
    }
  }
  return std::nullopt;
}

awaitable<MemberAnswer> VirtualServer::ask(std::size_t member, mcp::Json request,
                                           std::optional<mcp::SessionClaims> claims,
                                           upstream::ForwardContext context) {
  MemberAnswer answer;
  auto& upstream = *members_[member];
  const auto until = std::chrono::steady_clock::now() + options_.member_timeout;
  asio::steady_timer deadline(co_await asio::this_coro::executor, until);
  const mcp::Message message(mcp::MessageKind::request, request);
  std::string raw = request.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  const mcp::SessionClaims* session = claims ? &*claims : nullptr;
  auto sent = co_await (upstream.send(message, std::move(raw), session, context) ||
                        deadline.async_wait(use_nothrow));
  if (sent.index() == 1) {
    answer.problem =
        "did not answer within " + std::to_string(options_.member_timeout.count()) + " ms";
    co_return answer;
  }
  UpstreamReply reply = std::move(std::get<0>(sent));
  answer.session = reply.upstream_session;
  const mcp::Json& id = request["id"];
  const auto take = [&](std::string_view text) {
    auto parsed = json::parse(text);
    if (!parsed.ok() || !parsed.value.is_object()) return false;
    const auto found = parsed.value.find("id");
    if (parsed.value.contains("method") || found == parsed.value.end() || *found != id)
      return false;
    answer.answered = true;
    answer.response = std::move(parsed.value);
    return true;
  };
  if (reply.kind == Kind::message) {
    if (!take(reply.body)) answer.problem = "answered with something other than the response";
    co_return answer;
  }
  if (reply.kind != Kind::stream) {
    answer.problem = describe_failure(reply);
    co_return answer;
  }
  std::shared_ptr<upstream::ReplyStream> stream(std::move(reply.stream));
  deadline.expires_at(until);
  deadline.async_wait([watched = std::weak_ptr<upstream::ReplyStream>(stream)](error_code ec) {
    if (ec) return;
    if (const auto live = watched.lock()) live->abort();
  });
  for (;;) {
    const StreamRead read = co_await stream->next();
    if (read.status == ReadStatus::message) {
      if (take(read.event.data)) break;
      continue;  // a notification on the way (progress, a log line): not for this answer
    }
    answer.problem =
        read.status == ReadStatus::failed ? read.error
        : std::chrono::steady_clock::now() >= until
            ? "did not answer within " + std::to_string(options_.member_timeout.count()) + " ms"
            : std::string("closed the stream without answering");
    break;
  }
  deadline.cancel();
  co_return answer;
}

awaitable<std::vector<MemberAnswer>> VirtualServer::ask_each(
    const std::vector<std::size_t>& members, std::vector<mcp::Json> requests,
    const mcp::SessionClaims* session, const MemberSessions& sessions,
    const upstream::ForwardContext& context) {
  auto executor = co_await asio::this_coro::executor;
  const auto claims_for = [&](std::size_t member) -> std::optional<mcp::SessionClaims> {
    if (!session) return std::nullopt;
    return member_claims(*session, member, sessions.find(members_[member]->name())->second);
  };
  const auto context_for = [&](std::size_t member) {
    const auto own = sessions.find(members_[member]->name());
    return member_context(context, own == sessions.end() ? nullptr : &own->second);
  };
  if (members.size() == 1) {
    auto claims = claims_for(members[0]);
    auto forwarded = context_for(members[0]);
    std::vector<MemberAnswer> answers;
    answers.push_back(
        co_await ask(members[0], std::move(requests[0]), std::move(claims), std::move(forwarded)));
    co_return answers;
  }
  using Operation =
      decltype(asio::co_spawn(executor, std::declval<awaitable<MemberAnswer>>(), asio::deferred));
  std::vector<Operation> operations;
  operations.reserve(members.size());
  for (std::size_t index = 0; index < members.size(); ++index) {
    const std::size_t member = members[index];
    operations.push_back(asio::co_spawn(
        executor, ask(member, std::move(requests[index]), claims_for(member), context_for(member)),
        asio::deferred));
  }
  auto group = asio::experimental::make_parallel_group(std::move(operations));
  auto [order, failures, answers] =
      co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  for (std::size_t index = 0; index < answers.size(); ++index) {
    if (!failures[index]) continue;
    try {
      std::rethrow_exception(failures[index]);
    } catch (const std::exception& error) {
      answers[index] = MemberAnswer{};
      answers[index].problem = std::string("failed: ") + error.what();
    }
  }
  co_return answers;
}

awaitable<void> VirtualServer::notify(std::size_t member, std::string raw,
                                      mcp::SessionClaims claims, upstream::ForwardContext context) {
  auto parsed = mcp::parse_message(raw);
  if (!parsed.message) co_return;
  const auto until = std::chrono::steady_clock::now() + options_.member_timeout;
  asio::steady_timer deadline(co_await asio::this_coro::executor, until);
  auto sent = co_await (members_[member]->send(*parsed.message, std::move(raw), &claims, context) ||
                        deadline.async_wait(use_nothrow));
  if (sent.index() == 0) {
    const auto& reply = std::get<0>(sent);
    if (reply.kind != Kind::accepted && reply.kind != Kind::message && reply.kind != Kind::stream)
      log::debug("virtual server '", name(), "': upstream '", members_[member]->name(),
                 "' refused a notification: ", describe_failure(reply));
  }
}

awaitable<UpstreamReply> VirtualServer::tell_each(const mcp::Message& message, std::string raw,
                                                  const mcp::SessionClaims& session,
                                                  const MemberSessions& sessions,
                                                  const upstream::ForwardContext& context) {
  auto executor = co_await asio::this_coro::executor;
  using Operation =
      decltype(asio::co_spawn(executor, std::declval<awaitable<void>>(), asio::deferred));
  std::vector<Operation> operations;
  for (std::size_t member = 0; member < members_.size(); ++member) {
    const auto own = sessions.find(members_[member]->name());
    if (own == sessions.end()) continue;
    operations.push_back(
        asio::co_spawn(executor,
                       notify(member, raw, member_claims(session, member, own->second),
                              member_context(context, &own->second)),
                       asio::deferred));
  }
  if (!operations.empty()) {
    auto group = asio::experimental::make_parallel_group(std::move(operations));
    co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  }
  (void)message;
  UpstreamReply reply;
  reply.kind = Kind::accepted;
  reply.http_status = 202;
  co_return reply;
}

awaitable<UpstreamReply> VirtualServer::initialize(const mcp::Message& message,
                                                   const upstream::ForwardContext& context) {
  std::vector<std::size_t> everyone;
  std::vector<mcp::Json> requests;
  for (std::size_t member = 0; member < members_.size(); ++member) {
    everyone.push_back(member);
    requests.push_back(message.body());
  }
  const MemberSessions none;
  auto answers = co_await ask_each(everyone, std::move(requests), nullptr, none, context);

  MemberSessions sessions;
  std::string requested;
  if (const auto* params = message.params())
    requested = params->value("protocolVersion", std::string());
  std::string agreed;
  mcp::Json capabilities = mcp::Json::object();
  std::string instructions = catalog_->instructions();
  std::string problems;
  for (std::size_t member = 0; member < answers.size(); ++member) {
    auto& answer = answers[member];
    const std::string& upstream = members_[member]->name();
    const auto result = answer.answered ? answer.response.find("result") : answer.response.end();
    if (!answer.answered || result == answer.response.end() || !result->is_object()) {
      const std::string why = !answer.answered ? answer.problem
                                               : "refused initialize: " +
                                                     answer.response.value("error", mcp::Json())
                                                         .value("message", std::string("an error"));
      log::warn("virtual server '", name(), "': upstream '", upstream,
                "' is left out of this session: ", why);
      problems += (problems.empty() ? "" : "; ") + ("upstream '" + upstream + "' " + why);
      continue;
    }
    const std::string version = result->value("protocolVersion", std::string());
    // The oldest revision any member agreed to is one the client speaks with every member.
    if (agreed.empty() || (!version.empty() && version < agreed)) agreed = version;
    const auto own = result->find("capabilities");
    const mcp::Json offered = own != result->end() && own->is_object() ? *own : mcp::Json::object();
    sessions[upstream] = MemberSession{answer.session, version, capability_letters(offered)};
    for (const auto* kind : {"tools", "prompts", "resources"}) {
      const auto item = offered.find(kind);
      if (item == offered.end()) continue;
      mcp::Json& merged = capabilities[kind];
      if (!merged.is_object()) merged = mcp::Json::object();
      if (item->is_object()) {
        for (const auto* flag : {"listChanged", "subscribe"}) {
          if (item->value(flag, false)) merged[flag] = true;
        }
      }
    }
    for (const auto* kind : {"logging", "completions"}) {
      if (offered.contains(kind)) capabilities[kind] = mcp::Json::object();
    }
    if (const auto text = result->find("instructions");
        text != result->end() && text->is_string()) {
      if (!instructions.empty()) instructions += "\n\n";
      instructions += "## " + upstream + "\n" + text->get<std::string>();
    }
  }
  if (sessions.empty()) {
    co_return UpstreamReply::failure("virtual server '" + name() +
                                     "': no upstream answered initialize (" + problems + ")");
  }
  mcp::Json result = {{"protocolVersion", agreed.empty() ? requested : agreed},
                      {"capabilities", std::move(capabilities)},
                      {"serverInfo", {{"name", name()}, {"version", "membrane"}}}};
  if (!instructions.empty()) result["instructions"] = std::move(instructions);
  UpstreamReply reply = result_reply(message.id(), std::move(result));
  reply.upstream_session = pack_sessions(sessions);
  co_return reply;
}

awaitable<UpstreamReply> VirtualServer::merged_list(const mcp::Message& message,
                                                    std::string_view raw,
                                                    const mcp::SessionClaims& session,
                                                    const MemberSessions& sessions,
                                                    const upstream::ForwardContext& context) {
  const std::string_view method = message.method();
  const bool tools = method == "tools/list";
  const bool prompts = method == "prompts/list";
  const bool templates = method == "resources/templates/list";
  const char* key = tools       ? "tools"
                    : prompts   ? "prompts"
                    : templates ? "resourceTemplates"
                                : "resources";
  const char capability = tools ? 't' : prompts ? 'p' : 'r';
  // The client's own request, with its _meta (trace context, progress token), goes to each member
  // with that member's cursor.
  auto base = json::parse(raw);
  if (!base.ok() || !base.value.is_object()) base.value = message.body();
  mcp::Json& params = base.value["params"];
  if (!params.is_object()) params = mcp::Json::object();
  std::optional<std::map<std::string, std::string>> cursors;
  if (const auto cursor = params.find("cursor"); cursor != params.end()) {
    if (cursor->is_string())
      cursors = catalog_->decode_cursor(cursor->get_ref<const std::string&>());
    if (!cursors)
      co_return error_reply(message.id(), mcp::error_code::invalid_params,
                            "Invalid params: the cursor was not given by this server");
  }
  std::vector<std::size_t> asked;
  std::vector<mcp::Json> requests;
  for (std::size_t member = 0; member < members_.size(); ++member) {
    const std::string& upstream = members_[member]->name();
    const auto own = sessions.find(upstream);
    if (own == sessions.end() || !own->second.has(capability)) continue;
    mcp::Json request = base.value;
    if (cursors) {
      const auto next = cursors->find(upstream);
      if (next == cursors->end()) continue;  // this member's list was already given in full
      request["params"]["cursor"] = next->second;
    } else {
      request["params"].erase("cursor");
    }
    asked.push_back(member);
    requests.push_back(std::move(request));
  }
  mcp::Json merged = mcp::Json::array();
  std::map<std::string, std::string> next_cursors;
  std::string problems;
  std::size_t answered = 0;
  if (!asked.empty()) {
    auto answers = co_await ask_each(asked, std::move(requests), &session, sessions, context);
    for (std::size_t index = 0; index < asked.size(); ++index) {
      const std::size_t member = asked[index];
      const std::string& upstream = members_[member]->name();
      auto& answer = answers[index];
      const auto result = answer.answered ? answer.response.find("result") : answer.response.end();
      if (result == answer.response.end() || !result->is_object()) {
        const std::string why = answer.answered ? "answered with an error" : answer.problem;
        log::warn("virtual server '", name(), "': ", method, " leaves out upstream '", upstream,
                  "': ", why);
        problems += (problems.empty() ? "" : "; ") + ("upstream '" + upstream + "' " + why);
        continue;
      }
      ++answered;
      if (const auto items = result->find(key); items != result->end() && items->is_array()) {
        for (auto& item : *items) {
          if (tools || prompts) {
            if (catalog_->publish(tools ? ItemKind::tool : ItemKind::prompt, member, item))
              merged.push_back(std::move(item));
            continue;
          }
          const auto uri = item.find(templates ? "uriTemplate" : "uri");
          if (uri == item.end() || !uri->is_string()) continue;
          const std::string& text = uri->get_ref<const std::string&>();
          if (!catalog_->publishes_resource(member, text)) continue;
          if (!templates) learn_resource(text, member);
          merged.push_back(std::move(item));
        }
      }
      if (const auto cursor = result->find("nextCursor");
          cursor != result->end() && cursor->is_string() &&
          !cursor->get_ref<const std::string&>().empty())
        next_cursors[upstream] = cursor->get<std::string>();
    }
    if (answered == 0) {
      co_return error_reply(message.id(), mcp::error_code::upstream_unavailable,
                            "virtual server '" + name() + "': " + std::string(method) +
                                " failed on every upstream (" + problems + ")");
    }
  }
  mcp::Json result = {{key, std::move(merged)}};
  if (!next_cursors.empty()) result["nextCursor"] = VirtualCatalog::encode_cursor(next_cursors);
  co_return result_reply(message.id(), std::move(result));
}

awaitable<UpstreamReply> VirtualServer::set_log_level(const mcp::Message& message,
                                                      std::string_view raw,
                                                      const mcp::SessionClaims& session,
                                                      const MemberSessions& sessions,
                                                      const upstream::ForwardContext& context) {
  auto request = json::parse(raw);
  if (!request.ok()) request.value = message.body();
  std::vector<std::size_t> asked;
  std::vector<mcp::Json> requests;
  for (std::size_t member = 0; member < members_.size(); ++member) {
    const auto own = sessions.find(members_[member]->name());
    if (own == sessions.end() || !own->second.has('l')) continue;
    asked.push_back(member);
    requests.push_back(request.value);
  }
  if (!asked.empty()) co_await ask_each(asked, std::move(requests), &session, sessions, context);
  co_return result_reply(message.id(), mcp::Json::object());
}

awaitable<UpstreamReply> VirtualServer::answer_member(const mcp::Message& message,
                                                      std::string_view raw,
                                                      const mcp::SessionClaims& session,
                                                      const MemberSessions& sessions,
                                                      const upstream::ForwardContext& context) {
  const auto tagged = VirtualCatalog::untag_request_id(message.id());
  const auto member = tagged ? catalog_->member_index(tagged->upstream) : std::nullopt;
  const auto own = member ? sessions.find(tagged->upstream) : sessions.end();
  if (!member || own == sessions.end()) {
    UpstreamReply refused =
        error_reply(message.id(), mcp::error_code::invalid_request,
                    "Invalid request: no request of virtual server '" + name() + "' has this id");
    refused.kind = Kind::rejected;
    refused.http_status = 400;
    co_return refused;
  }
  auto body = json::parse(raw);
  if (!body.ok() || !body.value.is_object()) body.value = message.body();
  body.value["id"] = tagged->id;
  std::string text = body.value.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  const mcp::Message answer(mcp::MessageKind::response, body.value);
  const auto claims = member_claims(session, *member, own->second);
  const auto forwarded = member_context(context, &own->second);
  co_return co_await members_[*member]->send(answer, std::move(text), &claims, forwarded);
}

awaitable<UpstreamReply> VirtualServer::forward_routed(const upstream::MemberTarget& target,
                                                       const mcp::Message& message, std::string raw,
                                                       const mcp::SessionClaims& session,
                                                       const MemberSessions& sessions,
                                                       const upstream::ForwardContext& context) {
  const auto member = catalog_->member_index(target.upstream);
  const auto own = sessions.find(target.upstream);
  if (!member) co_return UpstreamReply::failure("no upstream '" + target.upstream + "'");
  if (own == sessions.end()) {
    co_return error_reply(message.id(), mcp::error_code::upstream_unavailable,
                          "upstream '" + target.upstream + "' of virtual server '" + name() +
                              "' is unavailable: it did not answer when this session began; "
                              "start a new session to try it again");
  }
  const std::string_view method = message.method();
  const bool renamed = (method == "tools/call" || method == "prompts/get")
                           ? message.target_name() != target.name
                           : method == "completion/complete";
  std::optional<mcp::Message> rewritten;
  if (renamed) {
    auto body = json::parse(raw);
    if (!body.ok() || !body.value.is_object()) body.value = message.body();
    mcp::Json& params = body.value["params"];
    if (method == "completion/complete") {
      mcp::Json& ref = params["ref"];
      if (ref.is_object() && ref.value("type", std::string()) == "ref/prompt")
        ref["name"] = target.name;
    } else {
      params["name"] = target.name;
    }
    raw = body.value.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
    rewritten.emplace(mcp::MessageKind::request, std::move(body.value));
  }
  const auto claims = member_claims(session, *member, own->second);
  const auto forwarded = member_context(context, &own->second);
  const mcp::Message& sent = rewritten ? *rewritten : message;
  UpstreamReply reply = co_await members_[*member]->send(sent, std::move(raw), &claims, forwarded);
  if (reply.kind == Kind::stream)
    reply.stream = std::make_unique<TaggedStream>(target.upstream, std::move(reply.stream));
  if (reply.kind == Kind::unavailable)
    reply.body =
        "upstream '" + target.upstream + "' of virtual server '" + name() + "': " + reply.body;
  co_return reply;
}

awaitable<UpstreamReply> VirtualServer::send(const mcp::Message& message, std::string raw,
                                             const mcp::SessionClaims* session,
                                             const upstream::ForwardContext& context) {
  if (message.is_initialize()) co_return co_await initialize(message, context);
  if (!session) {
    UpstreamReply refused = error_reply(
        message.id(), mcp::error_code::invalid_request,
        "Invalid request: virtual server '" + name() + "' serves messages within a session");
    refused.kind = Kind::rejected;
    refused.http_status = 400;
    co_return refused;
  }
  const auto sessions = unpack_sessions(session->upstream_session);
  if (!sessions) {
    UpstreamReply forgotten;
    forgotten.kind = Kind::session_not_found;
    co_return forgotten;
  }
  if (message.is_response())
    co_return co_await answer_member(message, raw, *session, *sessions, context);
  if (message.is_notification())
    co_return co_await tell_each(message, std::move(raw), *session, *sessions, context);

  const std::string_view method = message.method();
  if (method == "ping") co_return result_reply(message.id(), mcp::Json::object());
  if (is_list_method(method))
    co_return co_await merged_list(message, raw, *session, *sessions, context);
  if (method == "logging/setLevel")
    co_return co_await set_log_level(message, raw, *session, *sessions, context);
  const auto target = context.member ? context.member : route(message);
  if (target)
    co_return co_await forward_routed(*target, message, std::move(raw), *session, *sessions,
                                      context);
  if (method == "tools/call")
    co_return error_reply(message.id(), mcp::error_code::invalid_params,
                          "Unknown tool: " + std::string(message.target_name()));
  if (method == "prompts/get")
    co_return error_reply(message.id(), mcp::error_code::invalid_params,
                          "Unknown prompt: " + std::string(message.target_name()));
  if (method.starts_with("resources/") || method == "completion/complete")
    co_return error_reply(message.id(), mcp::error_code::invalid_params,
                          "Invalid params: no upstream of virtual server '" + name() +
                              "' publishes this resource or prompt");
  co_return error_reply(
      message.id(), mcp::error_code::method_not_found,
      "Method not found: virtual server '" + name() + "' does not relay " + std::string(method));
}

awaitable<UpstreamReply> VirtualServer::listen(const mcp::SessionClaims& session,
                                               const upstream::ForwardContext& context) {
  const auto sessions = unpack_sessions(session.upstream_session);
  if (!sessions) {
    UpstreamReply forgotten;
    forgotten.kind = Kind::session_not_found;
    co_return forgotten;
  }
  std::vector<std::pair<std::string, std::unique_ptr<upstream::ReplyStream>>> streams;
  UpstreamReply first_refusal;
  // Sequential: opening a listen stream is one round trip per member, and a member that does not
  // offer one (405) is simply not part of the merged stream.
  for (std::size_t member = 0; member < members_.size(); ++member) {
    const auto own = sessions->find(members_[member]->name());
    if (own == sessions->end()) continue;
    const auto claims = member_claims(session, member, own->second);
    const auto forwarded = member_context(context, &own->second);
    UpstreamReply reply = co_await members_[member]->listen(claims, forwarded);
    if (reply.kind == Kind::stream) {
      streams.emplace_back(members_[member]->name(), std::move(reply.stream));
    } else {
      log::debug("virtual server '", name(), "': upstream '", members_[member]->name(),
                 "' offers no listen stream: ", describe_failure(reply));
      if (first_refusal.kind == Kind::unavailable && first_refusal.body.empty())
        first_refusal = std::move(reply);
    }
  }
  if (streams.empty()) co_return first_refusal;
  UpstreamReply reply;
  reply.kind = Kind::stream;
  reply.http_status = 200;
  reply.content_type = "text/event-stream";
  reply.stream = co_await MergedStream::start(std::move(streams));
  co_return reply;
}

awaitable<UpstreamReply> VirtualServer::end_session(const mcp::SessionClaims& session,
                                                    const upstream::ForwardContext& context) {
  if (const auto sessions = unpack_sessions(session.upstream_session)) {
    for (std::size_t member = 0; member < members_.size(); ++member) {
      const auto own = sessions->find(members_[member]->name());
      if (own == sessions->end()) continue;
      const auto claims = member_claims(session, member, own->second);
      const auto forwarded = member_context(context, &own->second);
      const auto ended = co_await members_[member]->end_session(claims, forwarded);
      if (ended.kind == Kind::unavailable)
        log::debug("virtual server '", name(), "': ending the session of upstream '",
                   members_[member]->name(), "': ", ended.body);
    }
  }
  UpstreamReply reply;
  reply.kind = Kind::accepted;
  reply.http_status = 200;
  co_return reply;
}

}  // namespace

std::unique_ptr<upstream::Upstream> make_virtual_server(
    std::shared_ptr<const VirtualCatalog> catalog, std::vector<upstream::Upstream*> members,
    VirtualServerOptions options) {
  return std::make_unique<VirtualServer>(std::move(catalog), std::move(members), options);
}

}  // namespace membrane::gateway
