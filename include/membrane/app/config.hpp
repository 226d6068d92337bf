// Typed gateway configuration: what `membrane serve` runs on, whether it came from a YAML file
// (`-c membrane.yaml`) or from the flag-only quick start. Parsed and validated once at start-up;
// everything downstream reads these structs, never YAML.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace membrane::app {

using Milliseconds = std::chrono::milliseconds;

// Where a configured value came from, so errors can name `file:line:col`.
struct SourceLocation {
  std::string file;  // "<flags>" for values given on the command line
  int line = 0;      // 1-based; 0 when unknown
  int column = 0;    // 1-based; 0 when unknown

  std::string to_string() const;
};

// Thrown only while loading configuration (never on the request path). what() is the full
// operator-facing message, already prefixed with `file:line:col: `.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const SourceLocation& where, const std::string& message);
  const SourceLocation& where() const { return where_; }

 private:
  SourceLocation where_;
};

struct TlsListenerConfig {
  std::string certificate_file;  // PEM chain
  std::string private_key_file;  // PEM key
};

struct ListenerConfig {
  std::string host = "127.0.0.1";  // IPv4/IPv6 literal or "localhost"
  std::uint16_t port = 8080;       // 0 = pick a free port (the bound port is logged)
  std::optional<TlsListenerConfig> tls;
};

// What the gateway presents to an upstream on its own behalf. Secrets are named (an environment
// variable or a file), never written in the config. Either a static value (env / file) sent in
// `header`, or an OAuth client-credentials grant at `token_url` sent as a Bearer token.
struct UpstreamCredentialsConfig {
  std::string header = "Authorization";  // static
  std::string scheme;                    // static: "Bearer" sends "Bearer <value>"
  std::string env;                       // static: value from this environment variable
  std::string file;                      // static: value from this file
  std::string token_url;                 // client credentials
  std::string client_id;
  std::string client_secret_env;
  std::string client_secret_file;
  std::string scope;
  std::string audience;
};

struct HttpUpstreamConfig {
  std::string url;         // http:// or https:// URL of the upstream MCP endpoint
  std::string ca_file;     // extra CA bundle (PEM) for https; system store when empty
  bool verify_tls = true;  // certificate + host name verification for https
  std::map<std::string, std::string> headers;  // static headers added to every upstream request
  std::optional<UpstreamCredentialsConfig> credentials;
};

struct StdioUpstreamConfig {
  std::string command;  // program to spawn (PATH lookup when it has no '/')
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // added to (and overriding) the gateway's environment
  std::string working_directory;           // empty = the gateway's own
  // Live processes (one per session) of this upstream, and of one caller; at a cap the least
  // recently used idle one is stopped, and when all are busy a new session gets 503 / 429.
  std::size_t max_processes = 32;
  std::size_t max_processes_per_caller = 8;
};

struct UpstreamConfig {
  std::string name;  // path segment: /mcp/<name>, /sse/<name>; [A-Za-z0-9._-]+
  std::variant<HttpUpstreamConfig, StdioUpstreamConfig> transport;
  std::vector<std::string> scopes;  // token scopes a caller needs for this upstream (auth on)
  // The MCP revision the server speaks: "" (auto: asked with server/discover on first use),
  // "2026-07-28" (stateless) or "2025-11-25" (sessions).
  std::string protocol;
  SourceLocation where;
};

// Which of one kind of a member's items (tools, prompts or resources) a virtual server publishes:
// every item unless `include` is given, then only those matching one of its globs, never those
// matching an `exclude` glob. Tools and prompts match by their own (upstream) name, resources by
// URI.
struct VirtualSelection {
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::vector<std::string> tags;  // tools and prompts carrying one of these tags, too
  bool included = false;          // an include list was given (an empty one publishes nothing)
};

// One upstream as a virtual server publishes it.
struct VirtualMemberConfig {
  std::string upstream;  // the name under `upstreams:`
  // What its tool and prompt names start with in the virtual server, followed by the virtual
  // server's separator; by default the upstream's name; "" publishes them as they are.
  std::optional<std::string> prefix;
  VirtualSelection tools;
  VirtualSelection prompts;
  VirtualSelection resources;
  // Upstream tool name -> published name (used as given: no prefix is added).
  std::map<std::string, std::string> rename;
  // Upstream tool name -> the description the model sees instead of the upstream's.
  std::map<std::string, std::string> descriptions;
  // Upstream tool name -> annotation members that replace the upstream's: `title` (text) and the
  // hints (readOnlyHint, destructiveHint, idempotentHint, openWorldHint: true or false).
  std::map<std::string, std::map<std::string, std::variant<bool, std::string>>> annotations;
  SourceLocation where;
};

