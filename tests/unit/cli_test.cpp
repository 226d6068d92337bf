// Unit tests for the `membrane` command line. The flag syntax is relied on by scripts, so each
// accepted spelling has a test.
#include "membrane/app/cli.hpp"

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

// A config file in the temp directory, removed when the test ends.
class TemporaryConfigFile {
 public:
  explicit TemporaryConfigFile(const std::string& contents) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("membrane-cli-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
             ".yaml");
    std::ofstream(path_) << contents;
  }
  ~TemporaryConfigFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  TemporaryConfigFile(const TemporaryConfigFile&) = delete;
  TemporaryConfigFile& operator=(const TemporaryConfigFile&) = delete;

  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

constexpr const char* kValidConfig =
    "listen: 127.0.0.1:9100\n"
    "workers: 2\n"
    "upstreams:\n"
    "  everything:\n"
    "    url: http://127.0.0.1:3001/mcp\n";

std::string usage_error_for(const std::vector<std::string>& args) {
  try {
    parse_command_line(args);
  } catch (const UsageError& error) {
    return error.what();
  }
  return "";
}

}  // namespace

// ---- Verbs ----------------------------------------------------------------------------------

TEST_CASE("No arguments asks for help") {
  CHECK(parse_command_line({}).verb == Verb::help);
}

TEST_CASE("help, --help and -h ask for help") {
  CHECK(parse_command_line({"help"}).verb == Verb::help);
  CHECK(parse_command_line({"--help"}).verb == Verb::help);
  CHECK(parse_command_line({"-h"}).verb == Verb::help);
}

TEST_CASE("serve --help asks for help even with other flags") {
  CHECK(parse_command_line({"serve", "--help"}).verb == Verb::help);
  CHECK(parse_command_line({"serve", "--listen", "nonsense", "--help"}).verb == Verb::help);
}

TEST_CASE("version and --version ask for the version") {
  CHECK(parse_command_line({"version"}).verb == Verb::version);
  CHECK(parse_command_line({"--version"}).verb == Verb::version);
}

TEST_CASE("An unknown command is a usage error naming it") {
  CHECK_THAT(usage_error_for({"start"}), Contains("unknown command 'start'"));
}

TEST_CASE("A flag before the command is a usage error that shows where flags go") {
  CHECK_THAT(usage_error_for({"-c", "membrane.yaml"}), Contains("flags go after the command"));
}

// ---- serve without a config file ------------------------------------------------------------

TEST_CASE("serve with one --upstream uses the default listener") {
  const CommandLine command_line =
      parse_command_line({"serve", "--upstream", "ev=http://127.0.0.1:3001/mcp"});
  CHECK(command_line.verb == Verb::serve);
  CHECK(command_line.config.source == "<flags>");
  CHECK(command_line.config.listen.host == "127.0.0.1");
  CHECK(command_line.config.listen.port == 8080);
  REQUIRE(command_line.config.upstreams.size() == 1);
  CHECK(command_line.config.upstreams.front().name == "ev");
}

TEST_CASE("serve accepts --upstream several times in order") {
  const CommandLine command_line = parse_command_line(
      {"serve", "--upstream", "a=http://a/mcp", "--upstream", "b=stdio:node server.js stdio"});
  REQUIRE(command_line.config.upstreams.size() == 2);
  CHECK(command_line.config.upstreams[0].name == "a");
  const auto& stdio = std::get<StdioUpstreamConfig>(command_line.config.upstreams[1].transport);
  CHECK(stdio.command == "node");
  CHECK(stdio.args == std::vector<std::string>{"server.js", "stdio"});
}

TEST_CASE("Flags accept the --flag=value form") {
  const CommandLine command_line = parse_command_line(
      {"serve", "--upstream=a=http://a/mcp", "--listen=[::1]:9000", "--workers=4"});
  CHECK(command_line.config.upstreams.front().name == "a");
  CHECK(command_line.config.listen.host == "::1");
  CHECK(command_line.config.listen.port == 9000);
  CHECK(command_line.config.worker_threads == 4);
}

