#include "console/console_service.hpp"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "console/assets.hpp"
#include "console/console_stats.hpp"
#include "gateway/responses.hpp"
#include "membrane/audit/audit_search.hpp"
#include "membrane/core/ascii.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "membrane/http/sse.hpp"

namespace membrane::console {

using Json = audit::Json;
namespace bhttp = http::bhttp;

struct ConsoleService::Caller {
  std::string subject;
  std::vector<std::string> scopes;
  bool can_approve = false;
};

// The last verification of each chain, kept while its files do not change.
struct ConsoleService::ChainCache {
  std::mutex mutex;
  std::string signature;  // every file's path, size and modification time
  Json result;
  // Per chain, how far it was verified: a growing log is verified from where it was left.
  std::map<std::string, audit::VerifiedChain> verified;
  std::chrono::steady_clock::time_point last_full{};
};

namespace {

constexpr std::string_view prefix = "/console";
constexpr std::string_view api_prefix = "/console/api/";
constexpr std::size_t longest_parameter = 1024;
constexpr std::size_t longest_page = 500;
constexpr std::size_t longest_timeline = 10'000;
constexpr std::size_t longest_approval_body = 16 * 1024;
constexpr std::size_t longest_reason = 1000;
constexpr std::chrono::minutes full_verification_interval{10};

// Scripts, styles and data only from the console itself; no framing, no forms elsewhere.
constexpr const char* content_security_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void secure(http::Response& response, bool cacheable) {
  response.set("Content-Security-Policy", content_security_policy);
  response.set("X-Content-Type-Options", "nosniff");
  response.set("X-Frame-Options", "DENY");
  response.set("Referrer-Policy", "no-referrer");
  response.set("Cross-Origin-Opener-Policy", "same-origin");
  response.set("Cross-Origin-Resource-Policy", "same-origin");
  response.set(bhttp::field::cache_control, cacheable ? "no-cache" : "no-store");
}

http::Response json_response(unsigned status, const Json& body) {
  http::Response response{static_cast<bhttp::status>(status), 11};
  response.set(bhttp::field::content_type, "application/json");
  secure(response, false);
  response.body() = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  response.prepare_payload();
  return response;
}

http::Response error_response(unsigned status, std::string_view error, std::string_view detail) {
  return json_response(status, {{"error", error}, {"error_description", detail}});
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::uint64_t seq_of(const Json& record) {
  const auto it = record.find("seq");
  return it != record.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

// A time filter as records write time: digits, '-', ':', 'T', '.', 'Z' (any prefix).
bool is_time_prefix(std::string_view text) {
  return text.size() <= 30 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || c == '-' || c == ':' || c == 'T' || c == '.' ||
                  c == 'Z';
         });
}

// The filter a request's query names; an error message when a value is unusable.
std::string read_filter(std::string_view target, audit::QueryFilter& filter) {
  const std::pair<const char*, std::string*> fields[] = {
      {"txn", &filter.txn},         {"identity", &filter.identity}, {"tool", &filter.tool},
      {"verdict", &filter.verdict}, {"upstream", &filter.upstream}, {"rule", &filter.rule},
      {"since", &filter.since},     {"until", &filter.until}};
  for (const auto& [name, value] : fields) {
    *value = gateway::query_parameter(target, name);
    if (value->size() > longest_parameter)
      return std::string("'") + name + "' is longer than " + std::to_string(longest_parameter);
  }
  if (!filter.verdict.empty() && filter.verdict != "allow" && filter.verdict != "deny" &&
      filter.verdict != "ask" && filter.verdict != "redact")
    return "'verdict' is one of allow, deny, ask, redact";
  if (!is_time_prefix(filter.since) || !is_time_prefix(filter.until))
    return "'since' and 'until' are ISO 8601 UTC times or prefixes of one (2026-12-07T10:30)";
  return {};
}

std::optional<std::size_t> read_count(std::string_view target, const char* name,
                                      std::size_t fallback, std::size_t most) {
  const std::string text = gateway::query_parameter(target, name);
  if (text.empty()) return fallback;
  if (text.size() > 9 || !std::all_of(text.begin(), text.end(), is_digit)) return std::nullopt;
  const auto value = static_cast<std::size_t>(std::stoul(text));
  if (value == 0 || value > most) return std::nullopt;
  return value;
}

std::vector<std::string> glob_files(const std::string& pattern) {
  std::vector<std::string> files;
  glob_t found{};
  if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &found) == 0) {
    for (std::size_t i = 0; i < found.gl_pathc; ++i) {
      struct stat status {};
      if (::stat(found.gl_pathv[i], &status) == 0 && S_ISREG(status.st_mode))
        files.emplace_back(found.gl_pathv[i]);
    }
  }
  ::globfree(&found);
  return files;
}

