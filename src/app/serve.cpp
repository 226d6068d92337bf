#include "membrane/app/serve.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/signal_set.hpp>

#include <fstream>
#include <iterator>

#include "app/memory_trim.hpp"
#include "app/policy_reload.hpp"
#include "cluster/rate_limiter.hpp"
#include "cluster/redis_client.hpp"
#include "console/console_service.hpp"
#include "console/decision_feed.hpp"
#include "gateway/admission.hpp"
#include "gateway/approval_relay.hpp"
#include "gateway/console_approvals.hpp"
#include "gateway/filters/access_log/access_log_filter.hpp"
#include "gateway/filters/audit/audit_filter.hpp"
#include "gateway/filters/metrics/metrics_filter.hpp"
#include "gateway/filters/policy/policy_filter.hpp"
#include "gateway/filters/rate_limit/rate_limit_filter.hpp"
#include "gateway/filters/task/task_filter.hpp"
#include "gateway/filters/trace/trace_filter.hpp"
#include "gateway/filters/transaction/transaction_filter.hpp"
#include "gateway/gateway.hpp"
#include "gateway/virtual/virtual_server.hpp"
#include "http/tls.hpp"
#include "membrane/core/json.hpp"
#include "membrane/core/log.hpp"
#include "upstream/credentials.hpp"
#include "upstream/factory.hpp"

