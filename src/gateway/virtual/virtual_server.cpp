#include "gateway/virtual/virtual_server.hpp"

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include <deque>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "gateway/bridging.hpp"
#include "gateway/result_cache.hpp"
#include "gateway/virtual/tool_search.hpp"
#include "membrane/core/ascii.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/mcp/listen.hpp"
#include "membrane/mcp/meta_splice.hpp"
#include "membrane/mcp/protocol.hpp"
#include "membrane/mcp/revisions.hpp"

namespace membrane::gateway {

namespace {

using namespace asio::experimental::awaitable_operators;
using upstream::ReadStatus;
using upstream::StreamRead;
using upstream::UpstreamReply;
using Kind = UpstreamReply::Kind;

// A member of a JSON object that a peer wrote: "" (or false) when the object is not one, or the
// member is absent or of another type. What peers send is never trusted to have the right types.
std::string text_member(const mcp::Json& object, const char* key) {
  return std::string(json::string_member(object, key));
}
bool flag_member(const mcp::Json& object, const char* key) {
  if (!object.is_object()) return false;
  const auto found = object.find(key);
  return found != object.end() && found->is_boolean() && found->get<bool>();
}

// ---- The members' sessions, sealed into the client's session id ------------------------------

// What one member said at initialize: its session, the revision it agreed to, and which
// capabilities it has (so that listings skip the members that have nothing to list). Views into
// the packed text, which every call unpacks: a line per member, its fields separated by tabs.
// The text is sealed with the session id, so it is the gateway's own; a member whose session id
// holds a tab or a line break is left out of the session when it is packed.
struct MemberSession {
  std::string_view session;
  std::string_view protocol;
  std::string_view capabilities;  // one letter each: t tools, p prompts, r resources,
                                  // l logging, c completions
  bool has(char capability) const { return capabilities.find(capability) != std::string::npos; }
};

class MemberSessions {
 public:
  using Entry = std::pair<std::string_view, MemberSession>;  // upstream, its session
  using const_iterator = std::vector<Entry>::const_iterator;

  // nullopt when the text is not one pack_session() lines wrote.
  static std::optional<MemberSessions> unpack(std::string_view packed) {
    MemberSessions sessions;
    while (!packed.empty()) {
      const std::size_t end = packed.find('\n');
      if (end == std::string_view::npos) return std::nullopt;
      std::string_view line = packed.substr(0, end);
      packed.remove_prefix(end + 1);
      std::string_view fields[4];
      for (std::size_t index = 0; index < 4; ++index) {
        const std::size_t tab = line.find('\t');
        if ((tab == std::string_view::npos) != (index == 3)) return std::nullopt;
        fields[index] = line.substr(0, tab);
        line = tab == std::string_view::npos ? std::string_view() : line.substr(tab + 1);
      }
      sessions.entries_.emplace_back(fields[0], MemberSession{fields[1], fields[2], fields[3]});
    }
    return sessions;
  }
  const_iterator find(std::string_view upstream) const {
    return std::find_if(entries_.begin(), entries_.end(),
                        [upstream](const Entry& entry) { return entry.first == upstream; });
  }
  const_iterator end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
};

// Appends one member's line; false (nothing appended) when a field would break the format.
bool pack_session(std::string& packed, std::string_view upstream, std::string_view session,
                  std::string_view protocol, std::string_view capabilities) {
  for (const auto field : {upstream, session, protocol, capabilities}) {
    if (field.find_first_of("\t\n") != std::string_view::npos) return false;
  }
  for (const auto field : {upstream, session, protocol}) {
    packed.append(field);
    packed.push_back('\t');
  }
  packed.append(capabilities);
  packed.push_back('\n');
  return true;
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
 public:
  // Told of each member's change notification as it passes (upstream, method).
  using ChangeSeen = std::function<void(std::string_view, std::string_view)>;

 private:
  using Channel = asio::experimental::channel<void(error_code, StreamRead)>;
  struct State {
    explicit State(asio::any_io_executor executor) : channel(executor, 64) {}
    Channel channel;
    std::vector<std::shared_ptr<upstream::ReplyStream>> streams;
    ChangeSeen change_seen;
  };

 public:
  static awaitable<std::unique_ptr<upstream::ReplyStream>> start(
      std::vector<std::pair<std::string, std::unique_ptr<upstream::ReplyStream>>> members,
      ChangeSeen change_seen) {
    auto executor = co_await asio::this_coro::executor;
    auto state = std::make_shared<State>(executor);
    state->change_seen = std::move(change_seen);
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
        if (state->change_seen && read.event.data.find("list_changed") != std::string::npos) {
          const auto parsed = json::parse(read.event.data);
          if (parsed.ok() && parsed.value.is_object())
            state->change_seen(upstream, text_member(parsed.value, "method"));
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

// Messages the virtual server sends on a call's stream itself.
class BufferedStream final : public upstream::ReplyStream {
 public:
  explicit BufferedStream(std::vector<std::string> messages) : messages_(std::move(messages)) {}
  awaitable<StreamRead> next() override {
    StreamRead read;
    if (next_ >= messages_.size()) co_return read;
    read.status = ReadStatus::message;
    read.event.data = std::move(messages_[next_++]);
    co_return read;
  }
  void abort() override { next_ = messages_.size(); }

 private:
  std::vector<std::string> messages_;
  std::size_t next_ = 0;
};

// Bounds of a search's walk through the members' listings.
constexpr std::size_t kMaxSearchPages = 10;     // per member
constexpr std::size_t kMaxSearchTools = 5'000;  // in all
constexpr std::size_t kDefaultSearchLimit = 8;
constexpr std::size_t kMaxSearchLimit = 25;
constexpr std::size_t kMaxFoundPerSession = 256;

mcp::Json search_tool_definition() {
  return {
      {"name", kSearchToolName},
      {"title", "Search tools"},
      {"description",
       "Finds the tools of this server that fit a task. Say what you want to do in a few words; "
       "the best matches are added to your tool list, to call by name once it has refreshed."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"query", {{"type", "string"}, {"description", "What you want to do, in a few words"}}},
          {"limit",
           {{"type", "integer"},
            {"minimum", 1},
            {"maximum", kMaxSearchLimit},
            {"description", "At most this many tools (default 8)"}}}}},
        {"required", {"query"}}}},
      {"annotations", {{"readOnlyHint", true}, {"openWorldHint", false}}}};
}

// ---- Members that speak only 2026-07-28 --------------------------------------------------------

// `request` as a 2026-07-28 member takes it: the client's envelope in params._meta, and the
// context's revision and Mcp-Method / Mcp-Name headers.
void make_stateless(mcp::Json& request, const mcp::SessionClaims* claims,
                    upstream::ForwardContext& context) {
  static const mcp::Json no_capabilities = mcp::Json::object();
  mcp::add_envelope(request,
                    mcp::stateless_envelope(mcp::stateless_protocol_version,
                                            claims ? claims->client_capabilities : no_capabilities,
                                            claims ? client_info_of(*claims) : mcp::Json()));
  const mcp::Message message(mcp::MessageKind::request, request);
  add_stateless_headers(context, message, nullptr);
}

// What a 2026-07-28 member asks with `input_required`, asked of the client as requests on the
// call's stream. The client answers in a POST of its own, which may reach another worker: each
// question waits on a channel its answer is handed to.
class PendingQuestions {
 public:
  using Channel = asio::experimental::concurrent_channel<void(error_code, mcp::Json)>;
  struct Waiter {
    explicit Waiter(const asio::any_io_executor& executor) : channel(executor, 1) {}
    Channel channel;
  };