// A rotated file is `<log>.<digits>`: the chain it belongs to is `<log>`.
std::string chain_of(const std::string& file) {
  const auto dot = file.rfind('.');
  if (dot == std::string::npos || dot + 1 == file.size()) return file;
  const std::string_view suffix = std::string_view(file).substr(dot + 1);
  return std::all_of(suffix.begin(), suffix.end(), is_digit) ? file.substr(0, dot) : file;
}

std::string files_signature(const std::vector<std::string>& files) {
  std::string signature;
  for (const auto& file : files) {
    struct stat status {};
    ::stat(file.c_str(), &status);
    signature += file + '\n' + std::to_string(status.st_size) + '\n' +
                 std::to_string(status.st_mtim.tv_sec) + '.' +
                 std::to_string(status.st_mtim.tv_nsec) + '\n';
  }
  return signature;
}

// Runs `build` (which makes the answer) on the console's threads, off the event loop, and sends
// what it made; a failure there is a 500 saying what failed.
template <class Build>
awaitable<void> send_built_by(http::BackgroundThreads& threads, Build build, const char* failed,
                              http::Responder& out) {
  auto response = co_await threads.run(std::move(build));
  if (!response) response = error_response(500, "server_error", failed);
  co_await out.send(std::move(*response));
}

http::Response asset_response(const Asset& asset) {
  http::Response response{bhttp::status::ok, 11};
  response.set(bhttp::field::content_type, asset.content_type);
  secure(response, true);
  response.body() = std::string(asset.bytes);
  response.prepare_payload();
  return response;
}

}  // namespace

ConsoleService::ConsoleService(ConsoleOptions options)
    : options_(std::move(options)),
      // The agents' listener's DNS-rebinding check, with its loopback names.
      hosts_({}, {}, options_.loopback_hosts_only),
      chain_cache_(std::make_unique<ChainCache>()) {}

ConsoleService::~ConsoleService() = default;

bool ConsoleService::serves(std::string_view path) {
  return path == prefix || path.rfind("/console/", 0) == 0;
}

std::vector<std::string> ConsoleService::audit_files() const {
  std::set<std::string> files;
  if (!options_.audit_file.empty()) {
    struct stat status {};
    if (::stat(options_.audit_file.c_str(), &status) == 0) files.insert(options_.audit_file);
    for (auto& rotated : glob_files(options_.audit_file + ".*")) {
      if (chain_of(rotated) == options_.audit_file) files.insert(std::move(rotated));
    }
  }
  for (const auto& pattern : options_.audit_patterns) {
    for (auto& file : glob_files(pattern))
      files.insert(std::move(file));
  }
  return audit::newest_first({files.begin(), files.end()});
}