namespace membrane::app {
namespace {

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "127.0.0.1" || host == "::1" || host.rfind("127.", 0) == 0;
}

// The Redis password: from the file when one is named, else from the environment variable when
// it is set, else none.
std::string redis_password(const ClusterConfig& cluster) {
  if (!cluster.redis_password_file.empty()) {
    std::ifstream in(cluster.redis_password_file, std::ios::binary);
    if (!in) {
      throw ConfigError(SourceLocation{cluster.redis_password_file, 0, 0},
                        "cannot read the Redis password file");
    }
    std::string password((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r'))
      password.pop_back();
    return password;
  }
  const char* value = std::getenv(cluster.redis_password_env.c_str());
  return value ? std::string(value) : std::string();
}

std::shared_ptr<const mcp::SessionSealer> make_sealer(const SessionConfig& session) {
  std::string secret;
  std::string source;
  if (!session.key_file.empty()) {
    std::ifstream file(session.key_file, std::ios::binary);
    if (!file) throw std::runtime_error("cannot read session key file '" + session.key_file + "'");
    secret.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    while (!secret.empty() &&
           (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' ')) {
      secret.pop_back();
    }
    source = "file " + session.key_file;
  } else if (!session.key_env.empty()) {
    if (const char* value = std::getenv(session.key_env.c_str()); value && *value) {
      secret = value;
      source = "environment variable " + session.key_env;
    }
  }
  if (secret.empty()) {
    log::warn(
        "no session key configured (session.key_file or $", session.key_env,
        "): using a random key; sessions will not survive a restart or move between replicas");
    return std::make_shared<const mcp::SessionSealer>(mcp::SessionSealer::random());
  }
  try {
    auto sealer =
        std::make_shared<const mcp::SessionSealer>(mcp::SessionSealer::from_secret(secret));
    log::info("session key derived from ", source);
    return sealer;
  } catch (const std::invalid_argument& error) {
    throw std::runtime_error("session key from " + source + ": " + error.what());
  }
}

// A secret named in the config: the value of an environment variable or the content of a file,
// trailing newline removed. Never logged.
std::string read_secret(const std::string& upstream, const std::string& env,
                        const std::string& file) {
  std::string value;
  if (!env.empty()) {
    const char* text = std::getenv(env.c_str());
    if (!text || !*text) {
      throw std::runtime_error("upstream '" + upstream + "': credentials: environment variable " +
                               env + " is not set");
    }
    value = text;
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw std::runtime_error("upstream '" + upstream + "': credentials: cannot read '" + file +
                               "'");
    }
    value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r'))
    value.pop_back();
  if (value.empty() || value.find_first_of("\r\n") != std::string::npos) {
    throw std::runtime_error("upstream '" + upstream +
                             "': credentials: the secret is empty or spans several lines");
  }
  return value;
}

void add_credentials(const std::string& upstream, const UpstreamCredentialsConfig& credentials,
                     upstream::HttpUpstreamOptions& options, std::size_t workers) {
  if (credentials.token_url.empty()) {
    const std::string value = read_secret(upstream, credentials.env, credentials.file);
    options.headers[credentials.header] =
        credentials.scheme.empty() ? value : credentials.scheme + " " + value;
    log::info("upstream '", upstream, "': sends its own ", credentials.header, " (from ",
              credentials.env.empty() ? "file " + credentials.file : "$" + credentials.env, ")");
    return;
  }
  upstream::ClientCredentialsOptions oauth;
  oauth.token_url = credentials.token_url;
  oauth.client_id = credentials.client_id;
  oauth.client_secret =
      read_secret(upstream, credentials.client_secret_env, credentials.client_secret_file);
  oauth.scope = credentials.scope;
  oauth.audience = credentials.audience;
  oauth.ca_file = options.ca_file;
  oauth.verify_tls = options.verify_tls;
  options.credentials =
      std::make_shared<upstream::ClientCredentialsSource>(upstream, std::move(oauth), workers);
  log::info("upstream '", upstream, "': sends access tokens from ", credentials.token_url,
            " (client credentials, client '", credentials.client_id, "')");
}

gateway::Selection selection_of(const VirtualSelection& configured) {
  gateway::Selection selection;
  selection.include = configured.include;
  selection.exclude = configured.exclude;
  selection.tags = configured.tags;
  // `include: []` publishes nothing of that kind; neither an include list nor tags: all of it.
  selection.everything = !configured.included && configured.tags.empty();
  return selection;
}

gateway::VirtualMember virtual_member(const VirtualMemberConfig& configured) {
  gateway::VirtualMember member;
  member.upstream = configured.upstream;
  member.prefix = configured.prefix.value_or(configured.upstream);
  member.tools = selection_of(configured.tools);
  member.prompts = selection_of(configured.prompts);
  member.resources = selection_of(configured.resources);
  member.renames = configured.rename;
  member.descriptions = configured.descriptions;
  for (const auto& [tool, hints] : configured.annotations) {
    mcp::Json annotations = mcp::Json::object();
    for (const auto& [key, value] : hints)
      std::visit([&, &key = key](const auto& setting) { annotations[key] = setting; }, value);
    member.annotations.emplace(tool, std::move(annotations));
  }
  return member;
}

std::vector<std::unique_ptr<upstream::Upstream>> make_upstreams(
    const Config& config, std::size_t workers,
    const std::shared_ptr<http::OverloadStats>& overload_stats) {
  std::vector<std::unique_ptr<upstream::Upstream>> upstreams;
  const auto& timeouts = config.timeouts;
  for (const auto& definition : config.upstreams) {
    if (const auto* http_config = std::get_if<HttpUpstreamConfig>(&definition.transport)) {
      upstream::HttpUpstreamOptions options;
      options.name = definition.name;
      options.url = http_config->url;
      options.ca_file = http_config->ca_file;
      options.verify_tls = http_config->verify_tls;
      options.headers = http_config->headers;
      options.protocol = definition.protocol;
      if (http_config->credentials)
        add_credentials(definition.name, *http_config->credentials, options, workers);
      options.connect_timeout = timeouts.upstream_connect;
      options.response_timeout = timeouts.upstream_response;
      options.max_message_bytes = config.limits.max_upstream_message_bytes;
      upstreams.push_back(upstream::make_http_upstream(std::move(options), workers));
      log::info("upstream '", definition.name, "': Streamable HTTP ", http_config->url);
    } else {
      const auto& stdio_config = std::get<StdioUpstreamConfig>(definition.transport);
      upstream::StdioUpstreamOptions options;
      options.name = definition.name;
      options.command = {stdio_config.command, stdio_config.args, stdio_config.env,
                         stdio_config.working_directory};
      options.max_message_bytes = config.limits.max_upstream_message_bytes;
      options.max_buffered_messages = config.limits.max_buffered_messages;
      options.max_buffered_bytes = config.limits.max_stream_buffer_bytes;
      options.restart_backoff_initial = timeouts.stdio_restart_backoff_initial;
      options.restart_backoff_max = timeouts.stdio_restart_backoff_max;
      options.shutdown_grace = timeouts.stdio_shutdown_grace;
      options.session_idle = timeouts.stdio_session_idle;
      options.response_timeout = timeouts.upstream_response;
      options.max_processes = stdio_config.max_processes;
      options.max_processes_per_caller = stdio_config.max_processes_per_caller;
      options.protocol = definition.protocol;
      options.overload_stats = overload_stats;
      upstreams.push_back(upstream::make_stdio_upstream(std::move(options)));
      std::string command = stdio_config.command;
      for (const auto& arg : stdio_config.args)
        command += " " + arg;
      log::info("upstream '", definition.name, "': stdio `", command,
                "` (one process per session; 2026-07-28 requests share one)");
    }
  }
  // Virtual servers last: their members are the upstreams above, which the gateway owns as long
  // as it owns them.
  for (const auto& definition : config.virtual_servers) {
    std::vector<gateway::VirtualMember> members;
    std::vector<upstream::Upstream*> member_upstreams;
    std::string names;
    for (const auto& member : definition.members) {
      const auto found =
          std::find_if(upstreams.begin(), upstreams.end(),
                       [&](const auto& candidate) { return candidate->name() == member.upstream; });
      member_upstreams.push_back(found->get());
      members.push_back(virtual_member(member));
      names += (names.empty() ? "" : ", ") + member.upstream;
    }
    auto catalog = std::make_shared<const gateway::VirtualCatalog>(
        definition.name, definition.separator, definition.instructions, std::move(members));
    gateway::VirtualServerOptions options;
    options.member_timeout = definition.member_timeout;
    options.search_discovery = definition.search_discovery;
    upstreams.push_back(
        gateway::make_virtual_server(std::move(catalog), std::move(member_upstreams), options));
    log::info("virtual server '", definition.name, "': ", names);
  }
  return upstreams;
}

bool is_url(const std::string& location) {
  return location.rfind("https://", 0) == 0 || location.rfind("http://", 0) == 0;
}

// The authenticator for `auth:` (or the console's), or null when authorization is off. Start-up
// errors throw.
std::shared_ptr<const identity::Authenticator> make_authenticator(const AuthConfig& auth,
                                                                  std::string_view what = "auth") {
  if (!auth.enabled()) return nullptr;
  identity::AuthenticatorOptions options;
  // Keys at a URL are fetched by the gateway on first use; a file is read now.
  if (!is_url(auth.jwks)) options.keys = identity::KeySet::read_file(auth.jwks);
  options.issuer = auth.issuer;
  options.audiences = auth.audiences;
  options.leeway = std::chrono::duration_cast<std::chrono::seconds>(auth.leeway);
  options.required_scopes = auth.scopes;
  log::info(what, ": bearer tokens from '", auth.issuer, "' (keys from ", auth.jwks,
            ") are required");
  return std::make_shared<const identity::Authenticator>(std::move(options));
}

std::shared_ptr<gateway::RemoteJwks> make_remote_jwks(const AuthConfig& auth,
                                                      std::size_t worker_count) {
  gateway::RemoteJwksOptions jwks;
  jwks.url = auth.jwks;
  jwks.ca_file = auth.jwks_ca_file;
  jwks.min_refresh_interval =
      std::chrono::duration_cast<std::chrono::seconds>(auth.jwks_refresh_interval);
  return std::make_shared<gateway::RemoteJwks>(std::move(jwks), worker_count);
}

// A rule whose only approver is the console refuses every call it asks about when no console is
// configured: say so at start-up rather than at the first such call.
void warn_about_console_approvers(const policy::Policy& policy, bool console_enabled) {
  if (console_enabled) return;
  for (const auto& rule : policy.rules()) {
    if (rule.approver_console && !rule.approver_user) {
      log::warn("policy: rule '", rule.id, "' (", rule.file, ":", rule.line,
                ") is approved at the security console, but no console is configured: the calls "
                "it asks about are refused");
    }
  }
}

// This replica's name for approvers and logs: $MEMBRANE_REPLICA, else the host name (a pod's
// name in Kubernetes).
std::string replica_name() {
  if (const char* name = std::getenv("MEMBRANE_REPLICA"); name && *name) return name;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0]) return host;
  return "membrane";
}

// The security console (console:), or null when it is off.
std::unique_ptr<console::ConsoleService> make_console(
    const Config& config, std::size_t worker_count,
    std::shared_ptr<const identity::Authenticator> gateway_authenticator,
    std::shared_ptr<gateway::RemoteJwks> gateway_keys, std::shared_ptr<console::DecisionFeed> feed,
    std::shared_ptr<gateway::ConsoleApprovals> approvals) {
  const ConsoleConfig& settings = config.console;
  if (!settings.enabled) return nullptr;
  console::ConsoleOptions options;
  std::string issuers;
  if (settings.auth) {
    console::ConsoleIssuer issuer;
    issuer.authenticator = make_authenticator(*settings.auth, "console");
    if (is_url(settings.auth->jwks))
      issuer.remote_keys = make_remote_jwks(*settings.auth, worker_count);
    options.issuers.push_back(std::move(issuer));
    issuers = "'" + settings.auth->issuer + "'";
  } else if (gateway_authenticator) {
    options.issuers.push_back({std::move(gateway_authenticator), std::move(gateway_keys)});
    issuers = "'" + config.auth.issuer + "' (the gateway's auth)";
  }
  if (!settings.token_key_file.empty()) {
    identity::AuthenticatorOptions local;
    local.issuer = "membrane-console";
    local.audiences = {"membrane-console"};
    local.keys = identity::KeySet(
        identity::TransactionTokenService::load_or_create_keys(settings.token_key_file));
    options.issuers.push_back(
        {std::make_shared<const identity::Authenticator>(std::move(local)), {}});
    issuers += std::string(issuers.empty() ? "" : " and ") + "'membrane-console' (keys in " +
               settings.token_key_file + ")";
  }
  options.audit_scope = settings.audit_scope;
  options.approve_scope = settings.approve_scope;
  options.audit_file = config.audit.file;
  options.audit_patterns = settings.audit_files;
  if (!settings.audit_jwks.empty()) {
    options.checkpoint_keys = identity::KeySet::read_file(settings.audit_jwks, true);
  } else if (!config.audit.key_file.empty()) {
    options.checkpoint_keys = identity::KeySet(
        identity::TransactionTokenService::load_or_create_keys(config.audit.key_file));
  }
  options.max_scan_bytes = settings.max_scan_bytes;
  options.feed = std::move(feed);
  options.approvals = std::move(approvals);
  options.replica = replica_name();
  options.trace_link = settings.trace_link;
  options.loopback_hosts_only = is_loopback_host(config.admin->host);
  log::info("console: /console on the admin listener for tokens from ", issuers, " with scope ",
            settings.audit_scope, " (", settings.approve_scope, " to answer approvals)");
  return std::make_unique<console::ConsoleService>(std::move(options));
}

std::shared_ptr<const identity::TransactionTokenService> make_transaction_service(
    const TxnConfig& txn) {
  if (!txn.enabled()) return nullptr;
  identity::TransactionTokenOptions options;
  options.signing_keys = identity::TransactionTokenService::load_or_create_keys(txn.key_file);
  options.trust_domain = txn.trust_domain;
  options.workload = txn.workload;
  options.lifetime = std::chrono::duration_cast<std::chrono::seconds>(txn.lifetime);
  if (!txn.trusted_jwks.empty()) options.trusted = identity::KeySet::read_file(txn.trusted_jwks);
  log::info("txn: transaction tokens for trust domain '", txn.trust_domain, "', key '",
            options.signing_keys.front().kid(), "' from ", txn.key_file, ", one per ",
            txn.per_call ? "call" : "transaction");
  return std::make_shared<const identity::TransactionTokenService>(std::move(options));
}

// /metrics, /healthz and /readyz for operators and Kubernetes probes, apart from agent traffic.
// With a console, /console too.
std::unique_ptr<http::Server> make_admin_server(http::WorkerPool& workers,
                                                const ListenerConfig& listener,
                                                std::shared_ptr<telemetry::Metrics> metrics,
                                                const gateway::Gateway& gateway,
                                                console::ConsoleService* console) {
  http::ServerOptions options;
  options.host = listener.host;
  options.port = listener.port;
  auto server = std::make_unique<http::Server>(
      workers, std::move(options),
      [metrics, &gateway, console](http::Request& request, const http::RequestOrigin&,
                                   http::Responder& out) -> awaitable<void> {
        const std::string_view target = request.target();
        const std::string_view path = target.substr(0, target.find('?'));
        if (console && console::ConsoleService::serves(path)) {
          co_await console->handle(request, out);
          co_return;
        }
        http::Response response{http::bhttp::status::ok, 11};
        if (path == "/metrics") {
          response.set(http::bhttp::field::content_type,
                       "text/plain; version=0.0.4; charset=utf-8");
          response.body() = metrics->exposition();
        } else if (path == "/healthz") {
          response.set(http::bhttp::field::content_type, "application/json");
          response.body() = R"({"status":"ok"})";
        } else if (path == "/readyz") {
          response.set(http::bhttp::field::content_type, "application/json");
          const std::string problem = gateway.not_ready_reason();
          if (!problem.empty()) response.result(http::bhttp::status::service_unavailable);
          response.body() = std::string(R"({"status":")") +
                            (problem.empty() ? std::string("ready") : problem) + "\"}";
        } else {
          response.result(http::bhttp::status::not_found);
          response.set(http::bhttp::field::content_type, "text/plain");
          response.body() = console ? "not found: the admin listener serves /metrics, /healthz, "
                                      "/readyz and /console/\n"
                                    : "not found: the admin listener serves /metrics, /healthz "
                                      "and /readyz\n";
        }
        response.prepare_payload();
        co_await out.send(std::move(response));
      });
  server->start();
  const auto endpoint = server->local_endpoint();
  log::info(
      "admin listening on http://", endpoint.address().to_string(), ":", endpoint.port(),
      console ? " (/metrics, /healthz, /readyz, /console/)" : " (/metrics, /healthz, /readyz)");
  return server;
}

// Every client connection costs a descriptor, and usually one more for its upstream connection;
// stdio children cost three. The soft limit is often 1024 while the hard one is far higher:
// raise it (as nginx's worker_rlimit_nofile does) so that limits.max_connections, not EMFILE,
// is what stops new connections.
void raise_descriptor_limit(std::size_t max_connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  const auto wanted = static_cast<rlim_t>(max_connections) * 2 + 256;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    log::warn("limits.max_connections is ", max_connections, " but only ", limit.rlim_cur,
              " file descriptors are allowed (ulimit -n); connections may fail with 'too many "
              "open files' before the limit refuses them: raise the descriptor limit to at least ",
              wanted, " or lower limits.max_connections");
  }
}

}  // namespace