  std::shared_ptr<Waiter> open(const std::string& id, const asio::any_io_executor& executor) {
    auto waiter = std::make_shared<Waiter>(executor);
    std::lock_guard lock(mutex_);
    waiting_[id] = waiter;
    return waiter;
  }
  // False when nobody waits for `id` (any more).
  bool deliver(const std::string& id, mcp::Json response) {
    std::shared_ptr<Waiter> waiter;
    {
      std::lock_guard lock(mutex_);
      const auto found = waiting_.find(id);
      if (found == waiting_.end()) return false;
      waiter = std::move(found->second);
      waiting_.erase(found);
    }
    return waiter->channel.try_send(error_code(), std::move(response));
  }
  void close(const std::string& id) {
    std::lock_guard lock(mutex_);
    waiting_.erase(id);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Waiter>> waiting_;
};

// A 2026-07-28 member's `subscriptions/listen` stream as part of a session's stream: its change
// notifications without the subscription's stamp; its acknowledgement and its closing answer are
// the listen's own business.
class ListenStream final : public upstream::ReplyStream {
 public:
  explicit ListenStream(std::unique_ptr<upstream::ReplyStream> inner) : inner_(std::move(inner)) {}

  awaitable<StreamRead> next() override {
    for (;;) {
      StreamRead read = co_await inner_->next();
      if (read.status != ReadStatus::message) co_return read;
      auto parsed = json::parse(read.event.data);
      if (!parsed.ok() || !parsed.value.is_object()) continue;
      mcp::Json& message = parsed.value;
      if (!message.contains("method")) co_return StreamRead{};  // the listen's closing answer
      const auto method = text_member(message, "method");
      if (!mcp::is_change_notification(method)) continue;  // the acknowledgement, or stray
      mcp::untag_subscription(message);
      read.event.id.clear();
      read.event.has_id = false;
      read.event.data = message.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
      co_return read;
    }
  }
  void abort() override { inner_->abort(); }

 private:
  std::unique_ptr<upstream::ReplyStream> inner_;
};

// How long a member's question waits for the client's answer (a human may be answering it).
constexpr std::chrono::minutes kQuestionTimeout{5};

// A call to a 2026-07-28 member, as the session client sees it: the member's messages as they
// come; its `input_required` questions as requests to the client, whose answers are sent back
// with the request (inputResponses, requestState) for the next round; then the final answer.
class StatelessCallStream final : public upstream::ReplyStream {
 public:
  StatelessCallStream(upstream::Upstream& member, PendingQuestions& questions, mcp::Json request,
                      upstream::ForwardContext context)
      : member_(member),
        questions_(questions),
        request_(std::move(request)),
        context_(std::move(context)),
        id_(request_["id"]) {}
  ~StatelessCallStream() override { forget_questions(); }

  awaitable<StreamRead> next() override {
    if (!executor_) executor_ = co_await asio::this_coro::executor;
    for (;;) {
      if (!outgoing_.empty()) {
        StreamRead read;
        read.status = ReadStatus::message;
        read.event.data = std::move(outgoing_.front());
        outgoing_.pop_front();
        co_return read;
      }
      if (done_ || aborted_) co_return StreamRead{};
      if (!asked_.empty()) {
        co_await collect_answers();
        continue;
      }
      if (!stream_) {
        co_await send_round();
        continue;
      }
      StreamRead read = co_await stream_->next();
      if (read.status == ReadStatus::message) {
        if (is_final(read.event.data)) {
          stream_.reset();
          settle(std::move(read.event.data));
          continue;
        }
        tag_for_client(member_.name(), read.event);
        co_return read;
      }
      stream_.reset();
      fail(read.status == ReadStatus::failed
               ? read.error
               : "upstream '" + member_.name() + "' closed the stream without answering");
    }
  }