awaitable<void> ConsoleService::handle(http::Request& request, http::Responder& out) {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  // A page of another site may send requests here (with the user's browser), but never read the
  // answers: no CORS header is ever sent. What it could still do is write: refuse any request a
  // browser marks as coming from elsewhere.
  const auto origin = request.find(bhttp::field::origin);
  const std::string_view host =
      request.find(bhttp::field::host) != request.end() ? request[bhttp::field::host] : "";
  if (origin != request.end()) {
    const std::string_view value = origin->value();
    const bool same = value == "http://" + std::string(host);
    if (!same) {
      auto answer = error_response(403, "forbidden_origin",
                                   "the console answers only its own pages (Origin " +
                                       std::string(value.substr(0, 200)) + " is not " + "http://" +
                                       std::string(host.substr(0, 200)) + ")");
      co_await out.send(std::move(answer));
      co_return;
    }
  }
  if (const auto site = request.find("Sec-Fetch-Site"); site != request.end()) {
    const std::string_view value = site->value();
    if (value != "same-origin" && value != "none") {
      auto answer = error_response(403, "forbidden_origin",
                                   "the console answers only its own pages (Sec-Fetch-Site: " +
                                       std::string(value.substr(0, 40)) + ")");
      co_await out.send(std::move(answer));
      co_return;
    }
  }
  if (!hosts_.host_allowed(host)) {
    auto answer = error_response(
        403, "forbidden_host",
        "the console listens on loopback: open it as http://127.0.0.1:<port>/console/ (a request "
        "for another host name may be a DNS rebinding attack)");
    co_await out.send(std::move(answer));
    co_return;
  }
  if (path == prefix) {
    http::Response response{bhttp::status::permanent_redirect, 11};
    response.set(bhttp::field::location, "/console/");
    secure(response, false);
    response.prepare_payload();
    co_await out.send(std::move(response));
    co_return;
  }
  if (path.rfind(api_prefix, 0) == 0) {
    co_await serve_api(request, path.substr(api_prefix.size()), out);
    co_return;
  }
  if (request.method() != bhttp::verb::get && request.method() != bhttp::verb::head) {
    auto answer =
        error_response(405, "method_not_allowed", "the console's pages are read with GET");
    co_await out.send(std::move(answer));
    co_return;
  }
  std::string_view name = path.substr(prefix.size() + 1);
  if (name.empty()) name = "index.html";
  for (const Asset& asset : assets()) {
    if (asset.name == name) {
      auto page = asset_response(asset);
      co_await out.send(std::move(page));
      co_return;
    }
  }
  auto answer = error_response(404, "not_found", "no such console page");
  co_await out.send(std::move(answer));
}

awaitable<std::optional<ConsoleService::Caller>> ConsoleService::authenticate(
    const http::Request& request, bool approving, http::Responder& out) {
  const auto header = request.find(bhttp::field::authorization);
  const std::string_view authorization = header != request.end() ? header->value() : "";
  std::vector<std::string> scopes = {options_.audit_scope};
  if (approving) scopes.push_back(options_.approve_scope);
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  std::optional<identity::AuthResult> refusal;
  for (const auto& issuer : options_.issuers) {
    if (issuer.remote_keys && issuer.remote_keys->stale()) {
      std::string error;
      auto keys = co_await issuer.remote_keys->fetch(error);
      if (keys) issuer.authenticator->replace_keys(std::move(*keys));
    }
    auto result = issuer.authenticator->authenticate(authorization, scopes, now);
    if (!result && result.unknown_key && issuer.remote_keys) {
      std::string error;
      auto keys = co_await issuer.remote_keys->fetch(error);
      if (keys) {
        issuer.authenticator->replace_keys(std::move(*keys));
        result = issuer.authenticator->authenticate(authorization, scopes, now);
      }
    }
    if (result) {
      Caller caller;
      caller.subject = result.identity->subject;
      caller.scopes = result.identity->scopes;
      caller.can_approve = std::find(caller.scopes.begin(), caller.scopes.end(),
                                     options_.approve_scope) != caller.scopes.end() &&
                           std::find(caller.scopes.begin(), caller.scopes.end(),
                                     options_.audit_scope) != caller.scopes.end();
      co_return caller;
    }
    // The most telling refusal: a token that is valid but lacks a scope says so.
    if (!refusal || result.status == 403) refusal = std::move(result);
  }
  const unsigned status = refusal && refusal->status ? refusal->status : 401;
  std::string error = refusal && !refusal->error.empty() ? refusal->error : "invalid_token";
  std::string description =
      refusal && !refusal->description.empty()
          ? refusal->description
          : "a bearer token with the scope " + options_.audit_scope + " is required";
  if (authorization.empty()) {
    error = "invalid_token";
    description = "log in with a bearer token (Authorization: Bearer ...) that has the scope " +
                  options_.audit_scope;
  }
  auto response = error_response(status, error, description);
  std::string challenge = "Bearer realm=\"membrane-console\", error=\"" + error + "\"";
  if (status == 403)
    challenge += ", scope=\"" + [&] {
      std::string joined;
      for (const auto& scope : scopes)
        joined += (joined.empty() ? "" : " ") + scope;
      return joined;
    }() + "\"";
  response.set(bhttp::field::www_authenticate, challenge);
  co_await out.send(std::move(response));
  co_return std::nullopt;
}