TEST_CASE("serve reads the security, log and worker flags") {
  const CommandLine command_line = parse_command_line(
      {"serve", "--upstream", "a=http://a/mcp", "--allow-origin", "https://app.example.com",
       "--allow-origin", "http://localhost:*", "--allow-host", "mcp.example.com", "--log-level",
       "debug", "--workers", "0"});
  CHECK(command_line.config.security.allowed_origins ==
        std::vector<std::string>{"https://app.example.com", "http://localhost:*"});
  CHECK(command_line.config.security.allowed_hosts == std::vector<std::string>{"mcp.example.com"});
  CHECK(command_line.config.log_level == "debug");
  CHECK(command_line.config.worker_threads == 0);
}

TEST_CASE("serve without -c or --upstream is a usage error") {
  CHECK_THAT(usage_error_for({"serve"}),
             Contains("needs either -c FILE or at least one --upstream"));
}

TEST_CASE("An unknown flag is a usage error naming it") {
  CHECK_THAT(usage_error_for({"serve", "--upstream", "a=http://a/mcp", "--lisen", "x"}),
             Contains("unknown flag '--lisen'"));
}

TEST_CASE("An unknown flag in --flag=value form is named without its value") {
  CHECK_THAT(usage_error_for({"serve", "--port=80"}), Contains("unknown flag '--port'"));
}

TEST_CASE("A flag at the end without its value is a usage error") {
  CHECK_THAT(usage_error_for({"serve", "--upstream"}), Contains("--upstream needs a value"));
}

TEST_CASE("A flag followed by another flag is missing its value") {
  CHECK_THAT(usage_error_for({"serve", "--listen", "--upstream", "a=http://a/mcp"}),
             Contains("--listen needs a value"));
}

TEST_CASE("A single-valued flag given twice is a usage error") {
  CHECK_THAT(usage_error_for(
                 {"serve", "--upstream", "a=http://a/mcp", "--listen", ":1", "--listen", ":2"}),
             Contains("--listen given more than once"));
}

TEST_CASE("A stray positional argument is a usage error") {
  CHECK_THAT(usage_error_for({"serve", "--upstream", "a=http://a/mcp", "extra"}),
             Contains("unexpected argument 'extra'"));
}

TEST_CASE("flag --tls-cert without --tls-key is a usage error") {
  CHECK_THAT(usage_error_for({"serve", "--upstream", "a=http://a/mcp", "--tls-cert", "c.pem"}),
             Contains("--tls-cert needs --tls-key"));
}

TEST_CASE("A bad --upstream value is a config error naming the flag") {
  CHECK_THROWS_WITH(parse_command_line({"serve", "--upstream", "x=ftp://a"}),
                    "<flags>: --upstream 'x=ftp://a': unsupported URL scheme 'ftp' (use http, "
                    "https or stdio:)");
}

TEST_CASE("A non-numeric --workers is a config error") {
  CHECK_THROWS_AS(parse_command_line({"serve", "--upstream", "a=http://a/mcp", "--workers", "x"}),
                  ConfigError);
}

TEST_CASE("An unknown --log-level is a config error naming the flag") {
  CHECK_THROWS_WITH(
      parse_command_line({"serve", "--upstream", "a=http://a/mcp", "--log-level", "loud"}),
      StartsWith("<flags>: --log-level 'loud': unknown log level"));
}

TEST_CASE("Duplicate --upstream names are a config error") {
  CHECK_THROWS_WITH(
      parse_command_line({"serve", "--upstream", "a=http://a/mcp", "--upstream", "a=http://b/mcp"}),
      Contains("duplicate upstream name 'a'"));
}