  void abort() override {
    aborted_ = true;
    if (stream_) stream_->abort();
    for (const auto& question : asked_)
      question.waiter->channel.close();
  }

 private:
  struct Asked {
    std::string key;  // the inputRequests key
    std::string id;   // the tagged id the client answers
    std::string method;
    std::shared_ptr<PendingQuestions::Waiter> waiter;
  };

  bool is_final(std::string_view text) const {
    if (text.find("\"method\"") != std::string_view::npos &&
        text.find("\"result\"") == std::string_view::npos &&
        text.find("\"error\"") == std::string_view::npos)
      return false;
    const auto parsed = json::parse(text);
    if (!parsed.ok() || !parsed.value.is_object() || parsed.value.contains("method")) return false;
    const auto id = parsed.value.find("id");
    return id != parsed.value.end() && *id == id_;
  }

  awaitable<void> send_round() {
    const mcp::Message message(mcp::MessageKind::request, request_);
    std::string raw = request_.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
    UpstreamReply reply = co_await member_.send(message, std::move(raw), nullptr, context_);
    if (reply.kind == Kind::stream) {
      stream_ = std::move(reply.stream);
    } else if (reply.kind == Kind::message) {
      settle(std::move(reply.body));
    } else if (auto answer = json_rpc_answer(reply, id_)) {
      settle(std::move(*answer));
    } else {
      fail("upstream '" + member_.name() + "' " + describe_failure(reply));
    }
  }