awaitable<void> ConsoleService::serve_api(http::Request& request, std::string_view route,
                                          http::Responder& out) {
  const bool post = request.method() == bhttp::verb::post;
  const bool get = request.method() == bhttp::verb::get;
  constexpr std::string_view approvals_route = "approvals/";
  const bool answering = post && route.rfind(approvals_route, 0) == 0;
  if (!get && !answering) {
    auto answer = error_response(405, "method_not_allowed",
                                 "the console's APIs are read with GET; approvals are answered "
                                 "with POST api/approvals/<id>");
    co_await out.send(std::move(answer));
    co_return;
  }
  const auto caller = co_await authenticate(request, answering, out);
  if (!caller) co_return;
  if (answering) {
    std::string id = gateway::percent_decoded(route.substr(approvals_route.size()));
    co_await answer_approval(request, std::move(id), *caller, out);
  } else if (route == "whoami") {
    const Json body = {
        {"subject", caller->subject},
        {"scopes", caller->scopes},
        {"can_approve", caller->can_approve},
        {"replica", options_.replica},
        {"trace_link", options_.trace_link.empty() ? Json() : Json(options_.trace_link)}};
    auto answer = json_response(200, body);
    co_await out.send(std::move(answer));
  } else if (route == "records") {
    co_await records(request, out);
  } else if (route == "feed") {
    co_await feed(request, out);
  } else if (route.rfind("transactions/", 0) == 0) {
    constexpr std::string_view transactions_route = "transactions/";
    std::string txn = gateway::percent_decoded(route.substr(transactions_route.size()));
    co_await transaction(std::move(txn), out);
  } else if (route == "chain") {
    co_await chain(request, out);
  } else if (route == "stats") {
    co_await stats(request, out);
  } else if (route == "approvals") {
    co_await approvals(out);
  } else {
    auto answer = error_response(404, "not_found",
                                 "no such console API (whoami, records, feed, transactions/<txn>, "
                                 "chain, stats, approvals)");
    co_await out.send(std::move(answer));
  }
}

awaitable<void> ConsoleService::records(const http::Request& request, http::Responder& out) {
  const std::string_view target = request.target();
  audit::QueryFilter filter;
  if (auto problem = read_filter(target, filter); !problem.empty()) {
    auto answer = error_response(400, "invalid_request", problem);
    co_await out.send(std::move(answer));
    co_return;
  }
  const auto limit = read_count(target, "limit", 50, longest_page);
  if (!limit) {
    auto answer = error_response(400, "invalid_request",
                                 "'limit' is a number from 1 to " + std::to_string(longest_page));
    co_await out.send(std::move(answer));
    co_return;
  }
  audit::ScanOptions scan;
  scan.max_scan_bytes = options_.max_scan_bytes;
  if (const std::string cursor = gateway::query_parameter(target, "cursor"); !cursor.empty()) {
    scan.start = audit::decode_cursor(cursor);
    if (!scan.start) {
      auto answer =
          error_response(400, "invalid_request", "'cursor' is not a cursor this console gave");
      co_await out.send(std::move(answer));
      co_return;
    }
  }
  const std::size_t page = *limit;
  auto work = [this, filter, scan, page] {
    const auto started = std::chrono::steady_clock::now();
    auto found = audit::search_files(audit_files(), filter, page, scan);
    const double elapsed_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    if (!found.scan.error.empty()) return error_response(400, "invalid_request", found.scan.error);
    Json body = {{"records", std::move(found.records)},
                 {"next", found.scan.next ? Json(audit::encode_cursor(*found.scan.next)) : Json()},
                 {"scanned_records", found.scan.scanned_records},
                 {"scanned_bytes", found.scan.scanned_bytes},
                 {"elapsed_ms", elapsed_ms},
                 {"limited", found.scan.limited}};
    if (found.scan.limited) {
      body["limit_note"] = "this search stopped after reading " +
                           std::to_string(found.scan.scanned_bytes >> 20) +
                           " MiB (console.max_scan): ask for the next page to read on";
    }
    return json_response(200, body);
  };
  co_await send_built_by(background_, std::move(work), "the search failed", out);
}