// Several upstreams served as one MCP server at /mcp/<name> (and /sse/<name>).
struct VirtualServerConfig {
  std::string name;
  std::vector<VirtualMemberConfig> members;  // in the order they were written
  std::string separator = "_";               // between a member's prefix and its names
  // Instructions of the virtual server itself, put before its members'.
  std::string instructions;
  // How long one member may take over its part of a merged answer (initialize, a listing).
  Milliseconds member_timeout{10'000};
  // Progressive discovery: tools/list offers a search tool (and the tools searches found in the
  // session) instead of every tool.
  bool search_discovery = false;
  SourceLocation where;
};

struct LimitsConfig {
  std::size_t max_request_body_bytes = 4 * 1024 * 1024;
  std::size_t max_request_header_bytes = 16 * 1024;
  // Largest single SSE event / JSON body accepted from an upstream.
  std::size_t max_upstream_message_bytes = 16 * 1024 * 1024;
  // Messages held for a downstream stream that is not connected (stdio upstreams), per session.
  std::size_t max_buffered_messages = 1024;
  // Deepest nesting of arrays/objects accepted in any JSON the gateway parses (requests, upstream
  // messages, tokens): deeper documents are refused before they are parsed.
  std::size_t max_json_depth = 64;

  // Overload protection (docs/overload.md). Beyond each: 503 + Retry-After (429 for the
  // per-caller one) with a JSON-RPC error naming the limit, counted in /metrics.
  std::size_t max_connections = 4096;  // client connections open at once
  // SSE response streams open at once (request streams, GET/listen streams, legacy sessions),
  // requests waiting for an upstream's answer included (each may become a stream).
  std::size_t max_streams = 2048;
  std::size_t max_sessions = 10'000;          // live sessions on this replica
  std::size_t max_sessions_per_caller = 256;  // of one caller (token subject, else address)
  // A session with no request and no stream for this long stops counting as live.
  Milliseconds session_idle{30 * 60'000};
  // Bytes of upstream events queued for one client that reads slower than its upstream writes;
  // past it the upstream is read no further until the client catches up.
  std::size_t max_stream_buffer_bytes = 1024 * 1024;
  std::size_t max_buffered_bytes = 256 * 1024 * 1024;  // the same, all streams together
  Milliseconds retry_after{1'000};  // Retry-After of the 503 answers (whole seconds)
};

struct TimeoutsConfig {
  Milliseconds request_header_read{10'000};  // first byte of a request to end of its headers
  Milliseconds request_body_read{30'000};
  Milliseconds keep_alive_idle{75'000};     // idle keep-alive connection before it is closed
  Milliseconds upstream_connect{5'000};     // TCP + TLS handshake to an HTTP upstream
  Milliseconds upstream_response{300'000};  // request sent to response headers (or first message)
  Milliseconds sse_keep_alive{15'000};      // ':' comment on a quiet SSE stream
  // SIGTERM: /readyz answers 503 at once, but the listener keeps accepting and serving this
  // long (answers say Connection: close), so load balancers (Kubernetes endpoints, a proxy's
  // health checks) and keep-alive clients move to other replicas first.
  Milliseconds shutdown_delay{0};
  Milliseconds shutdown_drain{15'000};  // then: in-flight exchanges get this long
  Milliseconds stdio_restart_backoff_initial{250};
  Milliseconds stdio_restart_backoff_max{30'000};
  Milliseconds stdio_shutdown_grace{2'000};  // stdin closed -> SIGTERM -> SIGKILL steps
  // A stdio child nobody used for this long is stopped; its session stays valid (the next
  // request starts a new child and replays initialize).
  Milliseconds stdio_session_idle{30 * 60'000};
};

struct SecurityConfig {
  // Allowed `Origin` values, e.g. "https://app.example.com", "http://localhost:*" (port
  // wildcard). Requests without Origin are allowed (non-browser clients). Empty = loopback
  // origins only.
  std::vector<std::string> allowed_origins;
  // Allowed `Host` header values ("name" or "name:port", "*" port wildcard allowed).
  // Empty = loopback names when listening on loopback, any host otherwise.
  std::vector<std::string> allowed_hosts;
};

struct SessionConfig {
  // Secret the session-sealing key is derived from (HKDF-SHA256). Read from key_file, else the
  // environment variable named by key_env, else generated randomly at start-up (sessions then do
  // not survive a restart; a warning is logged).
  std::string key_file;
  std::string key_env = "MEMBRANE_SESSION_KEY";
  std::chrono::seconds max_age{24 * 3600};  // sealed ids older than this get 404
  // Where ids ended with DELETE are remembered across restarts (empty: in memory only; with
  // cluster.redis they are also shared by every replica).
  std::string ended_file;
};

struct PolicyConfig {
  // Policy files and directories (every *.yaml below a directory). Empty = no policy: every call
  // is forwarded.
  std::vector<std::string> paths;
  bool shadow = false;                    // mode: shadow records decisions but blocks nothing
  std::string default_verdict = "allow";  // when no rule holds: allow | deny
  // An `ask` verdict waits this long for the human's answer before refusing the call.
  Milliseconds approval_timeout{120'000};
  // A policy with no rules and no limits under default_verdict allow judges nothing: refused at
  // start-up and on reload (a directory emptied by mistake must not open everything) unless this
  // says the empty set is meant.
  bool allow_empty = false;
  // Tool pins the operator committed (membrane policy pin); empty: tools are pinned the first
  // time they are listed (in this process, or in Redis with cluster.redis).
  std::string pins;
};

// The gateway as an OAuth resource server. Off unless `issuer` is set.
struct AuthConfig {
  bool enabled() const { return !issuer.empty(); }
  std::string issuer;                  // `iss` of accepted tokens
  std::vector<std::string> audiences;  // accepted `aud` values: the gateway's resource URL(s)
  std::string jwks;                    // the issuer's keys: a JWKS file or an http(s) URL
  Milliseconds jwks_refresh_interval{30'000};  // URL: at most one fetch per interval
  std::string jwks_ca_file;     // URL over https: extra CA bundle (PEM); system store when empty
  Milliseconds leeway{60'000};  // clock skew allowed on exp / nbf / iat
  std::vector<std::string> scopes;  // needed for every upstream
  std::string public_url;           // base URL in protected-resource metadata (else Host)
};

// Transaction tokens minted by the gateway for every call. Off unless `key_file` is set.
struct TxnConfig {
  bool enabled() const { return !key_file.empty(); }
  std::string key_file;                   // private signing key(s); created when missing
  std::string trust_domain = "membrane";  // `aud` of the tokens
  std::string workload = "membrane";      // `req_wl`
  Milliseconds lifetime{300'000};
  // per: call mints a token (and a transaction) for every call; the default, per: transaction,
  // mints one per transaction (a client-declared one, else the session) and reuses it.
  bool per_call = false;
  std::vector<std::string> context;  // argument names recorded in tctx
  std::string trusted_jwks;          // JWKS file of other services whose tokens are kept
  // JWKS file of the workloads that may exchange tokens at POST /txn/token (off when empty).
  std::string exchange_clients;
};

// The tamper-evident audit log. Off unless `file` is set.
struct AuditConfig {
  std::string file;
  bool fsync_every_record = false;  // fsync: every (each line on disk before the next) | none
  std::size_t rotate_bytes = 0;     // rotate: past this size a new file continues the chain
  std::string key_file;             // signs checkpoints (ES256 JWK/JWKS; created when missing)
  std::uint64_t checkpoint_every = 1000;  // records between signed checkpoints
  // on_error: while the log cannot be written, calls are refused (true, the default: no call
  // without its record) or go on with the failure logged and counted (false).
  bool refuse_on_error = true;
};

// The security console at /console on the admin listener (docs/console.md). Off unless enabled.
struct ConsoleConfig {
  bool enabled = false;
  // Who may open it: tokens from this issuer; the gateway's `auth` when unset.
  std::optional<AuthConfig> auth;
  // A local issuer besides (or instead of) `auth`: tokens signed with this key (created when
  // missing; `membrane token mint --key FILE --iss membrane-console`) for iss membrane-console.
  std::string token_key_file;
  std::string audit_scope = "membrane:audit";      // to read records, feed, charts, approvals
  std::string approve_scope = "membrane:approve";  // to answer approvals (with audit_scope)
  // Audit files to read besides audit.file and its rotations (other replicas' logs on a shared
  // volume): paths or glob patterns.
  std::vector<std::string> audit_files;
  // Keys the checkpoints are verified with (a JWKS file); audit.key_file's public key by default.
  std::string audit_jwks;
  // The tracing UI's page for a trace, with {trace_id} where the id goes: the console links
  // records to their traces (none when empty).
  std::string trace_link;
  Milliseconds approval_timeout{300'000};  // a call nobody answers at the console is refused
  std::uint64_t max_scan_bytes = std::uint64_t{2} << 30;  // what one search may read
};

// State shared by every replica, in Redis: rate-limit buckets, and the answers to approvals that
// reach another replica than the one asking. Off unless `redis_url` is set.
struct ClusterConfig {
  bool enabled() const { return !redis_url.empty(); }
  std::string redis_url;  // redis://[user:@]host[:port][/db]; no password in it
  // The password (AUTH): read from redis_password_file, else from this environment variable
  // when it is set; none otherwise.
  std::string redis_password_env = "MEMBRANE_REDIS_PASSWORD";
  std::string redis_password_file;
  std::string key_prefix = "membrane:";
  Milliseconds redis_timeout{250};  // connect, and each command
  // A call that rate limits apply to, when Redis does not answer: forwarded unlimited (false)
  // or refused (true).
  bool deny_when_redis_down = false;
};

struct Config {
  ListenerConfig listen;
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  SecurityConfig security;
  SessionConfig session;
  PolicyConfig policy;
  AuthConfig auth;
  TxnConfig txn;
  AuditConfig audit;
  ClusterConfig cluster;
  // OTLP/HTTP trace export; off when the endpoint is empty.
  struct Otel {
    std::string endpoint;
    std::map<std::string, std::string> headers;
    std::string service_name = "membrane";
    bool capture_arguments = false;  // capture: [arguments, results] — they may hold secrets
    bool capture_results = false;
    // queue: spans waiting for the collector, at most; past it new spans are dropped (counted).
    std::size_t queue = 8192;
  } otel;
  // The admin listener (/metrics, /healthz, /readyz); none when unset.
  std::optional<ListenerConfig> admin;
  ConsoleConfig console;
  std::vector<UpstreamConfig> upstreams;
  std::vector<VirtualServerConfig> virtual_servers;
  // The upstream also served at /mcp and /sse, for clients that cannot use a path of their own;
  // empty = none.
  std::string default_upstream;
  unsigned worker_threads = 0;     // 0 = one per hardware thread
  std::string log_level = "info";  // error | warn | info | debug
  std::string source;              // file the config came from, or "<flags>"
};

// Loads and validates a YAML config file. Throws ConfigError naming file:line:col on any
// syntax error, unknown key, wrong type, out-of-range value or duplicate upstream name.
Config load_config_file(const std::string& path);

// Same, from YAML text (`source_name` is used in error messages).
Config load_config_text(const std::string& yaml_text, const std::string& source_name);

// Parses one `--upstream` flag value: `NAME=URL` or `NAME=stdio:COMMAND ARGS…` (arguments split
// on whitespace, with "double" and 'single' quotes grouping words). Throws ConfigError.
UpstreamConfig parse_upstream_flag(const std::string& value);

// Parses one `--virtual` flag value: `NAME=UPSTREAM,UPSTREAM…` (each member whole, under its
// default prefix). Throws ConfigError; the members are checked with the rest of the config.
VirtualServerConfig parse_virtual_flag(const std::string& value);

// Parses `HOST:PORT`, `[IPV6]:PORT` or `:PORT` for --listen. Throws ConfigError.
ListenerConfig parse_listen_flag(const std::string& value);

// A duration flag such as --shutdown-delay 5s (0s allowed). Throws ConfigError naming the flag.
Milliseconds parse_duration_flag(std::string_view flag, const std::string& text);
// --redis URL into cluster.redis_url, checked; a password in the URL is refused.
void set_redis_url_flag(const std::string& text, ClusterConfig& cluster);

// Checks cross-field rules (unique names, TLS files readable, ...). Throws ConfigError.
void validate(const Config& config);

}  // namespace membrane::app