TEST_CASE("An unreadable --tls-cert is a config error naming the flag") {
  CHECK_THROWS_WITH(parse_command_line({"serve", "--upstream", "a=http://a/mcp", "--tls-cert",
                                        "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}),
                    StartsWith("<flags>: --tls-cert '/nonexistent/c.pem': cannot read"));
}

// ---- serve with a config file ---------------------------------------------------------------

TEST_CASE("serve -c loads the config file") {
  const TemporaryConfigFile file(kValidConfig);
  const CommandLine command_line = parse_command_line({"serve", "-c", file.path()});
  CHECK(command_line.verb == Verb::serve);
  CHECK(command_line.config.source == file.path());
  CHECK(command_line.config.listen.port == 9100);
  CHECK(command_line.config.upstreams.front().name == "everything");
}

TEST_CASE("flag --config is the long form of -c") {
  const TemporaryConfigFile file(kValidConfig);
  CHECK(parse_command_line({"serve", "--config", file.path()}).config.source == file.path());
  CHECK(parse_command_line({"serve", "--config=" + file.path()}).config.source == file.path());
}

TEST_CASE("flag --listen, --workers and --log-level override the config file") {
  const TemporaryConfigFile file(kValidConfig);
  const CommandLine command_line = parse_command_line(
      {"serve", "-c", file.path(), "--listen", ":0", "--workers", "1", "--log-level", "error"});
  CHECK(command_line.config.listen.port == 0);
  CHECK(command_line.config.worker_threads == 1);
  CHECK(command_line.config.log_level == "error");
}

TEST_CASE("the -c flag combined with --upstream is a usage error that says why") {
  const TemporaryConfigFile file(kValidConfig);
  CHECK_THAT(usage_error_for({"serve", "-c", file.path(), "--upstream", "a=http://a/mcp"}),
             Contains("--upstream cannot be combined with -c/--config: upstreams come from the "
                      "config file"));
}

TEST_CASE(
    "the -c flag combined with --allow-origin is a usage error pointing at the file setting") {
  const TemporaryConfigFile file(kValidConfig);
  CHECK_THAT(usage_error_for({"serve", "-c", file.path(), "--allow-origin", "https://a.example"}),
             Contains("security.allowed_origins"));
}

TEST_CASE("An error in the config file given to serve is a config error with its position") {
  const TemporaryConfigFile file("upstreams:\n  a:\n    url: http://a/mcp\n    verify: false\n");
  CHECK_THROWS_WITH(parse_command_line({"serve", "-c", file.path()}),
                    StartsWith(file.path() + ":4:5: unknown key 'verify'"));
}

// ---- config check ---------------------------------------------------------------------------

TEST_CASE("config check -c loads the file") {
  const TemporaryConfigFile file(kValidConfig);
  const CommandLine command_line = parse_command_line({"config", "check", "-c", file.path()});
  CHECK(command_line.verb == Verb::check_config);
  CHECK(command_line.config.upstreams.size() == 1);
}

TEST_CASE("config check without -c is a usage error") {
  CHECK_THAT(usage_error_for({"config", "check"}), Contains("needs -c FILE"));
}

TEST_CASE("config without a subcommand is a usage error") {
  CHECK_THAT(usage_error_for({"config"}), Contains("needs a subcommand"));
  CHECK_THAT(usage_error_for({"config", "show"}), Contains("unknown subcommand"));
}

TEST_CASE("config check rejects serve-only flags") {
  const TemporaryConfigFile file(kValidConfig);
  CHECK_THAT(usage_error_for({"config", "check", "-c", file.path(), "--listen", ":1"}),
             Contains("unknown flag '--listen'"));
}

TEST_CASE("config check reports a broken file as a config error with file:line:col") {
  const TemporaryConfigFile file("upstreams:\n  a: {url: [}\n");
  CHECK_THROWS_WITH(parse_command_line({"config", "check", "-c", file.path()}),
                    StartsWith(file.path() + ":2:"));
}

// ---- usage text -----------------------------------------------------------------------------

TEST_CASE("The usage text documents every flag") {
  const std::string usage = usage_text();
  for (const char* flag : {"-c, --config", "--listen", "--upstream", "stdio:", "--tls-cert",
                           "--tls-key", "--session-key-file", "--allow-origin", "--allow-host",
                           "--workers", "--log-level", "config check", "--version", "--help"}) {
    CHECK_THAT(usage, Contains(flag));
  }
}

// ---- Identity flags and token commands --------------------------------------------------------

TEST_CASE("The flags jwks, issuer and audience turn authorization on together") {
  const auto command =
      parse_command_line({"serve", "--upstream", "ev=http://127.0.0.1:3001/mcp", "--jwks",
                          "keys.json", "--issuer", "https://idp", "--audience", "https://gw",
                          "--audience", "https://gw2", "--txn-key", "txn.json"});
  CHECK(command.config.auth.enabled());
  CHECK(command.config.auth.jwks == "keys.json");
  CHECK(command.config.auth.issuer == "https://idp");
  CHECK(command.config.auth.audiences == std::vector<std::string>{"https://gw", "https://gw2"});
  CHECK(command.config.txn.enabled());
  CHECK(command.config.txn.key_file == "txn.json");
  CHECK_THAT(usage_error_for({"serve", "--upstream", "ev=http://127.0.0.1:3001/mcp", "--issuer",
                              "https://idp"}),
             Contains("together"));
}

TEST_CASE("identity flags cannot be combined with a config file") {
  TemporaryConfigFile file(kValidConfig);
  CHECK_THAT(usage_error_for({"serve", "-c", file.path(), "--txn-key", "txn.json"}),
             Contains("txn.key_file"));
  CHECK_THAT(usage_error_for({"serve", "-c", file.path(), "--jwks", "k.json"}),
             Contains("auth.jwks"));
}

TEST_CASE("token mint and verify parse their flags") {
  const auto mint =
      parse_command_line({"token", "mint", "--key", "k.json", "--sub", "alice", "--aud", "a",
                          "--aud", "b", "--lifetime", "2m", "--claims", "{}"});
  CHECK(mint.verb == Verb::token_mint);
  CHECK(mint.token.key_file == "k.json");
  CHECK(mint.token.audiences == std::vector<std::string>{"a", "b"});
  CHECK(mint.token.lifetime_seconds == 120);
  const auto verify = parse_command_line({"token", "verify", "-", "--jwks", "j.json"});
  CHECK(verify.verb == Verb::token_verify);
  CHECK(verify.token.token == "-");
  CHECK_THAT(usage_error_for({"token"}), Contains("needs a subcommand"));
  CHECK_THAT(usage_error_for({"token", "mint"}), Contains("--key FILE"));
  CHECK_THAT(usage_error_for({"token", "mint", "--key", "k", "--lifetime", "5"}),
             Contains("duration"));
  CHECK_THAT(usage_error_for({"token", "verify", "--jwks", "j"}), Contains("needs the token"));
  CHECK_THAT(usage_error_for({"token", "mint", "--key", "k", "--jwks", "j"}),
             Contains("unknown flag '--jwks'"));
}

TEST_CASE("serve --redis and --shutdown-delay set the cluster and shutdown settings") {
  const auto command_line =
      parse_command_line({"serve", "--upstream", "ev=http://127.0.0.1:3001/mcp", "--redis",
                          "redis://10.0.0.5:6379/1", "--shutdown-delay", "5s"});
  CHECK(command_line.config.cluster.redis_url == "redis://10.0.0.5:6379/1");
  CHECK(command_line.config.timeouts.shutdown_delay == std::chrono::milliseconds(5000));
  const auto error_for = [](const std::vector<std::string>& args) -> std::string {
    try {
      parse_command_line(args);
    } catch (const std::exception& error) {
      return error.what();
    }
    return "";
  };
  CHECK_THAT(error_for({"serve", "--upstream", "ev=http://h/mcp", "--redis", "redis://:pw@h"}),
             Catch::Contains("--redis") && Catch::Contains("MEMBRANE_REDIS_PASSWORD"));
  CHECK_THAT(error_for({"serve", "--upstream", "ev=http://h/mcp", "--shutdown-delay", "5"}),
             Catch::Contains("--shutdown-delay") && Catch::Contains("add a unit"));
  CHECK_THAT(usage_error_for({"serve", "-c", "x.yaml", "--redis", "redis://h"}),
             Catch::Contains("cluster.redis.url"));
}