awaitable<void> ConsoleService::feed(const http::Request& request, http::Responder& out) {
  audit::QueryFilter filter;
  if (auto problem = read_filter(request.target(), filter); !problem.empty()) {
    auto answer = error_response(400, "invalid_request", problem);
    co_await out.send(std::move(answer));
    co_return;
  }
  if (!options_.feed) {
    auto answer = error_response(404, "not_found",
                                 "this replica keeps no audit log (audit.file): no live feed");
    co_await out.send(std::move(answer));
    co_return;
  }
  if (feeds_open_.fetch_add(1) >= options_.max_feeds) {
    feeds_open_.fetch_sub(1);
    auto answer = error_response(503, "too_many_feeds",
                                 "too many live feeds are open on this console; close one");
    co_await out.send(std::move(answer));
    co_return;
  }
  struct Release {
    std::atomic<std::size_t>& open;
    ~Release() { open.fetch_sub(1); }
  } release{feeds_open_};
  http::ResponseHeader header{bhttp::status::ok, 11};
  header.set(bhttp::field::content_type, "text/event-stream");
  header.set(bhttp::field::cache_control, "no-store");
  header.set("Content-Security-Policy", content_security_policy);
  header.set("X-Content-Type-Options", "nosniff");
  if (!co_await out.begin_stream(std::move(header))) co_return;
  out.set_interruptible(true);
  // Ready: the page knows it sees calls from now on.
  if (!co_await out.write_chunk(": feed open\n\n")) co_return;
  std::uint64_t position = options_.feed->head();
  asio::steady_timer timer(co_await asio::this_coro::executor);
  constexpr auto poll = std::chrono::milliseconds(200);
  constexpr auto quiet_limit = std::chrono::seconds(15);
  auto last_write = std::chrono::steady_clock::now();
  for (;;) {
    timer.expires_after(poll);
    const auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec || out.draining()) break;
    auto batch = options_.feed->read(position, 256);
    position = batch.next;
    std::string events;
    if (batch.missed) {
      events += "event: missed\ndata: {\"records\":" + std::to_string(batch.missed) + "}\n\n";
    }
    for (const auto& line : batch.lines) {
      const Json record = json::parse_or_discarded(line);
      if (!record.is_object() || !audit::matches(record, filter)) continue;
      events += "event: record\ndata: ";
      events += line;
      events += "\n\n";
    }
    const auto now = std::chrono::steady_clock::now();
    if (events.empty() && now - last_write < quiet_limit) continue;
    if (events.empty()) events = http::sse_keep_alive_comment;
    if (!co_await out.write_chunk(events)) co_return;
    last_write = now;
  }
  co_await asio::this_coro::reset_cancellation_state();
  co_await out.end_stream();
}