int serve(const Config& config) {
  log::Level level;
  if (log::parse_level(config.log_level, level)) log::set_level(level);
  ::signal(SIGPIPE, SIG_IGN);
  json::set_max_depth(config.limits.max_json_depth);
  upstream::ChildProcess::kill_children_on_crash();
  // A file-size limit (RLIMIT_FSIZE) must show as a failed write of the audit log, not kill us.
  ::signal(SIGXFSZ, SIG_IGN);

  const unsigned worker_count = config.worker_threads
                                    ? config.worker_threads
                                    : std::max(1u, std::thread::hardware_concurrency());

  // Declaration order is destruction order in reverse. The workers' contexts are declared first
  // and freed last: the upstreams, pools and clients below own sockets and timers on them. Their
  // coroutine frames end earlier, at `shutdown_workers`, before the gateway and the upstreams
  // those frames use.
  http::WorkerPool workers(worker_count);
  gateway::GatewayOptions options;
  options.origin_policy =
      http::OriginPolicy(config.security.allowed_origins, config.security.allowed_hosts,
                         is_loopback_host(config.listen.host));
  options.sealer = make_sealer(config.session);
  options.session_max_age = config.session.max_age;
  options.sse_keep_alive = config.timeouts.sse_keep_alive;
  options.max_buffered_messages = config.limits.max_buffered_messages;
  options.approval_timeout = config.policy.approval_timeout;
  // Overload protection (docs/overload.md).
  const auto& limits = config.limits;
  const auto overload_stats = std::make_shared<http::OverloadStats>();
  http::BufferBudget::process().configure(limits.max_stream_buffer_bytes,
                                          limits.max_buffered_bytes);
  const auto retry_after = std::chrono::duration_cast<std::chrono::seconds>(limits.retry_after);
  options.admission.max_streams = limits.max_streams;
  options.admission.max_sessions = limits.max_sessions;
  options.admission.max_sessions_per_caller = limits.max_sessions_per_caller;
  options.admission.session_idle = std::chrono::ceil<std::chrono::seconds>(limits.session_idle);
  options.admission.retry_after = retry_after;
  options.overload_stats = overload_stats;
  options.stdio_session_idle = config.timeouts.stdio_session_idle;
  raise_descriptor_limit(limits.max_connections);
  options.authenticator = make_authenticator(config.auth);
  if (options.authenticator && is_url(config.auth.jwks))
    options.remote_jwks = make_remote_jwks(config.auth, worker_count);
  options.public_url = config.auth.public_url;
  options.default_upstream = config.default_upstream;
  std::shared_ptr<cluster::RedisClient> redis;
  cluster::RedisOptions redis_options;
  if (config.cluster.enabled()) {
    std::string error;
    auto url = cluster::RedisUrl::parse(config.cluster.redis_url, error);
    if (!url) throw ConfigError(SourceLocation{config.source, 0, 0}, "cluster.redis.url: " + error);
    url->password = redis_password(config.cluster);
    redis_options.connect_timeout = config.cluster.redis_timeout;
    redis_options.command_timeout = config.cluster.redis_timeout;
    redis = std::make_shared<cluster::RedisClient>(*url, redis_options, worker_count);
    options.rate_limiter =
        cluster::make_redis_rate_limiter(redis, config.cluster.key_prefix + "limit:");
    log::info("cluster: rate limits and approval answers shared through ", url->to_string(),
              " (rate-limited calls ",
              config.cluster.deny_when_redis_down ? "refused" : "forwarded",
              " when it does not answer)");
  }
  for (const auto& upstream : config.upstreams) {
    if (!upstream.scopes.empty()) options.upstream_scopes[upstream.name] = upstream.scopes;
  }
  // A virtual server reaches each of its members: its callers need every member's scopes.
  for (const auto& server : config.virtual_servers) {
    std::vector<std::string> scopes;
    for (const auto& member : server.members) {
      const auto found = options.upstream_scopes.find(member.upstream);
      if (found == options.upstream_scopes.end()) continue;
      for (const auto& scope : found->second) {
        if (std::find(scopes.begin(), scopes.end(), scope) == scopes.end()) scopes.push_back(scope);
      }
    }
    if (!scopes.empty()) options.upstream_scopes[server.name] = std::move(scopes);
  }
  {
    gateway::EndedSessions::Options ended;
    ended.file = config.session.ended_file;
    ended.redis = redis;
    ended.redis_options = redis_options;
    ended.key_prefix = config.cluster.key_prefix;
    options.ended_sessions = std::make_shared<gateway::EndedSessions>(std::move(ended));
    // Start-up is the time to learn that the file cannot be used.
    options.ended_sessions->load_file();
    const bool fixed_key =
        !config.session.key_file.empty() || std::getenv(config.session.key_env.c_str());
    if (fixed_key && config.session.ended_file.empty() && !redis) {
      log::warn(
          "sessions: ids ended with DELETE are refused until this process stops; set "
          "session.ended_file (or cluster.redis with replicas) so that a restart or "
          "another replica with the same session key refuses them too");
    }
  }
  auto ended_sessions = options.ended_sessions;
  gateway::FilterChain filters;
  // Spans and audit records name the task an exchange concerns; nothing else reads it.
  if (!config.otel.endpoint.empty() || !config.audit.file.empty())
    filters.add(std::make_unique<gateway::TaskFilterFactory>());
  std::shared_ptr<otel::OtlpExporter> exporter;
  if (!config.otel.endpoint.empty()) {
    otel::OtlpOptions otlp;
    otlp.endpoint = config.otel.endpoint;
    otlp.headers = config.otel.headers;
    otlp.service_name = config.otel.service_name;
    otlp.service_version = MEMBRANE_VERSION_TEXT;
    otlp.queue_capacity = config.otel.queue;
    exporter = std::make_shared<otel::OtlpExporter>(std::move(otlp));
    log::info("otel: spans to ", exporter->url());
    filters.add(std::make_unique<gateway::TraceFilterFactory>(
        exporter,
        gateway::TraceCapture{config.otel.capture_arguments, config.otel.capture_results}));
  }
  if (auto service = make_transaction_service(config.txn)) {
    options.published_keys = service->public_jwks().dump();
    if (!config.txn.exchange_clients.empty()) {
      options.token_exchange = std::make_shared<const identity::TokenExchange>(
          service, identity::KeySet::read_file(config.txn.exchange_clients));
      log::info("txn: token exchange at POST /txn/token for the workloads in ",
                config.txn.exchange_clients);
    }
    gateway::TransactionFilterOptions txn_options;
    txn_options.service = std::move(service);
    txn_options.per_call = config.txn.per_call;
    txn_options.context_arguments = config.txn.context;
    filters.add(std::make_unique<gateway::TransactionFilterFactory>(std::move(txn_options)));
  }
  std::shared_ptr<gateway::ConsoleApprovals> console_approvals;
  if (config.console.enabled) {
    console_approvals = std::make_shared<gateway::ConsoleApprovals>(
        gateway::ConsoleApprovals::Options{config.console.approval_timeout, replica_name()});
  }
  gateway::PolicyFilterFactory* policy_filter = nullptr;  // owned by the filter chain
  std::shared_ptr<gateway::ToolCatalog> tool_catalog;
  const PolicySource policy_source{
      config.policy.paths,
      config.policy.default_verdict == "deny" ? policy::Verdict::deny : policy::Verdict::allow,
      config.policy.allow_empty, config.policy.pins};
  if (!config.policy.paths.empty()) {
    // Start-up is the time for exceptions: a broken policy file stops the gateway here.
    auto loaded = load_policy(policy_source);
    log::info("policy: ", loaded->rule_count(), " rules from ", config.policy.paths.size(),
              " path(s), ", config.policy.shadow ? "shadow" : "enforce", " mode, default ",
              config.policy.default_verdict);
    if (!loaded->limit_rules().empty()) {
      log::info("policy: ", loaded->limit_rules().size(), " rate limit(s), buckets kept ",
                redis ? "in Redis, shared by every replica" : "in this process");
    }
    tool_catalog = std::make_shared<gateway::ToolCatalog>(
        config.policy.pins.empty() ? mcp::ToolPins() : mcp::read_pins_file(config.policy.pins));
    log::info("policy: tools pinned ", !config.policy.pins.empty() ? "by " + config.policy.pins
                                       : redis
                                           ? std::string("when first listed by any replica (Redis)")
                                           : std::string("when first listed"));
    warn_about_console_approvers(*loaded, config.console.enabled);
    auto policy = std::make_unique<gateway::PolicyFilterFactory>(
        std::move(loaded), config.policy.shadow, tool_catalog, console_approvals);
    policy_filter = policy.get();
    filters.add(std::move(policy));
    // Rate limits come after the policy's own verdict (and an approval): only calls that would be
    // forwarded spend tokens.
    if (!options.rate_limiter) options.rate_limiter = cluster::make_local_rate_limiter();
    filters.add(std::make_unique<gateway::RateLimitFilterFactory>(
        options.rate_limiter, config.policy.shadow,
        config.cluster.deny_when_redis_down ? gateway::RateLimitFilterFactory::StoreDown::deny
                                            : gateway::RateLimitFilterFactory::StoreDown::allow));
  }
  filters.add(std::make_unique<gateway::AccessLogFilterFactory>());
  auto metrics = std::make_shared<telemetry::Metrics>();
  if (config.admin) filters.add(std::make_unique<gateway::MetricsFilterFactory>(metrics));
  std::shared_ptr<audit::AuditLog> audit_log;
  std::shared_ptr<console::DecisionFeed> decision_feed;
  if (!config.audit.file.empty()) {
    audit::AuditOptions audit_options;
    audit_options.path = config.audit.file;
    audit_options.fsync = config.audit.fsync_every_record ? audit::FsyncPolicy::every_record
                                                          : audit::FsyncPolicy::none;
    audit_options.rotate_bytes = config.audit.rotate_bytes;
    audit_options.checkpoint_every = config.audit.checkpoint_every;
    audit_options.refuse_when_failing = config.audit.refuse_on_error;
    if (!config.audit.key_file.empty()) {
      audit_options.signing_key =
          identity::TransactionTokenService::load_or_create_keys(config.audit.key_file).front();
    }
    audit_log = std::make_shared<audit::AuditLog>(std::move(audit_options));
    if (config.console.enabled) {
      decision_feed = std::make_shared<console::DecisionFeed>();
      audit_log->on_written(
          [feed = decision_feed](std::string_view lines) { feed->publish(lines); });
    }
    log::info("audit: hash-chained records to ", config.audit.file,
              config.audit.fsync_every_record ? " (fsync every record)" : "",
              config.audit.refuse_on_error ? "; calls are refused while it cannot be written"
                                           : "; calls go on while it cannot be written");
    filters.add(std::make_unique<gateway::AuditFilterFactory>(
        audit_log,
        config.audit.refuse_on_error ? gateway::AuditOnError::refuse : gateway::AuditOnError::log));
    // A replica that refuses every call should get none: /readyz says so, and each probe tries
    // the log again.
    if (config.audit.refuse_on_error) {
      options.readiness_problem = [audit_log]() -> std::string {
        return audit_log->writable() || audit_log->retry() ? std::string()
                                                           : std::string("audit_unavailable");
      };
    }
  }
  // Before the gateway, which its coroutines may outlive no longer than the workers.
  const auto console = make_console(config, worker_count, options.authenticator,
                                    options.remote_jwks, decision_feed, console_approvals);
  gateway::Gateway gateway(std::move(options), make_upstreams(config, worker_count, overload_stats),
                           std::move(filters));

  // Before shutdown_workers: coroutines it spawned on the workers end while it exists.
  std::unique_ptr<gateway::ApprovalRelay> approval_relay;
  if (redis) {
    approval_relay = std::make_unique<gateway::ApprovalRelay>(
        gateway.client_requests(), redis, redis_options, config.cluster.key_prefix + "approvals");
  }

  const http::WorkerShutdown shutdown_workers(workers);
  http::ServerOptions server_options;
  server_options.host = config.listen.host;
  server_options.port = config.listen.port;
  server_options.max_body_bytes = config.limits.max_request_body_bytes;
  server_options.max_header_bytes = config.limits.max_request_header_bytes;
  server_options.header_read = config.timeouts.request_header_read;
  server_options.body_read = config.timeouts.request_body_read;
  server_options.keep_alive_idle = config.timeouts.keep_alive_idle;
  if (config.listen.tls) {
    server_options.tls = http::make_server_tls_context(config.listen.tls->certificate_file,
                                                       config.listen.tls->private_key_file);
  }
  server_options.error_response = [](http::bhttp::status status, std::string_view message) {
    http::Response response{status, 11};
    response.set(http::bhttp::field::content_type, "application/json");
    response.body() = mcp::make_error_response(nullptr, mcp::error_code::invalid_request, message);
    return response;
  };
  server_options.max_connections = limits.max_connections;
  server_options.retry_after = retry_after;
  server_options.overload = overload_stats;
  server_options.overload_response = [retry_after](std::string_view message) {
    gateway::Refusal refusal;
    refusal.limit = http::OverloadLimit::connections;
    refusal.retry_after = retry_after;
    refusal.message = std::string(message);
    return gateway::overload_response(refusal, nullptr);
  };
  http::Server server(
      workers, std::move(server_options),
      [&gateway](http::Request& request, const http::RequestOrigin& origin, http::Responder& out) {
        return gateway.handle(request, origin, out);
      });
  server.start();
  const auto endpoint = server.local_endpoint();
  const bool v6 = endpoint.address().is_v6();
  log::info("membrane listening on ", config.listen.tls ? "https" : "http", "://", v6 ? "[" : "",
            endpoint.address().to_string(), v6 ? "]" : "", ":", endpoint.port(), " (", worker_count,
            " worker", worker_count == 1 ? "" : "s", ")");

  std::unique_ptr<http::Server> admin;
  if (config.admin) {
    metrics->declare_gauge_function("membrane_streams_active", "SSE response streams open now.",
                                    [&gateway] { return gateway.active_streams(); });
    metrics->declare_gauge_function("membrane_legacy_sessions_active",
                                    "Legacy HTTP+SSE sessions open now.",
                                    [&gateway] { return gateway.legacy_sessions(); });
    std::vector<std::pair<std::string, std::function<double()>>> refusals;
    for (const auto limit : http::all_overload_limits) {
      refusals.emplace_back(std::string(http::limit_name(limit)), [overload_stats, limit] {
        return static_cast<double>(overload_stats->refusals(limit));
      });
    }
    metrics->declare_counter_functions(
        "membrane_overload_rejections_total",
        "Requests and connections refused because an overload limit (limits.*) was reached.",
        "limit", std::move(refusals));
    metrics->declare_gauge_function("membrane_connections_open", "Client connections open now.",
                                    [&server] { return server.open_connections(); });
    metrics->declare_gauge_function(
        "membrane_stream_slots_used",
        "Slots of limits.max_streams in use: SSE streams open, and requests waiting for their "
        "upstream.",
        [&gateway] { return gateway.admission().streams().in_use(); });
    metrics->declare_gauge_function(
        "membrane_sessions_live",
        "Sessions counted toward limits.max_sessions: in use, or used within limits.session_idle.",
        [&gateway] { return gateway.admission().sessions().live(); });
    metrics->declare_gauge_function(
        "membrane_buffered_event_bytes",
        "Bytes of upstream events queued for clients that read slower than their upstream writes.",
        [] { return http::BufferBudget::process().used(); });
    if (exporter) {
      metrics->declare_counter_function("membrane_otlp_spans_dropped_total",
                                        "Spans dropped: queue full, or the collector unreachable.",
                                        [exporter] { return exporter->dropped(); });
      metrics->declare_counter_function("membrane_otlp_spans_exported_total",
                                        "Spans the collector accepted.",
                                        [exporter] { return exporter->exported(); });
      metrics->declare_gauge_function(
          "membrane_otlp_spans_queued", "Spans waiting for the collector (at most otel.queue).",
          [exporter] { return static_cast<double>(exporter->queued()); });
    }
    if (audit_log) {
      metrics->declare_gauge_function(
          "membrane_audit_records_written", "Audit records written since start.",
          [audit_log] { return static_cast<double>(audit_log->records_written()); });
      metrics->declare_counter_function(
          "membrane_audit_write_failures_total",
          "Audit log writes that failed (disk full, I/O error): the log is failing.",
          [audit_log] { return audit_log->write_failures(); });
      metrics->declare_gauge_function(
          "membrane_audit_records_held_back",
          "Audit records waiting for the log to be writable again.",
          [audit_log] { return static_cast<double>(audit_log->records_held_back()); });
      metrics->declare_counter_function(
          "membrane_audit_records_lost_total",
          "Audit records lost: held back past audit's limit while the log could not be written.",
          [audit_log] { return audit_log->records_lost(); });
    }
    if (approval_relay) {
      auto* relay = approval_relay.get();
      metrics->declare_counter_function(
          "membrane_approval_answers_published_total",
          "Approval answers for questions another replica asked, published through Redis.",
          [relay] { return static_cast<double>(relay->published()); });
      metrics->declare_counter_function(
          "membrane_approval_answers_relayed_total",
          "Answers to this replica's approval questions that arrived through another replica.",
          [relay] { return static_cast<double>(relay->delivered()); });
    }
    if (console_approvals) {
      metrics->declare_gauge_function(
          "membrane_console_approvals_waiting",
          "Calls on this replica waiting for an approver at the security console.",
          [console_approvals] { return static_cast<double>(console_approvals->waiting()); });
    }
    admin = make_admin_server(workers, *config.admin, metrics, gateway, console.get());
  }

  // The memory of connections and streams that closed goes back to the system.
  const MemoryTrimmer trimmer([&server] { return server.open_connections(); },
                              std::chrono::seconds(1));

  auto& main_context = workers.context(0);
  if (tool_catalog && redis)
    tool_catalog->share_through(redis, config.cluster.key_prefix, main_context.get_executor());
  if (exporter) exporter->start();
  if (approval_relay) approval_relay->start(main_context.get_executor());
  if (console_approvals && redis) {
    console_approvals->share_through(redis, redis_options, config.cluster.key_prefix,
                                     main_context.get_executor());
  }
  ended_sessions->start(main_context.get_executor());
  // Shared with the reload coroutines, which end at the next wake-up after shutdown sets it.
  auto reload_stopped = std::make_shared<bool>(false);
  // SIGHUP reloads the policy; with no policy there is nothing to reload, and it must not kill us.
  if (!policy_filter) ::signal(SIGHUP, SIG_IGN);
  if (policy_filter) {
    asio::co_spawn(main_context,
                   reload_policy_on_signal(main_context.get_executor(), policy_source,
                                           *policy_filter, reload_stopped),
                   asio::detached);
    asio::co_spawn(main_context,
                   reload_policy_on_change(policy_source, *policy_filter, reload_stopped),
                   asio::detached);
  }
  asio::signal_set signals(main_context, SIGTERM, SIGINT);
  bool second_signal = false;  // touched only on main_context
  asio::co_spawn(
      main_context,
      [&]() -> awaitable<void> {
        auto [ec, signal_number] = co_await signals.async_wait(use_nothrow);
        if (ec) co_return;
        const auto delay = config.timeouts.shutdown_delay;
        std::string accepting;
        if (delay.count() > 0) {
          accepting = "still accepting for " + std::to_string(delay.count()) +
                      " ms while /readyz answers 503, then ";
        }
        log::info("received ", signal_number == SIGTERM ? "SIGTERM" : "SIGINT", ": draining (",
                  accepting, "up to ", config.timeouts.shutdown_drain.count(),
                  " ms for exchanges in flight)");
        // A second signal skips the delay and the drain.
        signals.async_wait([&](error_code second_ec, int) {
          if (!second_ec) {
            log::warn("second signal: closing all connections now");
            second_signal = true;
            server.close_all();
          }
        });
        *reload_stopped = true;
        // /readyz answers 503 from now on, while the listener still accepts: load balancers
        // take this replica out before connections to it are refused. Answers meanwhile end
        // their connection, so clients and proxies move to new ones (other replicas) first.
        gateway.set_draining();
        server.stop_keep_alive();
        asio::steady_timer poll(main_context);
        const auto accept_until = std::chrono::steady_clock::now() + delay;
        while (!second_signal && std::chrono::steady_clock::now() < accept_until) {
          poll.expires_after(std::chrono::milliseconds(20));
          co_await poll.async_wait(use_nothrow);
        }
        server.begin_drain();
        if (second_signal) server.close_all();
        co_await server.drain(config.timeouts.shutdown_drain);
        co_await gateway.stop_upstreams();
        if (approval_relay) approval_relay->stop();
        if (console_approvals) console_approvals->stop();
        ended_sessions->stop();
        // Idle Redis connections are closed now rather than at exit: the server has no more use
        // for them.
        if (redis) redis->close_idle();
        if (exporter) co_await exporter->flush_and_stop();
        if (admin) admin->close_all();
        signals.cancel();
        log::info("membrane stopped");
        workers.stop();
      },
      asio::detached);

  workers.run();
  return 0;
}

}  // namespace membrane::app
