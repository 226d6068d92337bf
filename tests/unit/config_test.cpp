// Unit tests for the YAML configuration loader and the --upstream / --listen flag parsers.
#include "membrane/app/config.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

using namespace membrane::app;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// A file in the temp directory that is removed when the test ends, pass or fail.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& contents, const std::string& suffix = ".yaml") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("membrane-config-test-" + std::to_string(::getpid()) + "-" +
             std::to_string(counter++) + suffix);
    std::ofstream(path_) << contents;
  }
  ~TemporaryFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

constexpr const char* kMinimalUpstreams =
    "upstreams:\n"
    "  everything:\n"
    "    url: http://127.0.0.1:3001/mcp\n";

Config load(const std::string& yaml) {
  return load_config_text(yaml, "test.yaml");
}

// The full message of the ConfigError that loading `yaml` throws ("" when it loads fine).
std::string error_loading(const std::string& yaml) {
  try {
    load(yaml);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

SourceLocation location_of_error_loading(const std::string& yaml) {
  try {
    load(yaml);
  } catch (const ConfigError& error) {
    return error.where();
  }
  return {};
}

std::string error_from_upstream_flag(const std::string& value) {
  try {
    parse_upstream_flag(value);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

std::string error_from_listen_flag(const std::string& value) {
  try {
    parse_listen_flag(value);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

std::string error_validating(const Config& config) {
  try {
    validate(config);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

Config flag_config_with_one_upstream() {
  Config config;
  config.source = "<flags>";
  config.upstreams.push_back(parse_upstream_flag("everything=http://127.0.0.1:3001/mcp"));
  return config;
}

}  // namespace

// ---- SourceLocation / ConfigError -----------------------------------------------------------

TEST_CASE("A source location prints as file:line:col") {
  CHECK(SourceLocation{"membrane.yaml", 3, 7}.to_string() == "membrane.yaml:3:7");
}

TEST_CASE("A source location without a line prints only the file") {
  CHECK(SourceLocation{"<flags>", 0, 0}.to_string() == "<flags>");
}

TEST_CASE("A config error message starts with its location") {
  const ConfigError error(SourceLocation{"a.yaml", 2, 5}, "bad thing");
  CHECK(std::string(error.what()) == "a.yaml:2:5: bad thing");
  CHECK(error.where().line == 2);
}

// ---- Loading: what a valid file produces ----------------------------------------------------

TEST_CASE("A file with only upstreams gets the documented defaults") {
  const Config config = load(kMinimalUpstreams);
  CHECK(config.listen.host == "127.0.0.1");
  CHECK(config.listen.port == 8080);
  CHECK_FALSE(config.listen.tls.has_value());
  CHECK(config.worker_threads == 0);
  CHECK(config.log_level == "info");
  CHECK(config.limits.max_request_body_bytes == 4 * 1024 * 1024);
  CHECK(config.timeouts.upstream_response == Milliseconds(300'000));
  CHECK(config.timeouts.shutdown_delay == Milliseconds(0));
  CHECK(config.timeouts.shutdown_drain == Milliseconds(15'000));
  CHECK(config.session.key_env == "MEMBRANE_SESSION_KEY");
  CHECK(config.source == "test.yaml");
}

TEST_CASE("An upstream with a url becomes an HTTP upstream") {
  const Config config = load(
      "upstreams:\n"
      "  remote:\n"
      "    url: https://mcp.example.com/mcp\n"
      "    verify_tls: false\n"
      "    headers: {Authorization: Bearer abc}\n");
  REQUIRE(config.upstreams.size() == 1);
  const auto& upstream = config.upstreams.front();
  CHECK(upstream.name == "remote");
  const auto& http = std::get<HttpUpstreamConfig>(upstream.transport);
  CHECK(http.url == "https://mcp.example.com/mcp");
  CHECK_FALSE(http.verify_tls);
  CHECK(http.headers.at("Authorization") == "Bearer abc");
}

TEST_CASE("An upstream URL scheme is stored in lower case") {
  const Config config = load("upstreams:\n  a: {url: 'HTTPS://Example.com/mcp'}\n");
  CHECK(std::get<HttpUpstreamConfig>(config.upstreams.front().transport).url ==
        "https://Example.com/mcp");
}

TEST_CASE("An upstream with a command becomes a stdio upstream") {
  const Config config = load(
      "upstreams:\n"
      "  local:\n"
      "    command: node\n"
      "    args: [server.js, --port, 3000]\n"
      "    env: {DEBUG: '1'}\n");
  const auto& stdio = std::get<StdioUpstreamConfig>(config.upstreams.front().transport);
  CHECK(stdio.command == "node");
  CHECK(stdio.args == std::vector<std::string>{"server.js", "--port", "3000"});
  CHECK(stdio.env.at("DEBUG") == "1");
}

TEST_CASE("protocol names the revision of an HTTP or a stdio upstream; auto is the default") {
  const Config config = load(
      "upstreams:\n"
      "  remote: {url: 'https://mcp.example.com/mcp', protocol: '2026-07-28'}\n"
      "  local: {command: node, protocol: '2025-11-25'}\n"
      "  found: {command: node, protocol: auto}\n"
      "  unsaid: {command: node}\n");
  REQUIRE(config.upstreams.size() == 4);
  CHECK(config.upstreams[0].protocol == "2026-07-28");
  CHECK(config.upstreams[1].protocol == "2025-11-25");
  CHECK(config.upstreams[2].protocol.empty());
  CHECK(config.upstreams[3].protocol.empty());
}

TEST_CASE("An unknown protocol is refused at its line") {
  const std::string error = error_loading(
      "upstreams:\n"
      "  local:\n"
      "    command: node\n"
      "    protocol: '2024-11-05'\n");
  CHECK_THAT(error, Contains(":4:"));
  CHECK_THAT(error, Contains("'2024-11-05' is not a revision the gateway speaks to an upstream"));
}

TEST_CASE("Upstreams keep the order of the file") {
  const Config config = load(
      "upstreams:\n"
      "  zeta: {url: 'http://a/mcp'}\n"
      "  alpha: {command: node}\n");
  REQUIRE(config.upstreams.size() == 2);
  CHECK(config.upstreams[0].name == "zeta");
  CHECK(config.upstreams[1].name == "alpha");
}

TEST_CASE("An upstream remembers the position of its name") {
  const Config config = load(std::string("log_level: debug\n") + kMinimalUpstreams);
  CHECK(config.upstreams.front().where.to_string() == "test.yaml:3:3");
}

TEST_CASE("A listen string sets host and port") {
  const Config config = load(std::string("listen: 0.0.0.0:9000\n") + kMinimalUpstreams);
  CHECK(config.listen.host == "0.0.0.0");
  CHECK(config.listen.port == 9000);
}

TEST_CASE("A bracketed IPv6 listen address is stored without brackets") {
  const Config config = load(std::string("listen: '[::1]:8443'\n") + kMinimalUpstreams);
  CHECK(config.listen.host == "::1");
  CHECK(config.listen.port == 8443);
}

TEST_CASE("A listen map sets host and port separately") {
  const Config config =
      load(std::string("listen: {host: localhost, port: 0}\n") + kMinimalUpstreams);
  CHECK(config.listen.host == "localhost");
  CHECK(config.listen.port == 0);
}

TEST_CASE("Sizes accept bytes and binary and decimal suffixes") {
  const Config config = load(std::string("limits:\n"
                                         "  max_request_body: 2MiB\n"
                                         "  max_request_header: 8192\n"
                                         "  max_upstream_message: 3 MB\n"
                                         "  max_buffered_messages: 10\n") +
                             kMinimalUpstreams);
  CHECK(config.limits.max_request_body_bytes == 2 * 1024 * 1024);
  CHECK(config.limits.max_request_header_bytes == 8192);
  CHECK(config.limits.max_upstream_message_bytes == 3'000'000);
  CHECK(config.limits.max_buffered_messages == 10);
}

TEST_CASE("Durations accept ms, s, m and h") {
  const Config config = load(std::string("timeouts:\n"
                                         "  stdio_restart_backoff_initial: 100ms\n"
                                         "  upstream_connect: 7s\n"
                                         "  keep_alive_idle: 2m\n"
                                         "  upstream_response: 1h\n"
                                         "  stdio_session_idle: 45m\n"
                                         "  shutdown_delay: 5s\n") +
                             kMinimalUpstreams);
  CHECK(config.timeouts.stdio_restart_backoff_initial == Milliseconds(100));
  CHECK(config.timeouts.upstream_connect == Milliseconds(7'000));
  CHECK(config.timeouts.keep_alive_idle == Milliseconds(120'000));
  CHECK(config.timeouts.upstream_response == Milliseconds(3'600'000));
  CHECK(config.timeouts.stdio_session_idle == Milliseconds(45 * 60'000));
  CHECK(config.timeouts.shutdown_delay == Milliseconds(5'000));
}

TEST_CASE("shutdown_delay may be zero; other durations may not") {
  const Config config = load(std::string("timeouts:\n  shutdown_delay: 0s\n") + kMinimalUpstreams);
  CHECK(config.timeouts.shutdown_delay == Milliseconds(0));
  CHECK_THAT(error_loading(std::string("timeouts:\n  shutdown_drain: 0s\n") + kMinimalUpstreams),
             StartsWith("test.yaml:2:19: ") && Contains("greater than zero"));
}

TEST_CASE("Session max_age is read as whole seconds") {
  const Config config =
      load(std::string("session: {max_age: 2h, key_env: MY_KEY}\n") + kMinimalUpstreams);
  CHECK(config.session.max_age == std::chrono::seconds(7200));
  CHECK(config.session.key_env == "MY_KEY");
}

TEST_CASE("The policy section sets paths, mode, default verdict and approval timeout") {
  const Config config = load(std::string("policy:\n"
                                         "  paths: [policies/default, extra.yaml]\n"
                                         "  mode: shadow\n"
                                         "  default_verdict: deny\n"
                                         "  approval_timeout: 90s\n") +
                             kMinimalUpstreams);
  CHECK(config.policy.paths == std::vector<std::string>{"policies/default", "extra.yaml"});
  CHECK(config.policy.shadow);
  CHECK(config.policy.default_verdict == "deny");
  CHECK(config.policy.approval_timeout == Milliseconds(90'000));
  CHECK(load(kMinimalUpstreams).policy.approval_timeout == Milliseconds(120'000));
  CHECK_THAT(error_loading(std::string("policy:\n  approval_timeout: 0s\n") + kMinimalUpstreams),
             StartsWith("test.yaml:2:21: ") && Contains("greater than zero"));
}

TEST_CASE("Security allow-lists are read as lists of strings") {
  const Config config =
      load(std::string("security:\n"
                       "  allowed_origins: [https://app.example.com, 'http://localhost:*']\n"
                       "  allowed_hosts: [mcp.example.com:8443]\n") +
           kMinimalUpstreams);
  CHECK(config.security.allowed_origins ==
        std::vector<std::string>{"https://app.example.com", "http://localhost:*"});
  CHECK(config.security.allowed_hosts == std::vector<std::string>{"mcp.example.com:8443"});
}

TEST_CASE("Workers and log level are read from the top level") {
  const Config config = load(std::string("workers: 3\nlog_level: warn\n") + kMinimalUpstreams);
  CHECK(config.worker_threads == 3);
  CHECK(config.log_level == "warn");
}

// ---- Loading: every error names file:line:col -----------------------------------------------

TEST_CASE("A YAML syntax error is reported at its position") {
  const std::string message = error_loading("upstreams:\n  a: [1, 2\n  b: 3\n");
  CHECK_THAT(message, StartsWith("test.yaml:3:"));
  CHECK_THAT(message, Contains("YAML syntax error"));
}

TEST_CASE("An unknown top-level key is reported with the allowed keys") {
  const std::string message = error_loading(std::string(kMinimalUpstreams) + "colour: blue\n");
  CHECK_THAT(message, StartsWith("test.yaml:4:1: unknown key 'colour'"));
  CHECK_THAT(message, Contains("allowed keys: listen, workers"));
}

TEST_CASE("A misspelt key gets a did-you-mean suggestion") {
  const std::string message =
      error_loading(std::string("lisen: 127.0.0.1:80\n") + kMinimalUpstreams);
  CHECK_THAT(message, Contains("did you mean 'listen'?"));
}

TEST_CASE("An unknown key inside an upstream names the upstream") {
  const std::string message = error_loading("upstreams:\n  local:\n    comand: node\n");
  CHECK_THAT(message, StartsWith("test.yaml:3:5: unknown key 'comand' in 'upstreams.local'"));
  CHECK_THAT(message, Contains("did you mean 'command'?"));
}

TEST_CASE("A duration without a unit says which units are accepted") {
  const std::string message =
      error_loading(std::string("timeouts:\n  sse_keep_alive: 15\n") + kMinimalUpstreams);
  CHECK_THAT(message,
             StartsWith("test.yaml:2:19: timeouts.sse_keep_alive: expected a duration like "
                        "15s, got '15'"));
  CHECK_THAT(message, Contains("ms, s, m or h"));
}

TEST_CASE("A duration that is not a number is rejected") {
  CHECK_THAT(error_loading(std::string("timeouts:\n  upstream_connect: abc\n") + kMinimalUpstreams),
             Contains("expected a duration like 15s, got 'abc'"));
}

TEST_CASE("A zero duration is rejected") {
  CHECK_THAT(error_loading(std::string("timeouts:\n  upstream_connect: 0s\n") + kMinimalUpstreams),
             Contains("must be greater than zero"));
}

TEST_CASE("A size with an unknown unit lists the accepted units") {
  const std::string message =
      error_loading(std::string("limits:\n  max_request_body: 4mb\n") + kMinimalUpstreams);
  CHECK_THAT(message, StartsWith("test.yaml:2:21: limits.max_request_body:"));
  CHECK_THAT(message, Contains("KiB, MiB, GiB"));
}

TEST_CASE("A size too large for memory is rejected") {
  CHECK_THAT(error_loading(std::string("limits:\n  max_request_body: 99999999999999999GiB\n") +
                           kMinimalUpstreams),
             Contains("too large"));
}

TEST_CASE("A missing upstreams key is reported at the top of the file") {
  const std::string message = error_loading("log_level: info\n");
  CHECK_THAT(message, StartsWith("test.yaml:1:1: missing required key 'upstreams'"));
}

TEST_CASE("An empty upstreams map is rejected") {
  CHECK_THAT(error_loading("upstreams: {}\n"), Contains("at least one upstream is required"));
}

TEST_CASE("An empty file is rejected with a hint") {
  CHECK_THAT(error_loading(""), StartsWith("test.yaml:1:1: the configuration is empty"));
}

TEST_CASE("A top level that is not a map is rejected") {
  CHECK_THAT(error_loading("- a\n- b\n"), Contains("expected a map of settings"));
}

TEST_CASE("A second YAML document is rejected") {
  CHECK_THAT(error_loading(std::string(kMinimalUpstreams) + "---\nlog_level: info\n"),
             Contains("only one YAML document is allowed"));
  CHECK_THAT(error_loading("log_level: info\n---\nlog_level: warn\n"),
             StartsWith("test.yaml:2:1: only one YAML document"));
}

// yaml-cpp 0.7's LoadAll never returns on these (found by the config fuzz target): a syntax error
// at the stray character instead.
TEST_CASE("Text the YAML parser cannot get past is a syntax error, not a hang") {
  for (const char* text : {",n\n: i", ",", "a: 1\n,\n"}) {
    INFO(text);
    CHECK_THAT(error_loading(text), Contains("YAML syntax error"));
  }
}

TEST_CASE("A duplicate upstream name points at the second one and the first line") {
  const std::string message = error_loading(
      "upstreams:\n"
      "  a: {url: 'http://x/mcp'}\n"
      "  a: {command: node}\n");
  CHECK_THAT(message, StartsWith("test.yaml:3:3: duplicate upstream name 'a'"));
  CHECK_THAT(message, Contains("first defined at line 2"));
}

TEST_CASE("A duplicate settings key is rejected") {
  CHECK_THAT(error_loading(std::string("workers: 1\nworkers: 2\n") + kMinimalUpstreams),
             StartsWith("test.yaml:2:1: duplicate key 'workers'"));
}

TEST_CASE("An upstream with both url and command is rejected") {
  const std::string message =
      error_loading("upstreams:\n  both:\n    url: http://a/mcp\n    command: node\n");
  CHECK_THAT(message, StartsWith("test.yaml:2:3: upstreams.both: give either 'url'"));
}

TEST_CASE("An upstream with neither url nor command is rejected") {
  CHECK_THAT(error_loading("upstreams:\n  empty:\n    args: [x]\n"),
             Contains("needs 'url' (HTTP upstream) or 'command' (stdio upstream)"));
}

TEST_CASE("An upstream without any definition is rejected") {
  CHECK_THAT(error_loading("upstreams:\n  bare:\n"),
             StartsWith("test.yaml:2:3: upstreams.bare: expected a map"));
}

TEST_CASE("A stdio-only key on an HTTP upstream is rejected") {
  CHECK_THAT(error_loading("upstreams:\n  h:\n    url: http://a/mcp\n    args: [x]\n"),
             Contains("'args' only applies to stdio upstreams"));
}

TEST_CASE("An upstream name with a slash is rejected") {
  CHECK_THAT(error_loading("upstreams:\n  'a/b': {command: node}\n"),
             StartsWith("test.yaml:2:3: upstreams.a/b: upstream name 'a/b' may only contain"));
}

TEST_CASE("An ftp URL is rejected with its scheme named") {
  CHECK_THAT(error_loading("upstreams:\n  f:\n    url: ftp://a/mcp\n"),
             StartsWith("test.yaml:3:10: upstreams.f.url: unsupported URL scheme 'ftp'"));
}

TEST_CASE("A URL without a host is rejected") {
  CHECK_THAT(error_loading("upstreams:\n  f:\n    url: http:///mcp\n"), Contains("has no host"));
}

TEST_CASE("A URL with an out-of-range port is rejected") {
  CHECK_THAT(error_loading("upstreams:\n  f:\n    url: http://a:70000/mcp\n"),
             Contains("out of range"));
}

TEST_CASE("A URL with credentials is rejected in favour of headers") {
  CHECK_THAT(error_loading("upstreams:\n  f:\n    url: http://user:pw@a/mcp\n"),
             Contains("put them in 'headers'"));
}

TEST_CASE("A header the gateway manages cannot be configured") {
  CHECK_THAT(error_loading("upstreams:\n  f:\n    url: http://a/mcp\n    headers: {Host: x}\n"),
             Contains("set by the gateway"));
}

TEST_CASE("An invalid environment variable name points at the name") {
  CHECK_THAT(error_loading("upstreams:\n  a:\n    command: node\n    env: {A=B: x}\n"),
             StartsWith("test.yaml:4:11: upstreams.a.env.A=B: invalid environment variable name"));
}

TEST_CASE("verify_tls accepts only true or false") {
  CHECK_THAT(error_loading("upstreams:\n  f:\n    url: https://a/mcp\n    verify_tls: 'no'\n"),
             Contains("expected true or false"));
}

TEST_CASE("A wrong type names what was expected and what was found") {
  CHECK_THAT(error_loading("upstreams:\n  l:\n    command: node\n    args: server.js\n"),
             StartsWith("test.yaml:4:11: upstreams.l.args: expected a list of arguments, got "
                        "'server.js'"));
}

TEST_CASE("A quoted number is not accepted where a number is expected") {
  CHECK_THAT(error_loading(std::string("workers: '2'\n") + kMinimalUpstreams),
             Contains("remove the quotes"));
}

TEST_CASE("A listen host name other than localhost is rejected") {
  CHECK_THAT(error_loading(std::string("listen: example.com:80\n") + kMinimalUpstreams),
             Contains("listen host must be an IPv4 or IPv6 address or 'localhost'"));
}

TEST_CASE("A listen port above 65535 is rejected") {
  CHECK_THAT(error_loading(std::string("listen: {port: 65536}\n") + kMinimalUpstreams),
             StartsWith("test.yaml:1:16: listen.port: port 65536 is out of range"));
}

TEST_CASE("A TLS listener needs both certificate and private key") {
  CHECK_THAT(error_loading(std::string("listen: {port: 1, tls: {certificate: c.pem}}\n") +
                           kMinimalUpstreams),
             Contains("missing required key 'private_key'"));
}

TEST_CASE("An unknown log level lists the valid ones") {
  CHECK_THAT(error_loading(std::string("log_level: verbose\n") + kMinimalUpstreams),
             Contains("use error, warn, info, debug"));
}

TEST_CASE("An origin with a path is rejected at its list position") {
  const std::string message = error_loading(
      std::string(
          "security:\n  allowed_origins:\n    - https://ok.example\n    - https://a.example/\n") +
      kMinimalUpstreams);
  CHECK_THAT(message, StartsWith("test.yaml:4:7: security.allowed_origins[1]:"));
  CHECK_THAT(message, Contains("no trailing '/'"));
}

TEST_CASE("A sub-second session max_age is rejected") {
  CHECK_THAT(error_loading(std::string("session: {max_age: 1500ms}\n") + kMinimalUpstreams),
             Contains("whole number of seconds"));
}

// ---- Loading: files and cross-field checks --------------------------------------------------

TEST_CASE("Loading a file names the file in errors") {
  const TemporaryFile file("upstreams:\n  a: {url: 'gopher://x'}\n");
  try {
    load_config_file(file.path());
    FAIL("expected a ConfigError");
  } catch (const ConfigError& error) {
    CHECK_THAT(error.what(), StartsWith(file.path() + ":2:"));
  }
}

TEST_CASE("A missing config file is reported by name") {
  CHECK_THROWS_WITH(load_config_file("/nonexistent/membrane.yaml"),
                    StartsWith("/nonexistent/membrane.yaml: cannot read config file"));
}

TEST_CASE("An unreadable TLS certificate is reported at its line") {
  const SourceLocation where = location_of_error_loading(
      std::string("listen:\n  port: 8443\n  tls:\n    certificate: /nonexistent/cert.pem\n"
                  "    private_key: /nonexistent/key.pem\n") +
      kMinimalUpstreams);
  CHECK(where.to_string() == "test.yaml:4:18");
}

TEST_CASE("Readable TLS files are accepted") {
  const TemporaryFile certificate("-----BEGIN CERTIFICATE-----\n", ".pem");
  const TemporaryFile key("-----BEGIN PRIVATE KEY-----\n", ".pem");
  const Config config = load("listen:\n  tls:\n    certificate: " + certificate.path() +
                             "\n    private_key: " + key.path() + "\n" + kMinimalUpstreams);
  REQUIRE(config.listen.tls.has_value());
  CHECK(config.listen.tls->certificate_file == certificate.path());
}

TEST_CASE("An unreadable ca_file is reported at its line") {
  CHECK_THAT(
      error_loading("upstreams:\n  a:\n    url: https://a/mcp\n    ca_file: /nonexistent/ca.pem\n"),
      StartsWith("test.yaml:4:14: upstreams.a.ca_file: cannot read CA file"));
}

TEST_CASE("An unreadable session key file is reported") {
  CHECK_THAT(
      error_loading(std::string("session: {key_file: /nonexistent/key}\n") + kMinimalUpstreams),
      Contains("cannot read session key file '/nonexistent/key': no such file"));
}

TEST_CASE("A restart backoff that starts above its maximum is rejected") {
  CHECK_THAT(error_loading(std::string("timeouts:\n  stdio_restart_backoff_initial: 1m\n"
                                       "  stdio_restart_backoff_max: 10s\n") +
                           kMinimalUpstreams),
             StartsWith("test.yaml:2:34: timeouts.stdio_restart_backoff_initial: must not exceed"));
}

TEST_CASE("Validation rejects a configuration without upstreams") {
  Config config;
  config.source = "<flags>";
  CHECK_THAT(error_validating(config), Contains("at least one upstream is required"));
}

TEST_CASE("Validation rejects two upstreams with the same name") {
  Config config = flag_config_with_one_upstream();
  config.upstreams.push_back(config.upstreams.front());
  CHECK_THAT(error_validating(config), Contains("duplicate upstream name 'everything'"));
}

TEST_CASE("Validation names the flag of an unreadable file given on the command line") {
  Config config = flag_config_with_one_upstream();
  config.session.key_file = "/nonexistent/key";
  CHECK_THAT(error_validating(config),
             StartsWith("<flags>: --session-key-file '/nonexistent/key': cannot read"));
}

TEST_CASE("Validation accepts a minimal flag configuration") {
  CHECK(error_validating(flag_config_with_one_upstream()).empty());
}

// ---- --upstream flag ------------------------------------------------------------------------

TEST_CASE("An --upstream URL value becomes an HTTP upstream") {
  const UpstreamConfig upstream = parse_upstream_flag("ev=http://127.0.0.1:3001/mcp");
  CHECK(upstream.name == "ev");
  CHECK(std::get<HttpUpstreamConfig>(upstream.transport).url == "http://127.0.0.1:3001/mcp");
  CHECK(upstream.where.file == "<flags>");
}

TEST_CASE("An --upstream stdio value is split into command and arguments") {
  const auto stdio = std::get<StdioUpstreamConfig>(
      parse_upstream_flag("local=stdio:node  server.js   stdio").transport);
  CHECK(stdio.command == "node");
  CHECK(stdio.args == std::vector<std::string>{"server.js", "stdio"});
}

TEST_CASE("Quotes group words in an --upstream stdio command") {
  const auto stdio = std::get<StdioUpstreamConfig>(
      parse_upstream_flag(R"(x=stdio:run "two words" 'single \quoted' a"b"c "" )").transport);
  CHECK(stdio.command == "run");
  CHECK(stdio.args == std::vector<std::string>{"two words", R"(single \quoted)", "abc", ""});
}

TEST_CASE("Backslashes escape characters in an --upstream stdio command") {
  const auto stdio = std::get<StdioUpstreamConfig>(
      parse_upstream_flag(R"(x=stdio:cat my\ file "say \"hi\"")").transport);
  CHECK(stdio.args == std::vector<std::string>{"my file", R"(say "hi")"});
}

TEST_CASE("An unterminated quote in an --upstream stdio command is an error") {
  CHECK_THAT(error_from_upstream_flag("x=stdio:node 'server.js"),
             Contains("unterminated single quote"));
  CHECK_THAT(error_from_upstream_flag("x=stdio:node \"server.js"),
             Contains("unterminated double quote"));
}

TEST_CASE("An --upstream with an unsupported scheme names the flag and the accepted schemes") {
  CHECK(
      error_from_upstream_flag("x=ftp://a") ==
      "<flags>: --upstream 'x=ftp://a': unsupported URL scheme 'ftp' (use http, https or stdio:)");
}

TEST_CASE("An --upstream without '=' explains the expected form") {
  CHECK_THAT(error_from_upstream_flag("http://a/mcp"), Contains("expected NAME=URL"));
}

TEST_CASE("An --upstream with an empty stdio command is an error") {
  CHECK_THAT(error_from_upstream_flag("x=stdio:   "), Contains("stdio: needs a command"));
}

TEST_CASE("An --upstream name with invalid characters is an error") {
  CHECK_THAT(error_from_upstream_flag("a b=http://x/mcp"), Contains("may only contain"));
}

// ---- --listen flag --------------------------------------------------------------------------

TEST_CASE("flag --listen accepts HOST:PORT") {
  const ListenerConfig listener = parse_listen_flag("0.0.0.0:9000");
  CHECK(listener.host == "0.0.0.0");
  CHECK(listener.port == 9000);
}

TEST_CASE("flag --listen accepts a bracketed IPv6 address") {
  const ListenerConfig listener = parse_listen_flag("[::1]:0");
  CHECK(listener.host == "::1");
  CHECK(listener.port == 0);
}

TEST_CASE("flag --listen with only a port keeps the loopback host") {
  const ListenerConfig listener = parse_listen_flag(":9000");
  CHECK(listener.host == "127.0.0.1");
  CHECK(listener.port == 9000);
}

TEST_CASE("flag --listen rejects an unbracketed IPv6 address") {
  CHECK_THAT(error_from_listen_flag("::1:80"), Contains("put IPv6 addresses in brackets"));
}

TEST_CASE("flag --listen rejects a value without a port") {
  CHECK_THAT(error_from_listen_flag("127.0.0.1"),
             StartsWith("<flags>: --listen '127.0.0.1': expected HOST:PORT"));
}

TEST_CASE("flag --listen rejects a port above 65535") {
  CHECK_THAT(error_from_listen_flag("127.0.0.1:65536"), Contains("out of range"));
}

TEST_CASE("auth and txn sections, and upstream scopes") {
  const Config config =
      load(std::string("auth:\n"
                       "  issuer: https://idp.example\n"
                       "  audience: [https://gw.example/mcp]\n"
                       "  jwks: idp.json\n"
                       "  leeway: 30s\n"
                       "  scopes: [mcp]\n"
                       "  public_url: https://gw.example/\n"
                       "txn:\n"
                       "  key_file: txn.json\n"
                       "  trust_domain: bank.example\n"
                       "  per: session\n"
                       "  context: [customer_id]\n"
                       "  lifetime: 2m\n"
                       "upstreams:\n"
                       "  ev:\n"
                       "    url: http://127.0.0.1:3001/mcp\n"
                       "    scopes: [mcp:admin]\n"));
  CHECK(config.auth.enabled());
  CHECK(config.auth.audiences == std::vector<std::string>{"https://gw.example/mcp"});
  CHECK(config.auth.leeway == Milliseconds(30'000));
  CHECK(config.auth.public_url == "https://gw.example");
  CHECK_FALSE(config.txn.per_call);
  CHECK(config.txn.trust_domain == "bank.example");
  CHECK(config.txn.context == std::vector<std::string>{"customer_id"});
  CHECK(config.upstreams.front().scopes == std::vector<std::string>{"mcp:admin"});
  CHECK_THAT(error_loading(std::string("auth:\n  issuer: https://idp\n") + kMinimalUpstreams),
             Contains("auth needs 'audience'"));
  CHECK_THAT(
      error_loading(std::string("txn:\n  key_file: k\n  lifetime: 1h\n") + kMinimalUpstreams),
      StartsWith("test.yaml:3:13: ") && Contains("minutes at most"));
  CHECK_THAT(
      error_loading(std::string("txn:\n  key_file: k\n  per: request\n") + kMinimalUpstreams),
      Contains("expected transaction or call"));
  CHECK(load(std::string("txn:\n  key_file: k\n  per: call\n") + kMinimalUpstreams).txn.per_call);
  CHECK_FALSE(load(std::string("txn:\n  key_file: k\n") + kMinimalUpstreams).txn.per_call);
}

TEST_CASE("cluster.redis: defaults, every key, and its mistakes at file:line:col") {
  const auto defaults = load(kMinimalUpstreams);
  CHECK_FALSE(defaults.cluster.enabled());
  CHECK(defaults.cluster.redis_password_env == "MEMBRANE_REDIS_PASSWORD");
  CHECK(defaults.cluster.key_prefix == "membrane:");
  CHECK(defaults.cluster.redis_timeout == Milliseconds(250));
  CHECK_FALSE(defaults.cluster.deny_when_redis_down);

  const auto config = load(std::string(kMinimalUpstreams) +
                           "cluster:\n"
                           "  redis:\n"
                           "    url: redis://membrane:@redis.example:6380/2\n"
                           "    password_file: /run/secrets/redis\n"
                           "    password_env: REDIS_PASS\n"
                           "    key_prefix: \"prod:\"\n"
                           "    timeout: 1s\n"
                           "    on_error: deny\n");
  CHECK(config.cluster.enabled());
  CHECK(config.cluster.redis_url == "redis://membrane:@redis.example:6380/2");
  CHECK(config.cluster.redis_password_file == "/run/secrets/redis");
  CHECK(config.cluster.redis_password_env == "REDIS_PASS");
  CHECK(config.cluster.key_prefix == "prod:");
  CHECK(config.cluster.redis_timeout == Milliseconds(1000));
  CHECK(config.cluster.deny_when_redis_down);

  const auto with = [](const std::string& redis_lines) {
    return error_loading(std::string(kMinimalUpstreams) + "cluster:\n  redis:\n" + redis_lines);
  };
  CHECK_THAT(
      with("    url: redis://:pw@h:6379\n"),
      Catch::StartsWith("test.yaml:6:10:") && Catch::Contains("password_env or password_file"));
  CHECK_THAT(with("    url: http://h:6379\n"), Catch::StartsWith("test.yaml:6:10:"));
  CHECK_THAT(with("    url: redis://h:99999\n"), Catch::StartsWith("test.yaml:6:10:"));
  CHECK_THAT(with("    timeout: 1s\n"), Catch::Contains("needs 'url'"));
  CHECK_THAT(with("    url: redis://h\n    on_error: maybe\n"),
             Catch::StartsWith("test.yaml:7:15:") && Catch::Contains("expected allow or deny"));
  CHECK_THAT(with("    url: redis://h\n    timeout: soon\n"), Catch::StartsWith("test.yaml:7:14:"));
  CHECK_THAT(with("    url: redis://h\n    sentinel: yes\n"), Catch::Contains("unknown key"));
}

// ---- virtual_servers ----------------------------------------------------------------------------

namespace {

constexpr const char* kTwoUpstreams =
    "upstreams:\n"
    "  a: {url: \"http://127.0.0.1:1/mcp\"}\n"
    "  b: {command: node}\n";

}  // namespace

TEST_CASE("A virtual server reads its members, selections, renames and overrides") {
  const Config config = load(std::string(kTwoUpstreams) +
                             "virtual_servers:\n"
                             "  wb:\n"
                             "    separator: \"__\"\n"
                             "    member_timeout: 2s\n"
                             "    instructions: both\n"
                             "    upstreams:\n"
                             "      a:\n"
                             "        prefix: first\n"
                             "        tools:\n"
                             "          include: [echo, \"get-*\"]\n"
                             "          exclude: [get-env]\n"
                             "          rename: {get-sum: add}\n"
                             "          descriptions: {echo: Says it back.}\n"
                             "          annotations: {echo: {readOnlyHint: true, title: Echo}}\n"
                             "        prompts: {include: []}\n"
                             "        resources: {exclude: [\"secret://*\"]}\n"
                             "      b:\n");
  REQUIRE(config.virtual_servers.size() == 1);
  const auto& server = config.virtual_servers[0];
  CHECK(server.name == "wb");
  CHECK(server.separator == "__");
  CHECK(server.member_timeout == std::chrono::seconds(2));
  CHECK(server.instructions == "both");
  CHECK(server.where.line == 5);
  REQUIRE(server.members.size() == 2);
  const auto& a = server.members[0];
  CHECK(a.upstream == "a");
  CHECK(a.prefix == "first");
  CHECK(a.tools.included);
  CHECK(a.tools.include == std::vector<std::string>{"echo", "get-*"});
  CHECK(a.tools.exclude == std::vector<std::string>{"get-env"});
  CHECK(a.rename.at("get-sum") == "add");
  CHECK(a.descriptions.at("echo") == "Says it back.");
  CHECK(std::get<bool>(a.annotations.at("echo").at("readOnlyHint")));
  CHECK(std::get<std::string>(a.annotations.at("echo").at("title")) == "Echo");
  CHECK(a.prompts.included);
  CHECK(a.prompts.include.empty());
  CHECK_FALSE(a.resources.included);
  const auto& b = server.members[1];
  CHECK(b.upstream == "b");
  CHECK_FALSE(b.prefix);
  CHECK_FALSE(b.tools.included);
  CHECK(b.where.line == 20);
}

TEST_CASE("A virtual server's members may be given as a list of names") {
  const Config config =
      load(std::string(kTwoUpstreams) + "virtual_servers:\n  wb:\n    upstreams: [a, b]\n");
  REQUIRE(config.virtual_servers.size() == 1);
  REQUIRE(config.virtual_servers[0].members.size() == 2);
  CHECK(config.virtual_servers[0].members[1].upstream == "b");
  CHECK(config.virtual_servers[0].separator == "_");
}

TEST_CASE("Virtual server mistakes are refused at their line") {
  const std::string head = std::string(kTwoUpstreams) + "virtual_servers:\n  wb:\n    upstreams:\n";
  CHECK_THAT(error_loading(head + "      c:\n"),
             Catch::Contains("test.yaml:7:7: virtual_servers.wb: upstream 'c' is not configured "
                             "(upstreams: a, b)"));
  CHECK_THAT(error_loading(head + "      a: {prefix: \"\"}\n      b: {prefix: \"\"}\n"),
             Catch::Contains("test.yaml:8:7:") &&
                 Catch::Contains("both publish their names without a prefix"));
  CHECK_THAT(error_loading(head + "      a: {prefix: x}\n      b: {prefix: x}\n"),
             Catch::Contains("share the prefix 'x'"));
  CHECK_THAT(error_loading(head + "      a: {tools: {rename: {t: b_t}}}\n      b:\n"),
             Catch::Contains("renamed 'b_t', which starts with 'b_'"));
  CHECK_THAT(error_loading(head + "      a: {tools: {rename: {t: \"bad name\"}}}\n"),
             Catch::Contains("test.yaml:7:") && Catch::Contains("may only contain letters"));
  CHECK_THAT(error_loading(head + "      a: {tools: {annotations: {t: {readOnlyHint: maybe}}}}\n"),
             Catch::Contains("expected true or false"));
  CHECK_THAT(error_loading(head + "      a: {tools: {color: red}}\n"),
             Catch::Contains("unknown key 'color'"));
  CHECK_THAT(
      error_loading(std::string(kTwoUpstreams) + "virtual_servers:\n  a:\n    upstreams: [b]\n"),
      Catch::Contains("test.yaml:5:3: virtual_servers.a: the name is already an upstream's"));
  CHECK_THAT(error_loading(std::string(kTwoUpstreams) +
                           "virtual_servers:\n  wb: {separator: \"/\", upstreams: [a]}\n"),
             Catch::Contains("the separator '/' may only contain"));
  CHECK_THAT(
      error_loading(std::string(kTwoUpstreams) + "virtual_servers:\n  wb: {upstreams: []}\n"),
      Catch::Contains("at least one upstream"));
  CHECK_THAT(error_loading(std::string(kTwoUpstreams) + "virtual_servers:\n  wb: {}\n"),
             Catch::Contains("needs 'upstreams'"));
}

TEST_CASE("A virtual server may combine an upstream declared 2026-07-28 only") {
  const Config config = load(
      "upstreams:\n  a: {url: \"http://127.0.0.1:1/mcp\", protocol: 2026-07-28}\n"
      "  b: {command: node}\nvirtual_servers:\n  wb: {upstreams: [a, b]}\n");
  REQUIRE(config.virtual_servers.size() == 1);
  CHECK(config.virtual_servers[0].members.size() == 2);
}
TEST_CASE("A virtual server's tool discovery is list or search") {
  const std::string head =
      std::string(kTwoUpstreams) + "virtual_servers:\n  wb:\n    upstreams: [a]\n";
  CHECK_FALSE(load(head).virtual_servers[0].search_discovery);
  CHECK(load(head + "    tool_discovery: search\n").virtual_servers[0].search_discovery);
  CHECK_FALSE(load(head + "    tool_discovery: list\n").virtual_servers[0].search_discovery);
  CHECK_THAT(error_loading(head + "    tool_discovery: magic\n"),
             Catch::Contains("test.yaml:7:21:") &&
                 Catch::Contains("'magic' is not list (every tool) or search"));
  CHECK_THAT(error_loading(head + "    member_timeout: 1ms\n"),
             Catch::Contains("must be between 100ms and 10m"));
}

TEST_CASE("Tools and prompts may be selected by tag, resources may not") {
  const std::string head = std::string(kTwoUpstreams) + "virtual_servers:\n  wb:\n    upstreams:\n";
  const Config config =
      load(head + "      a: {tools: {tags: [read-only]}, prompts: {tags: [x]}}\n");
  const auto& member = config.virtual_servers[0].members[0];
  CHECK(member.tools.tags == std::vector<std::string>{"read-only"});
  CHECK_FALSE(member.tools.included);
  CHECK(member.prompts.tags == std::vector<std::string>{"x"});
  CHECK_THAT(error_loading(head + "      a: {resources: {tags: [x]}}\n"),
             Catch::Contains("test.yaml:7:") && Catch::Contains("unknown key 'tags'"));
}