awaitable<void> ConsoleService::transaction(std::string txn, http::Responder& out) {
  if (txn.empty() || txn.size() > longest_parameter) {
    auto answer = error_response(400, "invalid_request", "name a transaction: transactions/<txn>");
    co_await out.send(std::move(answer));
    co_return;
  }
  auto work = [this, txn] {
    audit::QueryFilter filter;
    filter.txn = txn;
    audit::ScanOptions scan;
    scan.max_scan_bytes = options_.max_scan_bytes;
    auto found = audit::search_files(audit_files(), filter, longest_timeline, scan);
    if (found.records.empty()) {
      return error_response(404, "not_found",
                            found.scan.limited
                                ? "no call of this transaction in the newest part of the audit "
                                  "files the console may read (console.max_scan)"
                                : "no call of this transaction is in the audit files");
    }
    auto& records = found.records;
    std::stable_sort(records.begin(), records.end(), [](const Json& a, const Json& b) {
      // Records come from files anyone with write access could have edited: read by type.
      const auto time_a = json::string_member(a, "time");
      const auto time_b = json::string_member(b, "time");
      if (time_a != time_b) return time_a < time_b;
      return seq_of(a) < seq_of(b);
    });
    std::set<std::string> sessions, callers, files;
    for (const auto& record : records) {
      for (const auto& [key, into] : {std::pair{"session", &sessions},
                                      std::pair{"identity", &callers}, std::pair{"file", &files}}) {
        const auto it = record.find(key);
        if (it != record.end() && it->is_string()) into->insert(it->get<std::string>());
      }
    }
    Json body = {{"txn", txn},
                 {"calls", records.size()},
                 {"first", json::string_member(records.front(), "time")},
                 {"last", json::string_member(records.back(), "time")},
                 {"sessions", sessions},
                 {"callers", callers},
                 {"files", files},
                 {"complete", !found.scan.limited && records.size() < longest_timeline},
                 {"records", std::move(records)}};
    return json_response(200, body);
  };
  co_await send_built_by(background_, std::move(work), "reading the transaction failed", out);
}

awaitable<void> ConsoleService::chain(const http::Request& request, http::Responder& out) {
  const bool fresh = gateway::query_parameter(request.target(), "fresh") == "1";
  auto work = [this, fresh] {
    const auto files = audit_files();
    std::lock_guard lock(chain_cache_->mutex);
    const std::string signature = files_signature(files);
    if (!chain_cache_->result.is_null() && !fresh && signature == chain_cache_->signature)
      return json_response(200, chain_cache_->result);
    // A growing log is verified from where the last check left it; every few minutes (and when
    // the page asks) from the start, which also finds lines edited in place since.
    const auto now = std::chrono::steady_clock::now();
    const bool from_start = fresh || now - chain_cache_->last_full >= full_verification_interval;
    if (from_start) {
      chain_cache_->verified.clear();
      chain_cache_->last_full = now;
    }
    std::map<std::string, std::vector<std::string>> chains;
    for (const auto& file : files)
      chains[chain_of(file)].push_back(file);
    Json listed = Json::array();
    bool all_ok = true;
    const identity::KeySet* keys = options_.checkpoint_keys ? &*options_.checkpoint_keys : nullptr;
    for (auto& [name, members] : chains) {
      const auto verified = audit::verify_files_from(members, keys, chain_cache_->verified[name]);
      std::sort(members.begin(), members.end());
      Json entry = {{"name", name},
                    {"files", members},
                    {"ok", verified.ok},
                    {"records", verified.records},
                    {"checkpoints", verified.checkpoints},
                    {"signed", keys != nullptr},
                    {"ends_closed", verified.ends_closed},
                    {"incomplete_tail", verified.incomplete_tail},
                    {"interrupted_writes", verified.interrupted_writes}};
      if (!verified.ok) {
        entry["problem"] = verified.problem;
        entry["file"] = verified.file;
        entry["line"] = verified.line;
        all_ok = false;
      }
      listed.push_back(std::move(entry));
    }
    Json body = {{"ok", all_ok},
                 {"chains", std::move(listed)},
                 {"checked_at", audit::utc_now()},
                 {"verified_from_start_seconds_ago",
                  std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now() - chain_cache_->last_full)
                      .count()}};
    // Chains whose files are gone are forgotten.
    std::erase_if(chain_cache_->verified,
                  [&](const auto& entry) { return chains.find(entry.first) == chains.end(); });
    chain_cache_->signature = signature;
    chain_cache_->result = body;
    return json_response(200, body);
  };
  co_await send_built_by(background_, std::move(work), "verifying the chain failed", out);
}