  // The member's answer to this round: the call's final answer, or questions for the client.
  void settle(std::string text) {
    auto response = json::parse(text);
    const mcp::Json* result =
        response.ok() && response.value.is_object() && response.value.contains("result")
            ? &response.value["result"]
            : nullptr;
    if (!result || !mcp::is_input_required(*result)) {
      outgoing_.push_back(std::move(text));
      done_ = true;
      return;
    }
    if (++rounds_ > max_input_rounds) {
      fail("upstream '" + member_.name() + "' kept asking for input after " +
           std::to_string(max_input_rounds) + " rounds");
      return;
    }
    auto& params = request_["params"];
    if (const auto state = result->find("requestState"); state != result->end()) {
      params["requestState"] = *state;
    } else {
      params.erase("requestState");
    }
    const auto requests = result->find("inputRequests");
    if (requests == result->end() || !requests->is_object() || requests->empty()) {
      fail("upstream '" + member_.name() + "' asked for input without saying what");
      return;
    }
    for (const auto& [key, input] : requests->items()) {
      if (!input.is_object()) {
        fail("upstream '" + member_.name() + "' asked for input in a form it cannot have");
        return;
      }
      const std::string method = text_member(input, "method");
      if (!mcp::is_input_request_method(method)) {
        fail("upstream '" + member_.name() +
             "' asked the client something it cannot ask: " + method);
        return;
      }
      const mcp::Json tagged = VirtualCatalog::tag_request_id(
          member_.name(), mcp::base64url_encode(mcp::random_bytes(12)));
      Asked asked{key, tagged.get<std::string>(), method, nullptr};
      asked.waiter = questions_.open(asked.id, *executor_);
      const mcp::Json question = {{"jsonrpc", "2.0"},
                                  {"id", tagged},
                                  {"method", method},
                                  {"params", input.value("params", mcp::Json::object())}};
      outgoing_.push_back(question.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
      asked_.push_back(std::move(asked));
    }
  }

  awaitable<void> collect_answers() {
    mcp::Json answers = mcp::Json::object();
    // asked_ stays filled while the answers are awaited: abort() closes their channels.
    const auto forget = [this] {
      forget_questions();
      asked_.clear();
    };
    for (const auto& question : asked_) {
      asio::steady_timer deadline(co_await asio::this_coro::executor, kQuestionTimeout);
      auto outcome = co_await (question.waiter->channel.async_receive(use_nothrow) ||
                               deadline.async_wait(use_nothrow));
      if (outcome.index() == 1) {
        fail("the client did not answer " + question.method + " in time");
        forget();
        co_return;
      }
      auto [ec, response] = std::move(std::get<0>(outcome));
      if (ec) {
        done_ = true;  // aborted
        forget();
        co_return;
      }
      const auto result = response.find("result");
      if (result == response.end()) {
        std::string why = "the client could not answer " + question.method;
        if (const auto error = response.find("error");
            error != response.end() && error->is_object())
          why += ": " + text_member(*error, "message");
        fail(why);
        forget();
        co_return;
      }
      answers[question.key] = *result;
    }
    forget();
    request_["params"]["inputResponses"] = std::move(answers);
  }

  void fail(const std::string& why) {
    outgoing_.push_back(mcp::make_error_response(id_, mcp::error_code::upstream_unavailable, why));
    done_ = true;
  }

  void forget_questions() {
    for (const auto& question : asked_)
      questions_.close(question.id);
  }

  upstream::Upstream& member_;
  PendingQuestions& questions_;
  mcp::Json request_;
  upstream::ForwardContext context_;
  mcp::Json id_;
  std::optional<asio::any_io_executor> executor_;
  std::unique_ptr<upstream::ReplyStream> stream_;
  std::deque<std::string> outgoing_;
  std::vector<Asked> asked_;
  int rounds_ = 0;
  bool done_ = false;
  bool aborted_ = false;
};

// Runs every task at once on this worker and waits for them all, in the tasks' order; a task that
// throws gives `failed(what)` instead.
template <typename T, typename Failed>
awaitable<std::vector<T>> all_of(std::vector<awaitable<T>> tasks, Failed failed) {
  std::vector<T> results;
  if (tasks.size() == 1) {
    try {
      results.push_back(co_await std::move(tasks[0]));
    } catch (const std::exception& error) {
      results.push_back(failed(error.what()));
    }
    co_return results;
  }
  auto executor = co_await asio::this_coro::executor;
  using Operation =
      decltype(asio::co_spawn(executor, std::declval<awaitable<T>>(), asio::deferred));
  std::vector<Operation> operations;
  operations.reserve(tasks.size());
  for (auto& task : tasks)
    operations.push_back(asio::co_spawn(executor, std::move(task), asio::deferred));
  auto group = asio::experimental::make_parallel_group(std::move(operations));
  auto [order, failures, done] =
      co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  results = std::move(done);
  for (std::size_t index = 0; index < results.size(); ++index) {
    if (!failures[index]) continue;
    try {
      std::rethrow_exception(failures[index]);
    } catch (const std::exception& error) {
      results[index] = failed(error.what());
    }
  }
  co_return results;
}

// A stdio member's part of initialize may take longer than of a listing: it is a process that
// starts first.
constexpr std::chrono::milliseconds kInitializeTimeout{30'000};

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
      // A 2026-07-28 member needs the client's initialize too: every request carries its
      // clientInfo.
      traits_.needs_initialize_replay |=
          member->traits().needs_initialize_replay ||
          member->declared_protocol() == mcp::stateless_protocol_version;
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

  // A member declared `protocol: 2026-07-28`: no session; each request carries the client.
  bool speaks_stateless(std::size_t member) const {
    return members_[member]->declared_protocol() == mcp::stateless_protocol_version;
  }

 private:
  // MemberRouting
  const std::string& published_name() const override { return catalog_->name(); }
  std::optional<upstream::MemberTarget> route(const mcp::Message& message) const override;
  std::optional<upstream::MemberTarget> tool_owner(std::string_view published) const override {
    // The search tool is the virtual server's own, judged as its.
    if (options_.search_discovery && published == kSearchToolName)
      return upstream::MemberTarget{name(), std::string(kSearchToolName)};
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
    forwarded.protocol_version.clear();
    if (own) forwarded.protocol_version = own->protocol;
    forwarded.headers.clear();
    forwarded.last_event_id.clear();
    forwarded.member.reset();
    return forwarded;
  }

  // One request to one member, its answer collected from whatever form the reply takes, within
  // the member timeout.
  awaitable<MemberAnswer> ask(std::size_t member, mcp::Json request,
                              std::optional<mcp::SessionClaims> claims,
                              upstream::ForwardContext context, std::chrono::milliseconds timeout);
  // The same request (one per member) to several members at once.
  awaitable<std::vector<MemberAnswer>> ask_each(const std::vector<std::size_t>& members,
                                                std::vector<mcp::Json> requests,
                                                const mcp::SessionClaims* session,
                                                const MemberSessions& sessions,
                                                const upstream::ForwardContext& context);
  awaitable<UpstreamReply> tell_each(std::string raw, const mcp::SessionClaims& session,
                                     const MemberSessions& sessions,
                                     const upstream::ForwardContext& context);
  awaitable<bool> notify(std::size_t member, std::string raw, mcp::SessionClaims claims,
                         upstream::ForwardContext context);
  awaitable<UpstreamReply> listen_to(std::size_t member, mcp::SessionClaims claims,
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
  // Progressive discovery (options_.search_discovery).
  awaitable<std::vector<mcp::Json>> every_tool(const mcp::Message& message,
                                               const mcp::SessionClaims& session,
                                               const MemberSessions& sessions,
                                               const upstream::ForwardContext& context);
  awaitable<UpstreamReply> searched_list(const mcp::Message& message,
                                         const mcp::SessionClaims& session,
                                         const MemberSessions& sessions,
                                         const upstream::ForwardContext& context);
  awaitable<UpstreamReply> search(const mcp::Message& message, const mcp::SessionClaims& session,
                                  const MemberSessions& sessions,
                                  const upstream::ForwardContext& context);
  void remember_found(const std::string& session, const std::vector<std::string>& names);
  std::vector<std::string> found_in(const std::string& session) const;
  bool is_search_call(const mcp::Message& message) const {
    return options_.search_discovery && message.is_request() && message.method() == "tools/call" &&
           message.target_name() == kSearchToolName;
  }

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
  PendingQuestions questions_;
  // 2026-07-28 members' cacheable results (SEP-2549), by member; a member's list change drops its
  // lists.
  ResultCache cached_results_;
  // Tools that searches found, by session (the members' sessions, which name it), oldest first.
  mutable std::mutex found_mutex_;
  std::unordered_map<std::string, std::vector<std::string>> found_;
  std::deque<std::string> found_order_;
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
  if (is_search_call(message)) return std::nullopt;  // the virtual server's own tool
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
    const auto type = text_member(*ref, "type");
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
                                           upstream::ForwardContext context,
                                           std::chrono::milliseconds timeout) {
  MemberAnswer answer;
  auto& upstream = *members_[member];
  const auto until = std::chrono::steady_clock::now() + timeout;
  asio::steady_timer deadline(co_await asio::this_coro::executor, until);
  const mcp::Message message(mcp::MessageKind::request, request);
  std::string raw = request.dump(-1, ' ', false, mcp::Json::error_handler_t::replace);
  const mcp::SessionClaims* session = claims ? &*claims : nullptr;
  auto sent = co_await (upstream.send(message, std::move(raw), session, context) ||
                        deadline.async_wait(use_nothrow));
  if (sent.index() == 1) {
    answer.problem = "did not answer within " + std::to_string(timeout.count()) + " ms";
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
    answer.problem = read.status == ReadStatus::failed ? read.error
                     : std::chrono::steady_clock::now() >= until
                         ? "did not answer within " + std::to_string(timeout.count()) + " ms"
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
  std::vector<MemberAnswer> answers(members.size());
  // SEP-2549: what a 2026-07-28 member marked cacheable is kept per member, as long as it says.
  std::vector<std::string> cache_keys(members.size());
  const std::string subject = session ? session->subject : std::string();
  std::vector<std::size_t> asked;
  std::vector<awaitable<MemberAnswer>> tasks;
  tasks.reserve(members.size());
  for (std::size_t index = 0; index < members.size(); ++index) {
    const std::size_t member = members[index];
    if (speaks_stateless(member)) {
      cache_keys[index] = ResultCache::request_key(
          members_[member]->name(), mcp::Message(mcp::MessageKind::request, requests[index]));
      if (auto cached = cached_results_.find(cache_keys[index], subject)) {
        answers[index].answered = true;
        answers[index].response = {
            {"jsonrpc", "2.0"}, {"id", requests[index]["id"]}, {"result", std::move(*cached)}};
        continue;
      }
    }
    const auto own = sessions.find(members_[member]->name());
    const MemberSession* known = own == sessions.end() ? nullptr : &own->second;
    std::optional<mcp::SessionClaims> claims;
    auto forwarded = member_context(context, known);
    if (speaks_stateless(member)) {
      make_stateless(requests[index], session, forwarded);
    } else if (session && known) {
      claims = member_claims(*session, member, *known);
    }
    asked.push_back(index);
    tasks.push_back(ask(member, std::move(requests[index]), std::move(claims), std::move(forwarded),
                        options_.member_timeout));
  }
  if (tasks.empty()) co_return answers;
  const auto failed = [](const char* what) {
    MemberAnswer answer;
    answer.problem = std::string("failed: ") + what;
    return answer;
  };
  auto fresh = co_await all_of(std::move(tasks), failed);
  for (std::size_t i = 0; i < asked.size(); ++i) {
    const std::size_t index = asked[i];
    answers[index] = std::move(fresh[i]);
    if (cache_keys[index].empty() || !answers[index].answered) continue;
    if (const auto result = answers[index].response.find("result");
        result != answers[index].response.end())
      cached_results_.store(cache_keys[index], subject, *result);
  }
  co_return answers;
}

awaitable<bool> VirtualServer::notify(std::size_t member, std::string raw,
                                      mcp::SessionClaims claims, upstream::ForwardContext context) {
  auto parsed = mcp::parse_message(raw);
  if (!parsed.message) co_return false;
  const auto until = std::chrono::steady_clock::now() + options_.member_timeout;
  asio::steady_timer deadline(co_await asio::this_coro::executor, until);
  auto sent = co_await (members_[member]->send(*parsed.message, std::move(raw), &claims, context) ||
                        deadline.async_wait(use_nothrow));
  if (sent.index() == 0) {
    const auto& reply = std::get<0>(sent);
    if (reply.kind != Kind::accepted && reply.kind != Kind::message && reply.kind != Kind::stream)
      log::debug("virtual server '", name(), "': upstream '", members_[member]->name(),
                 "' refused a notification: ", describe_failure(reply));
    co_return true;
  }
  co_return false;
}

awaitable<UpstreamReply> VirtualServer::listen_to(std::size_t member, mcp::SessionClaims claims,
                                                  upstream::ForwardContext context) {
  asio::steady_timer deadline(co_await asio::this_coro::executor, options_.member_timeout);
  if (speaks_stateless(member)) {
    // Every list change it announces; resource updates need subscriptions, which 2026-07-28
    // members are not sent.
    mcp::ListenFilter filter;
    filter.tools_list_changed = filter.prompts_list_changed = filter.resources_list_changed = true;
    mcp::Json request = {{"jsonrpc", "2.0"},
                         {"id", "listen-" + mcp::base64url_encode(mcp::random_bytes(9))},
                         {"method", "subscriptions/listen"},
                         {"params", {{"notifications", filter.to_json()}}}};
    make_stateless(request, &claims, context);
    const mcp::Message message(mcp::MessageKind::request, request);
    std::string raw = request.dump();
    auto sent = co_await (members_[member]->send(message, std::move(raw), nullptr, context) ||
                          deadline.async_wait(use_nothrow));
    if (sent.index() == 1)
      co_return UpstreamReply::failure("did not open its listen stream within " +
                                       std::to_string(options_.member_timeout.count()) + " ms");
    UpstreamReply reply = std::move(std::get<0>(sent));
    if (reply.kind == Kind::stream)
      reply.stream = std::make_unique<ListenStream>(std::move(reply.stream));
    co_return reply;
  }
  auto opened =
      co_await (members_[member]->listen(claims, context) || deadline.async_wait(use_nothrow));
  if (opened.index() == 0) co_return std::move(std::get<0>(opened));
  co_return UpstreamReply::failure("did not open its stream within " +
                                   std::to_string(options_.member_timeout.count()) + " ms");
}

awaitable<UpstreamReply> VirtualServer::tell_each(std::string raw,
                                                  const mcp::SessionClaims& session,
                                                  const MemberSessions& sessions,
                                                  const upstream::ForwardContext& context) {
  std::vector<awaitable<bool>> tasks;
  for (std::size_t member = 0; member < members_.size(); ++member) {
    const auto own = sessions.find(members_[member]->name());
    // A 2026-07-28 member takes no notifications: a call ends when its request closes.
    if (own == sessions.end() || speaks_stateless(member)) continue;
    tasks.push_back(notify(member, raw, member_claims(session, member, own->second),
                           member_context(context, &own->second)));
  }
  if (!tasks.empty()) {
    const auto failed = [](const char*) { return false; };
    co_await all_of(std::move(tasks), failed);
  }
  UpstreamReply reply;
  reply.kind = Kind::accepted;
  reply.http_status = 202;
  co_return reply;
}

awaitable<UpstreamReply> VirtualServer::initialize(const mcp::Message& message,
                                                   const upstream::ForwardContext& context) {
  // A 2026-07-28 member is asked server/discover, with the client the initialize describes.
  mcp::SessionClaims client;
  if (const auto* params = message.params()) {
    client.initialize_params = *params;
    client.client_capabilities = params->value("capabilities", mcp::Json::object());
  }
  std::vector<awaitable<MemberAnswer>> tasks;
  for (std::size_t member = 0; member < members_.size(); ++member) {
    // A stdio member starts a process first.
    const auto timeout = members_[member]->traits().process_per_session
                             ? std::max(options_.member_timeout, kInitializeTimeout)
                             : options_.member_timeout;
    auto forwarded = member_context(context, nullptr);
    mcp::Json request = message.body();
    if (speaks_stateless(member)) {
      request = {{"jsonrpc", "2.0"},
                 {"id", message.id()},
                 {"method", "server/discover"},
                 {"params", mcp::Json::object()}};
      make_stateless(request, &client, forwarded);
    }
    tasks.push_back(ask(member, std::move(request), std::nullopt, std::move(forwarded), timeout));
  }
  const auto failed = [](const char* what) {
    MemberAnswer answer;
    answer.problem = std::string("failed: ") + what;
    return answer;
  };
  auto answers = co_await all_of(std::move(tasks), failed);

  std::string sessions;
  std::string requested;
  if (const auto* params = message.params()) requested = text_member(*params, "protocolVersion");
  std::string agreed;
  mcp::Json capabilities = mcp::Json::object();
  std::string instructions = catalog_->instructions();
  std::string problems;
  for (std::size_t member = 0; member < answers.size(); ++member) {
    auto& answer = answers[member];
    const std::string& upstream = members_[member]->name();
    if (answer.answered && speaks_stateless(member)) {
      // Its server/discover result, read as the initialize result it stands for.
      auto discovered = answer.response.find("result");
      if (discovered != answer.response.end() && discovered->is_object())
        *discovered = mcp::initialize_from_discover(*discovered, requested);
      answer.session.clear();
    }
    const auto result = answer.answered ? answer.response.find("result") : answer.response.end();
    if (!answer.answered || result == answer.response.end() || !result->is_object()) {
      std::string why = answer.problem;
      if (answer.answered) {
        const auto error = answer.response.find("error");
        why = "refused initialize: " + (error != answer.response.end()
                                            ? text_member(*error, "message")
                                            : std::string("it gave no result"));
      }
      log::warn("virtual server '", name(), "': upstream '", upstream,
                "' is left out of this session: ", why);
      problems += (problems.empty() ? "" : "; ") + ("upstream '" + upstream + "' " + why);
      continue;
    }
    const std::string version = text_member(*result, "protocolVersion");
    const auto own = result->find("capabilities");
    const mcp::Json offered = own != result->end() && own->is_object() ? *own : mcp::Json::object();
    if (!pack_session(sessions, upstream, answer.session, version, capability_letters(offered))) {
      log::warn("virtual server '", name(), "': upstream '", upstream,
                "' is left out of this session: its session id holds a tab or a line break");
      problems +=
          (problems.empty() ? "" : "; ") + ("upstream '" + upstream + "' gave a bad session id");
      continue;
    }
    // The oldest revision any member agreed to is one the client speaks with every member.
    if (agreed.empty() || (!version.empty() && version < agreed)) agreed = version;
    for (const auto* kind : {"tools", "prompts", "resources"}) {
      const auto item = offered.find(kind);
      if (item == offered.end()) continue;
      mcp::Json& merged = capabilities[kind];
      if (!merged.is_object()) merged = mcp::Json::object();
      if (item->is_object()) {
        for (const auto* flag : {"listChanged", "subscribe"}) {
          if (flag_member(*item, flag)) merged[flag] = true;
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
  reply.upstream_session = std::move(sessions);
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
    // 2026-07-28 has no logging/setLevel: its clients say the level on each request.
    if (own == sessions.end() || !own->second.has('l') || speaks_stateless(member)) continue;
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
  if (speaks_stateless(*member)) {
    // The answer to a question a call of this replica is waiting on.
    if (questions_.deliver(message.id().get<std::string>(), std::move(body.value))) {
      UpstreamReply accepted;
      accepted.kind = Kind::accepted;
      accepted.http_status = 202;
      co_return accepted;
    }
    UpstreamReply late = error_reply(message.id(), mcp::error_code::invalid_request,
                                     "Invalid request: no call of virtual server '" + name() +
                                         "' waits for this answer any more");
    late.kind = Kind::rejected;
    late.http_status = 400;
    co_return late;
  }
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
  if (speaks_stateless(*member)) {
    if (mcp::is_removed_in_stateless(method))
      co_return error_reply(message.id(), mcp::error_code::method_not_found,
                            "Method not found: upstream '" + target.upstream +
                                "' speaks 2026-07-28, which has no " + std::string(method));
    auto body = json::parse(raw);
    if (!body.ok() || !body.value.is_object()) body.value = message.body();
    mcp::Json& params = body.value["params"];
    if (method == "tools/call" || method == "prompts/get") {
      params["name"] = target.name;
    } else if (method == "completion/complete") {
      mcp::Json& ref = params["ref"];
      if (text_member(ref, "type") == "ref/prompt") ref["name"] = target.name;
    }
    auto forwarded = member_context(context, &own->second);
    make_stateless(body.value, &session, forwarded);
    UpstreamReply reply;
    reply.kind = Kind::stream;
    reply.http_status = 200;
    reply.content_type = "text/event-stream";
    reply.stream = std::make_unique<StatelessCallStream>(
        *members_[*member], questions_, std::move(body.value), std::move(forwarded));
    co_return reply;
  }
  bool renamed = (method == "tools/call" || method == "prompts/get")
                     ? message.target_name() != target.name
                     : method == "completion/complete";
  std::optional<mcp::Message> rewritten;
  // In the text when that can be done without doubt (a stdio member writes a message on one
  // line, so one written over several is rewritten whole).
  const bool ref_prompt = method == "completion/complete";
  if (renamed && ascii::find_line_break(raw) == std::string::npos &&
      (ref_prompt ? mcp::replace_string_at(raw, {"params", "ref", "name"}, target.name)
                  : mcp::replace_string_at(raw, {"params", "name"}, target.name))) {
    renamed = false;
  }
  if (renamed) {
    auto body = json::parse(raw);
    if (!body.ok() || !body.value.is_object()) body.value = message.body();
    mcp::Json& params = body.value["params"];
    if (method == "completion/complete") {
      mcp::Json& ref = params["ref"];
      if (text_member(ref, "type") == "ref/prompt") ref["name"] = target.name;
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
  const auto sessions = MemberSessions::unpack(session->upstream_session);
  if (!sessions) {
    UpstreamReply forgotten;
    forgotten.kind = Kind::session_not_found;
    co_return forgotten;
  }
  if (message.is_response())
    co_return co_await answer_member(message, raw, *session, *sessions, context);
  if (message.is_notification())
    co_return co_await tell_each(std::move(raw), *session, *sessions, context);

  const std::string_view method = message.method();
  if (method == "ping") co_return result_reply(message.id(), mcp::Json::object());
  if (options_.search_discovery && method == "tools/list")
    co_return co_await searched_list(message, *session, *sessions, context);
  if (is_search_call(message)) co_return co_await search(message, *session, *sessions, context);
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

awaitable<std::vector<mcp::Json>> VirtualServer::every_tool(
    const mcp::Message& message, const mcp::SessionClaims& session, const MemberSessions& sessions,
    const upstream::ForwardContext& context) {
  std::vector<mcp::Json> tools;
  std::map<std::size_t, std::string> cursors;  // member -> its next page ("" = first)
  for (std::size_t member = 0; member < members_.size(); ++member) {
    const auto own = sessions.find(members_[member]->name());
    if (own != sessions.end() && own->second.has('t')) cursors.emplace(member, std::string());
  }
  for (std::size_t page = 0; page < kMaxSearchPages && !cursors.empty(); ++page) {
    std::vector<std::size_t> asked;
    std::vector<mcp::Json> requests;
    for (const auto& [member, cursor] : cursors) {
      mcp::Json request = {{"jsonrpc", "2.0"},
                           {"id", message.id()},
                           {"method", "tools/list"},
                           {"params", mcp::Json::object()}};
      if (!cursor.empty()) request["params"]["cursor"] = cursor;
      asked.push_back(member);
      requests.push_back(std::move(request));
    }
    auto answers = co_await ask_each(asked, std::move(requests), &session, sessions, context);
    cursors.clear();
    for (std::size_t index = 0; index < asked.size(); ++index) {
      auto& answer = answers[index];
      const auto result = answer.answered ? answer.response.find("result") : answer.response.end();
      if (result == answer.response.end() || !result->is_object()) {
        log::warn("virtual server '", name(), "': search leaves out upstream '",
                  members_[asked[index]]->name(),
                  "': ", answer.answered ? std::string("answered with an error") : answer.problem);
        continue;
      }
      if (const auto items = result->find("tools"); items != result->end() && items->is_array()) {
        for (auto& item : *items) {
          if (tools.size() >= kMaxSearchTools) break;
          if (catalog_->publish(ItemKind::tool, asked[index], item))
            tools.push_back(std::move(item));
        }
      }
      if (const auto next = result->find("nextCursor");
          next != result->end() && next->is_string() &&
          !next->get_ref<const std::string&>().empty())
        cursors.emplace(asked[index], next->get<std::string>());
    }
  }
  co_return tools;
}

void VirtualServer::remember_found(const std::string& session,
                                   const std::vector<std::string>& names) {
  std::lock_guard lock(found_mutex_);
  auto [entry, fresh] = found_.try_emplace(session);
  if (fresh) {
    found_order_.push_back(session);
    while (found_order_.size() > options_.max_searching_sessions) {
      found_.erase(found_order_.front());
      found_order_.pop_front();
    }
  }
  auto& kept = found_[session];
  for (const auto& name : names) {
    if (kept.size() >= kMaxFoundPerSession) break;
    if (std::find(kept.begin(), kept.end(), name) == kept.end()) kept.push_back(name);
  }
}

std::vector<std::string> VirtualServer::found_in(const std::string& session) const {
  std::lock_guard lock(found_mutex_);
  const auto found = found_.find(session);
  return found == found_.end() ? std::vector<std::string>() : found->second;
}

awaitable<UpstreamReply> VirtualServer::searched_list(const mcp::Message& message,
                                                      const mcp::SessionClaims& session,
                                                      const MemberSessions& sessions,
                                                      const upstream::ForwardContext& context) {
  mcp::Json listed = mcp::Json::array({search_tool_definition()});
  const auto wanted = found_in(session.upstream_session);
  if (!wanted.empty()) {
    auto tools = co_await every_tool(message, session, sessions, context);
    for (auto& tool : tools) {
      const auto& name = tool["name"];
      if (name.is_string() && std::find(wanted.begin(), wanted.end(),
                                        name.get_ref<const std::string&>()) != wanted.end())
        listed.push_back(std::move(tool));
    }
  }
  co_return result_reply(message.id(), {{"tools", std::move(listed)}});
}

awaitable<UpstreamReply> VirtualServer::search(const mcp::Message& message,
                                               const mcp::SessionClaims& session,
                                               const MemberSessions& sessions,
                                               const upstream::ForwardContext& context) {
  const mcp::Json* arguments = nullptr;
  if (const auto* params = message.params()) {
    if (const auto found = params->find("arguments"); found != params->end()) arguments = &*found;
  }
  const auto query =
      arguments && arguments->is_object() ? arguments->find("query") : mcp::Json::const_iterator();
  if (!arguments || !arguments->is_object() || query == arguments->end() || !query->is_string() ||
      query->get_ref<const std::string&>().empty()) {
    co_return error_reply(message.id(), mcp::error_code::invalid_params,
                          "Invalid params: search_tools needs a non-empty 'query' string");
  }
  std::size_t limit = kDefaultSearchLimit;
  if (const auto asked = arguments->find("limit"); asked != arguments->end()) {
    if (!asked->is_number_integer() || asked->get<std::int64_t>() < 1 ||
        asked->get<std::int64_t>() > static_cast<std::int64_t>(kMaxSearchLimit))
      co_return error_reply(message.id(), mcp::error_code::invalid_params,
                            "Invalid params: 'limit' must be a whole number from 1 to " +
                                std::to_string(kMaxSearchLimit));
    limit = static_cast<std::size_t>(asked->get<std::int64_t>());
  }
  const auto tools = co_await every_tool(message, session, sessions, context);
  std::vector<const mcp::Json*> candidates;
  candidates.reserve(tools.size());
  for (const auto& tool : tools)
    candidates.push_back(&tool);
  std::vector<std::string> names;
  for (const auto index : rank_tools(candidates, query->get_ref<const std::string&>(), limit))
    names.push_back(tools[index].at("name").get<std::string>());
  std::string text;
  if (names.empty()) {
    text = "No tool matched. Try other words for what you want to do.";
  } else {
    remember_found(session.upstream_session, names);
    text = std::to_string(names.size()) + (names.size() == 1 ? " tool" : " tools") +
           " matched and " + (names.size() == 1 ? "is" : "are") +
           " now in your tool list (list the tools again if your client has not refreshed it):";
    for (const auto& name : names)
      text += "\n- " + name;
  }
  // Names only: what the model reads of a tool comes with the listing, which the policy filters.
  const mcp::Json result = {{"content", mcp::Json::array({{{"type", "text"}, {"text", text}}})},
                            {"structuredContent", {{"tools", names}}}};
  const mcp::Json answer = {{"jsonrpc", "2.0"}, {"id", message.id()}, {"result", result}};
  std::vector<std::string> messages;
  if (!names.empty()) {
    const mcp::Json changed = {{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}};
    messages.push_back(changed.dump());
  }
  messages.push_back(answer.dump(-1, ' ', false, mcp::Json::error_handler_t::replace));
  UpstreamReply reply;
  reply.kind = Kind::stream;
  reply.http_status = 200;
  reply.content_type = "text/event-stream";
  reply.stream = std::make_unique<BufferedStream>(std::move(messages));
  co_return reply;
}

awaitable<UpstreamReply> VirtualServer::listen(const mcp::SessionClaims& session,
                                               const upstream::ForwardContext& context) {
  const auto sessions = MemberSessions::unpack(session.upstream_session);
  if (!sessions) {
    UpstreamReply forgotten;
    forgotten.kind = Kind::session_not_found;
    co_return forgotten;
  }
  // At once, each within the member timeout: a member that does not answer is left out of the
  // merged stream rather than holding it up; one that offers no stream (405) is simply not in it.
  std::vector<std::size_t> listening;
  std::vector<awaitable<UpstreamReply>> tasks;
  for (std::size_t member = 0; member < members_.size(); ++member) {
    const auto own = sessions->find(members_[member]->name());
    if (own == sessions->end()) continue;
    listening.push_back(member);
    tasks.push_back(listen_to(member, member_claims(session, member, own->second),
                              member_context(context, &own->second)));
  }
  const auto failed = [](const char* what) { return UpstreamReply::failure(what); };
  auto replies = co_await all_of(std::move(tasks), failed);
  std::vector<std::pair<std::string, std::unique_ptr<upstream::ReplyStream>>> streams;
  std::optional<UpstreamReply> refusal;
  for (std::size_t index = 0; index < replies.size(); ++index) {
    const std::string& upstream = members_[listening[index]]->name();
    if (replies[index].kind == Kind::stream) {
      streams.emplace_back(upstream, std::move(replies[index].stream));
      continue;
    }
    log::debug("virtual server '", name(), "': upstream '", upstream,
               "' gives no session stream: ", describe_failure(replies[index]));
    if (!refusal) refusal = std::move(replies[index]);
  }
  if (streams.empty()) {
    if (refusal) co_return std::move(*refusal);
    co_return UpstreamReply::failure("virtual server '" + name() +
                                     "': no upstream of this session gives a session stream");
  }
  UpstreamReply reply;
  reply.kind = Kind::stream;
  reply.http_status = 200;
  reply.content_type = "text/event-stream";
  const MergedStream::ChangeSeen change_seen = [this](std::string_view upstream,
                                                      std::string_view method) {
    for (const auto list : mcp::methods_invalidated_by(method))
      cached_results_.invalidate(upstream, list);
  };
  reply.stream = co_await MergedStream::start(std::move(streams), change_seen);
  co_return reply;
}

awaitable<UpstreamReply> VirtualServer::end_session(const mcp::SessionClaims& session,
                                                    const upstream::ForwardContext& context) {
  if (const auto sessions = MemberSessions::unpack(session.upstream_session)) {
    for (std::size_t member = 0; member < members_.size(); ++member) {
      const auto own = sessions->find(members_[member]->name());
      if (own == sessions->end() || speaks_stateless(member)) continue;
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