awaitable<void> ConsoleService::stats(const http::Request& request, http::Responder& out) {
  constexpr std::size_t longest_window = 7 * 24 * 60;
  const auto minutes = read_count(request.target(), "minutes", 60, longest_window);
  if (!minutes) {
    auto answer =
        error_response(400, "invalid_request",
                       "'minutes' is a number from 1 to " + std::to_string(longest_window));
    co_await out.send(std::move(answer));
    co_return;
  }
  const int window = static_cast<int>(*minutes);
  auto work = [this, window] {
    CallStats calls(std::chrono::system_clock::now(), window);
    audit::QueryFilter filter;
    filter.since = calls.from_text();
    filter.until = calls.to_text();
    audit::ScanOptions scan;
    scan.max_scan_bytes = options_.max_scan_bytes;
    const auto result =
        audit::scan_files(audit_files(), filter, scan, [&](Json& record, const std::string&) {
          calls.add(record);
          return true;
        });
    Json body = calls.result();
    body["limited"] = result.limited;
    body["scanned_records"] = result.scanned_records;
    return json_response(200, body);
  };
  co_await send_built_by(background_, std::move(work), "computing the charts failed", out);
}

awaitable<void> ConsoleService::approvals(http::Responder& out) {
  Json listed = Json::array();
  if (options_.approvals) {
    auto waiting = co_await options_.approvals->list();
    for (auto& entry : waiting)
      listed.push_back(std::move(entry));
  }
  const Json body = {{"approvals", std::move(listed)}};
  auto answer = json_response(200, body);
  co_await out.send(std::move(answer));
}

awaitable<void> ConsoleService::answer_approval(const http::Request& request, std::string id,
                                                const Caller& caller, http::Responder& out) {
  if (!options_.approvals) {
    auto answer = error_response(404, "not_found", "no call waits for approval here");
    co_await out.send(std::move(answer));
    co_return;
  }
  if (request.body().size() > longest_approval_body) {
    auto answer = error_response(413, "invalid_request", "the answer is too large");
    co_await out.send(std::move(answer));
    co_return;
  }
  const Json body = json::parse_or_discarded(request.body());
  const auto decision = body.is_object() ? body.find("decision") : body.end();
  if (!body.is_object() || decision == body.end() || !decision->is_string() ||
      (*decision != "approve" && *decision != "refuse")) {
    auto answer =
        error_response(400, "invalid_request",
                       "send {\"decision\": \"approve\" | \"refuse\", \"reason\": \"...\"}");
    co_await out.send(std::move(answer));
    co_return;
  }
  std::string reason;
  if (const auto given = body.find("reason"); given != body.end()) {
    if (!given->is_string() || given->get_ref<const std::string&>().size() > longest_reason) {
      auto answer = error_response(
          400, "invalid_request",
          "'reason' is text of at most " + std::to_string(longest_reason) + " bytes");
      co_await out.send(std::move(answer));
      co_return;
    }
    reason = given->get<std::string>();
  }
  const bool approved = *decision == "approve";
  if (!approved && reason.empty()) {
    auto answer = error_response(400, "invalid_request",
                                 "a refusal needs a reason: the agent and the audit trail get it");
    co_await out.send(std::move(answer));
    co_return;
  }
  gateway::ApprovalDecision decision_given{approved, caller.subject, reason};
  const auto outcome = co_await options_.approvals->answer(id, decision_given);
  if (outcome == gateway::ConsoleApprovals::Answered::unknown) {
    auto answer = error_response(404, "not_found",
                                 "no call waits under this id: it was answered already, timed "
                                 "out, or its client left");
    co_await out.send(std::move(answer));
    co_return;
  }
  log::info(
      "console: ", caller.subject, approved ? " approved " : " refused ", id,
      outcome == gateway::ConsoleApprovals::Answered::relayed ? " (held by another replica)" : "");
  const Json answered = {
      {"id", id},
      {"decision", approved ? "approve" : "refuse"},
      {"delivered",
       outcome == gateway::ConsoleApprovals::Answered::delivered ? "here" : "relayed"}};
  auto reply = json_response(200, answered);
  co_await out.send(std::move(reply));
}

}  // namespace membrane::console
