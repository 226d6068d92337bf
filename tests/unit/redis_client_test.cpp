#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "cluster/redis_client.hpp"
#include "live_redis.hpp"

using membrane::cluster::encode_command;
using membrane::cluster::RedisClient;
using membrane::cluster::RedisOptions;
using membrane::cluster::RedisReply;
using membrane::cluster::RedisResult;
using membrane::cluster::RedisScript;
using membrane::cluster::RedisSubscriber;
using membrane::cluster::RedisUrl;
using membrane::cluster::RespParser;
namespace asio = boost::asio;
using namespace std::chrono_literals;

// ---- a real redis-server for the live tests -------------------------------------------------
// The rate limiter tests use it too, through the functions at the end of this namespace (the
// unit tests have no shared header of their own).

namespace membrane::cluster::testing {

std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  REQUIRE(bound);
  return ntohs(address.sin_port);
}

namespace {
std::string find_redis_server() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const std::string candidate = std::string(rest.substr(0, colon)) + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
  }
  FAIL(
      "redis-server is not on PATH: the live Redis tests need Debian's redis-server package "
      "(apt-get install redis-server; CI installs it)");
  return {};
}

// Any reply at all (+PONG, or -NOAUTH with --requirepass) means the server is serving.
bool answers(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    timeval timeout{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char reply[64];
    ok = ::write(fd, "PING\r\n", 6) == 6 && ::read(fd, reply, sizeof reply) > 0;
  }
  ::close(fd);
  return ok;
}
}  // namespace

// A redis-server child on a free loopback port, without persistence; killed on destruction
// (and by the kernel should the test binary die first).
class LiveRedis {
 public:
  explicit LiveRedis(std::vector<std::string> extra_args = {})
      : executable_(find_redis_server()),
        port_(free_loopback_port()),
        extra_args_(std::move(extra_args)) {
    start();
  }
  ~LiveRedis() { stop(); }
  LiveRedis(const LiveRedis&) = delete;
  LiveRedis& operator=(const LiveRedis&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url(std::string_view credentials = "", std::string_view db = "") const {
    return "redis://" + std::string(credentials) + "127.0.0.1:" + std::to_string(port_) +
           std::string(db);
  }

  // Starts the server again on the same port (after stop()).
  void start() {
    std::vector<std::string> args{executable_, "--port",       std::to_string(port_),
                                  "--bind",    "127.0.0.1",    "--save",
                                  "",          "--appendonly", "no"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;
    for (auto& arg : args)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!answers(port_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("redis-server exited at start (port " << port_ << " taken?)");
      }
      if (std::chrono::steady_clock::now() > deadline) FAIL("redis-server did not answer in 10 s");
      std::this_thread::sleep_for(10ms);
    }
  }

  // SIGSTOP: connections stay open but nothing answers (a hung server, a partition).
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::string executable_;
  std::uint16_t port_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
};

std::shared_ptr<LiveRedis> start_live_redis() {
  return std::make_shared<LiveRedis>();
}

std::uint16_t live_redis_port(const LiveRedis& redis) {
  return redis.port();
}

}  // namespace membrane::cluster::testing

using membrane::cluster::testing::free_loopback_port;
using membrane::cluster::testing::LiveRedis;

namespace {

// Runs `task` on `io` to completion (other work, such as a subscriber, may stay pending).
template <class T>
T run(asio::io_context& io, membrane::awaitable<T> task) {
  std::optional<T> result;
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr error, T value) {
    failure = error;
    result = std::move(value);
    done = true;
  });
  io.restart();
  while (!done) {
    if (io.run_one_for(10s) == 0) FAIL("the coroutine did not finish within 10 s");
  }
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

template <class Predicate>
bool run_until(asio::io_context& io, Predicate done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.restart();
    io.run_for(10ms);
  }
  return true;
}

RedisUrl url_of(const std::string& text) {
  std::string error;
  auto url = RedisUrl::parse(text, error);
  INFO(error);
  REQUIRE(url);
  return *url;
}

RedisResult command(asio::io_context& io, RedisClient& client, std::vector<std::string> args) {
  return run(io, client.command(std::move(args)));
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// A reply as one line of text, so whole replies compare in one CHECK.
std::string show(const RedisReply& reply) {
  using Kind = RedisReply::Kind;
  switch (reply.kind) {
    case Kind::status:
      return "+" + reply.text;
    case Kind::error:
      return "-" + reply.text;
    case Kind::integer:
      return ":" + std::to_string(reply.integer);
    case Kind::bulk:
      return "$" + reply.text;
    case Kind::nil:
      return "nil";
    case Kind::array: {
      std::string out = "[";
      for (const auto& element : reply.elements)
        out += (out.size() > 1 ? "," : "") + show(element);
      return out + "]";
    }
  }
  return "?";
}

std::vector<std::string> take_all(RespParser& parser) {
  std::vector<std::string> replies;
  RedisReply reply;
  for (;;) {
    const auto status = parser.take(reply);
    if (status == RespParser::Status::error) return {"error: " + parser.error()};
    if (status == RespParser::Status::need_more) return replies;
    replies.push_back(show(reply));
  }
}

// What a parser fed `bytes` in one go says about them.
RespParser::Status parse_status(std::string_view bytes, std::string* error = nullptr) {
  RespParser parser;
  parser.feed(bytes);
  RedisReply reply;
  const auto status = parser.take(reply);
  if (error) *error = parser.error();
  return status;
}

const std::string every_kind =
    "+OK\r\n"
    "-ERR wrong number of arguments\r\n"
    ":-42\r\n"
    ":9223372036854775807\r\n"
    "$5\r\nhe\r\nl\r\n"
    "$0\r\n\r\n"
    "$-1\r\n"
    "*-1\r\n"
    "*0\r\n"
    "*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$3\r\nxyz\r\n"
    "*1\r\n*1\r\n*0\r\n";
const std::vector<std::string> every_kind_shown{"+OK",      "-ERR wrong number of arguments",
                                                ":-42",     ":9223372036854775807",
                                                "$he\r\nl", "$",
                                                "nil",      "nil",
                                                "[]",       "[:1,[+a,nil],$xyz]",
                                                "[[[]]]"};

}  // namespace

// ---- RESP2 ----------------------------------------------------------------------------------

TEST_CASE("every RESP2 reply type is parsed", "[redis]") {
  RespParser parser;
  parser.feed(every_kind);
  CHECK(take_all(parser) == every_kind_shown);
  CHECK(parser.buffered() == 0);
}

TEST_CASE("RESP2 replies split at any byte come out the same", "[redis]") {
  for (std::size_t split = 0; split <= every_kind.size(); ++split) {
    INFO("split at " << split);
    RespParser parser;
    parser.feed(std::string_view(every_kind).substr(0, split));
    auto replies = take_all(parser);
    parser.feed(std::string_view(every_kind).substr(split));
    for (auto& reply : take_all(parser))
      replies.push_back(std::move(reply));
    CHECK(replies == every_kind_shown);
  }
  RespParser byte_by_byte;
  std::vector<std::string> replies;
  for (const char byte : every_kind) {
    byte_by_byte.feed(std::string_view(&byte, 1));
    for (auto& reply : take_all(byte_by_byte))
      replies.push_back(std::move(reply));
  }
  CHECK(replies == every_kind_shown);
}

TEST_CASE("malformed RESP2 is a protocol error, and it sticks", "[redis]") {
  for (const char* bad : {"?x\r\n", ":12a\r\n", ":\r\n", "$-2\r\n", "*-5\r\n", "$x\r\n", "+OK\n",
                          "\n", "$3\r\nabcd\r\n", "_\r\n", "+O\rK\r\n"}) {
    INFO(bad);
    std::string error;
    CHECK(parse_status(bad, &error) == RespParser::Status::error);
    CHECK_FALSE(error.empty());
  }
  CHECK(parse_status("$3\r\nab") == RespParser::Status::need_more);
  CHECK(parse_status("+OK\r") == RespParser::Status::need_more);

  RespParser parser;
  parser.feed("?\r\n+OK\r\n");
  RedisReply reply;
  CHECK(parser.take(reply) == RespParser::Status::error);
  CHECK(parser.take(reply) == RespParser::Status::error);
}

TEST_CASE("RESP2 replies beyond the size and nesting bounds are refused early", "[redis]") {
  std::string error;
  const auto bulk = std::to_string(RespParser::max_bulk_bytes);
  CHECK(parse_status("$" + bulk + "\r\n") == RespParser::Status::need_more);
  CHECK(parse_status("$" + std::to_string(RespParser::max_bulk_bytes + 1) + "\r\n", &error) ==
        RespParser::Status::error);
  CHECK(contains(error, "exceeds the limit"));
  CHECK(parse_status("$9223372036854775807\r\n") == RespParser::Status::error);
  CHECK(parse_status("$99999999999999999999\r\n") == RespParser::Status::error);

  const auto elements = std::to_string(RespParser::max_array_elements);
  CHECK(parse_status("*" + elements + "\r\n") == RespParser::Status::need_more);
  CHECK(parse_status("*" + std::to_string(RespParser::max_array_elements + 1) + "\r\n") ==
        RespParser::Status::error);

  std::string nested;
  for (std::size_t i = 0; i < RespParser::max_depth; ++i)
    nested += "*1\r\n";
  CHECK(parse_status(nested + ":1\r\n") == RespParser::Status::reply);
  CHECK(parse_status(nested + "*0\r\n", &error) == RespParser::Status::error);
  CHECK(contains(error, "nested deeper"));
  CHECK(parse_status(nested + "*1\r\n:1\r\n") == RespParser::Status::error);

  // A line that never ends is refused once it passes the line limit, not buffered forever.
  RespParser parser;
  parser.feed("+");
  RedisReply reply;
  const std::string chunk(4096, 'a');
  auto status = RespParser::Status::need_more;
  std::size_t fed = 1;
  while (status == RespParser::Status::need_more && fed < 4 * RespParser::max_line_bytes) {
    parser.feed(chunk);
    fed += chunk.size();
    status = parser.take(reply);
  }
  CHECK(status == RespParser::Status::error);
  CHECK(fed <= RespParser::max_line_bytes + 2 * chunk.size());
}

TEST_CASE("commands are encoded as RESP2 arrays of bulk strings", "[redis]") {
  CHECK(encode_command({"SET", "key", "value"}) ==
        "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
  using namespace std::string_literals;
  CHECK(encode_command({"ECHO", "", "a\r\nb\0c"s}) ==
        "*3\r\n$4\r\nECHO\r\n$0\r\n\r\n$6\r\na\r\nb\0c\r\n"s);
  CHECK(encode_command({}) == "*0\r\n");
}

TEST_CASE("a script's SHA1 is the one Redis computes", "[redis]") {
  CHECK(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

// ---- URLs -----------------------------------------------------------------------------------

TEST_CASE("Redis URLs give host, port, credentials and database", "[redis]") {
  std::string error;
  auto url = RedisUrl::parse("redis://localhost", error);
  REQUIRE(url);
  CHECK(url->host == "localhost");
  CHECK(url->port == 6379);
  CHECK(url->username.empty());
  CHECK(url->password.empty());
  CHECK(url->db == 0);
  CHECK(url->to_string() == "redis://localhost:6379");

  url = RedisUrl::parse("redis://:s3cret@10.0.0.7:6380/2", error);
  REQUIRE(url);
  CHECK(url->host == "10.0.0.7");
  CHECK(url->port == 6380);
  CHECK(url->password == "s3cret");
  CHECK(url->db == 2);
  CHECK(url->to_string() == "redis://10.0.0.7:6380/2");

  url = RedisUrl::parse("REDIS://gateway:p%40ss%3Aword@redis.default.svc/", error);
  REQUIRE(url);
  CHECK(url->username == "gateway");
  CHECK(url->password == "p@ss:word");
  CHECK(url->host == "redis.default.svc");
  CHECK(url->db == 0);
  CHECK(url->to_string() == "redis://gateway@redis.default.svc:6379");
  CHECK_FALSE(contains(url->to_string(), "p@ss"));

  url = RedisUrl::parse("redis://:pa@ss/word@[::1]:7000/15", error);
  REQUIRE(url);
  CHECK(url->password == "pa@ss/word");
  CHECK(url->host == "::1");
  CHECK(url->port == 7000);
  CHECK(url->db == 15);
  CHECK(url->endpoint() == "[::1]:7000");
}

TEST_CASE("bad Redis URLs are refused with a reason that hides the password", "[redis]") {
  std::string error;
  CHECK_FALSE(RedisUrl::parse("rediss://cache:6380", error));
  CHECK(contains(error, "TLS"));
  CHECK(contains(error, "not supported"));

  for (const char* bad :
       {"http://cache", "cache:6379", "redis://", "redis://:6379", "redis://:x@", "redis://h:0",
        "redis://h:65536", "redis://h:port", "redis://h:", "redis://h/x", "redis://h/-1",
        "redis://h/1x", "redis://[::1", "redis://[::1]x", "redis://user@h", "redis://h?db=1",
        "redis://:%zz@h", "redis://:%4@h"}) {
    INFO(bad);
    error.clear();
    CHECK_FALSE(RedisUrl::parse(bad, error));
    CHECK_FALSE(error.empty());
  }
  CHECK_FALSE(RedisUrl::parse("redis://:hunter2@cache:99999", error));
  CHECK(contains(error, "port"));
  CHECK_FALSE(contains(error, "hunter2"));
  CHECK_FALSE(RedisUrl::parse("redis://cache/abc", error));
  CHECK(contains(error, "database"));
}

// ---- against a real redis-server ------------------------------------------------------------

TEST_CASE("a value set through the client reads back, large or small", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisClient client(url_of(redis.url()), {}, 1);

  auto set = command(io, client, {"SET", "greeting", "hello"});
  REQUIRE(set.ok());
  CHECK(show(set.reply) == "+OK");
  CHECK(show(command(io, client, {"GET", "greeting"}).reply) == "$hello");
  CHECK(show(command(io, client, {"GET", "absent"}).reply) == "nil");
  CHECK(show(command(io, client, {"RPUSH", "list", "a", "b"}).reply) == ":2");
  CHECK(show(command(io, client, {"LRANGE", "list", "0", "-1"}).reply) == "[$a,$b]");

  // Several reads' worth of reply, binary-safe.
  std::string big(3 * 1024 * 1024, 'x');
  big[17] = '\r';
  big[18] = '\n';
  big[19] = '\0';
  REQUIRE(command(io, client, {"SET", "big", big}).ok());
  const auto got = command(io, client, {"GET", "big"});
  REQUIRE(got.ok());
  CHECK(got.reply.kind == RedisReply::Kind::bulk);
  CHECK(got.reply.text == big);
}

TEST_CASE("a Redis error reply is a reply, not a transport failure", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisClient client(url_of(redis.url()), {}, 1);
  const auto before = command(io, client, {"CLIENT", "ID"});
  const auto result = command(io, client, {"NOSUCHCOMMAND", "x"});
  REQUIRE(result.ok());
  CHECK(result.reply.kind == RedisReply::Kind::error);
  CHECK(result.reply.text.starts_with("ERR unknown command"));
  // ... and the connection stays in the pool.
  CHECK(command(io, client, {"CLIENT", "ID"}).reply.integer == before.reply.integer);
}

TEST_CASE("commands reuse a pooled connection", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisClient client(url_of(redis.url()), {}, 1);
  const auto first = command(io, client, {"CLIENT", "ID"});
  const auto second = command(io, client, {"CLIENT", "ID"});
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first.reply.kind == RedisReply::Kind::integer);
  CHECK(first.reply.integer == second.reply.integer);

  // Two commands at once need two connections; both go back to the pool afterwards.
  const std::vector<std::string> client_id{"CLIENT", "ID"};
  const auto both = run(io, [&]() -> membrane::awaitable<std::pair<long long, long long>> {
    using namespace boost::asio::experimental::awaitable_operators;
    auto [a, b] = co_await (client.command(client_id) && client.command(client_id));
    co_return std::pair{a.reply.integer, b.reply.integer};
  }());
  CHECK(both.first != both.second);
  const auto clients = command(io, client, {"CLIENT", "LIST"});
  CHECK(std::count(clients.reply.text.begin(), clients.reply.text.end(), '\n') == 2);
}

TEST_CASE("a pooled connection the server closed is not used again", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisClient client(url_of(redis.url()), {}, 1);
  const auto first = command(io, client, {"CLIENT", "ID"});
  REQUIRE(first.ok());
  redis.stop();
  redis.start();
  const auto after_restart = command(io, client, {"CLIENT", "ID"});
  INFO(after_restart.error);
  REQUIRE(after_restart.ok());
  CHECK(after_restart.reply.kind == RedisReply::Kind::integer);
}

TEST_CASE("a password in the URL authenticates, a wrong one says so", "[redis]") {
  LiveRedis redis({"--requirepass", "s3cret"});
  asio::io_context io;

  RedisClient right(url_of(redis.url(":s3cret@")), {}, 1);
  CHECK(show(command(io, right, {"PING"}).reply) == "+PONG");
  RedisClient with_user(url_of(redis.url("default:s3cret@")), {}, 1);
  CHECK(show(command(io, with_user, {"PING"}).reply) == "+PONG");

  RedisClient wrong(url_of(redis.url(":not-the-password@")), {}, 1);
  const auto refused = command(io, wrong, {"PING"});
  CHECK_FALSE(refused.ok());
  CHECK(contains(refused.error, "redis 127.0.0.1:" + std::to_string(redis.port())));
  CHECK(contains(refused.error, "AUTH failed: WRONGPASS"));
  CHECK_FALSE(contains(refused.error, "not-the-password"));

  RedisClient none(url_of(redis.url()), {}, 1);
  const auto unauthenticated = command(io, none, {"PING"});
  REQUIRE(unauthenticated.ok());
  CHECK(unauthenticated.reply.kind == RedisReply::Kind::error);
  CHECK(unauthenticated.reply.text.starts_with("NOAUTH"));
}

TEST_CASE("the database in the URL is selected on connect", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisClient db3(url_of(redis.url("", "/3")), {}, 1);
  RedisClient db0(url_of(redis.url()), {}, 1);
  REQUIRE(command(io, db3, {"SET", "where", "three"}).ok());
  CHECK(show(command(io, db3, {"GET", "where"}).reply) == "$three");
  CHECK(show(command(io, db0, {"GET", "where"}).reply) == "nil");

  RedisClient out_of_range(url_of(redis.url("", "/99")), {}, 1);
  const auto failed = command(io, out_of_range, {"PING"});
  CHECK_FALSE(failed.ok());
  CHECK(contains(failed.error, "SELECT 99 failed"));
  CHECK(contains(failed.error, "out of range"));
}

TEST_CASE("a command without a reply in time fails, and the next one gets a new connection",
          "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisOptions options;
  options.command_timeout = 200ms;
  RedisClient client(url_of(redis.url()), options, 1);
  const auto before = command(io, client, {"CLIENT", "ID"});
  REQUIRE(before.ok());

  const auto started = std::chrono::steady_clock::now();
  const auto blocked = command(io, client, {"BLPOP", "empty-list", "2"});
  const auto waited = std::chrono::steady_clock::now() - started;
  CHECK_FALSE(blocked.ok());
  CHECK(contains(blocked.error, "BLPOP timed out"));
  CHECK(contains(blocked.error, "200 ms"));
  CHECK(waited >= 190ms);
  CHECK(waited < 1500ms);

  const auto after = command(io, client, {"CLIENT", "ID"});
  REQUIRE(after.ok());
  CHECK(after.reply.integer != before.reply.integer);
}

TEST_CASE("a server that is not there is a clear connect error", "[redis]") {
  asio::io_context io;
  const auto port = free_loopback_port();
  RedisClient client(url_of("redis://:s3cret@127.0.0.1:" + std::to_string(port)), {}, 1);
  const auto result = command(io, client, {"PING"});
  CHECK_FALSE(result.ok());
  CHECK(contains(result.error, "redis 127.0.0.1:" + std::to_string(port) + ": cannot connect"));
  CHECK(contains(result.error, "refused"));
  CHECK_FALSE(contains(result.error, "s3cret"));
}

TEST_CASE("a server that does not accept in time is a connect timeout", "[redis]") {
  // A loopback listener whose accept queue is full drops further SYNs: connect hangs.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 0) == 0);
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    fillers.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    ::connect(fillers.back(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  }
  std::this_thread::sleep_for(50ms);

  asio::io_context io;
  RedisOptions options;
  options.connect_timeout = 200ms;
  const auto port = ntohs(address.sin_port);
  RedisClient client(url_of("redis://127.0.0.1:" + std::to_string(port)), options, 1);
  const auto started = std::chrono::steady_clock::now();
  const auto result = command(io, client, {"PING"});
  CHECK(std::chrono::steady_clock::now() - started < 1500ms);
  CHECK_FALSE(result.ok());
  CHECK(contains(result.error, "cannot connect: timed out after 200 ms"));
  for (const int fd : fillers)
    ::close(fd);
  ::close(listener);
}

TEST_CASE("a script runs by its SHA1 and is loaded again after SCRIPT FLUSH", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisClient client(url_of(redis.url()), {}, 1);
  const RedisScript script("return {KEYS[1], ARGV[1], #KEYS, #ARGV}");
  CHECK(show(command(io, client, {"SCRIPT", "LOAD", script.source}).reply) == "$" + script.sha1);
  REQUIRE(command(io, client, {"SCRIPT", "FLUSH"}).ok());

  const auto run_it = [&] { return run(io, client.run_script(script, {"key"}, {"arg", "more"})); };
  const auto first = run_it();
  REQUIRE(first.ok());
  CHECK(show(first.reply) == "[$key,$arg,:1,:2]");
  CHECK(show(command(io, client, {"SCRIPT", "EXISTS", script.sha1}).reply) == "[:1]");
  CHECK(show(run_it().reply) == "[$key,$arg,:1,:2]");

  REQUIRE(command(io, client, {"SCRIPT", "FLUSH"}).ok());
  CHECK(show(command(io, client, {"SCRIPT", "EXISTS", script.sha1}).reply) == "[:0]");
  CHECK(show(run_it().reply) == "[$key,$arg,:1,:2]");

  const RedisScript broken("return redis.call('NOSUCHCOMMAND')");
  const auto failed = run(io, client.run_script(broken, {}, {}));
  REQUIRE(failed.ok());
  CHECK(failed.reply.kind == RedisReply::Kind::error);
}

TEST_CASE("a subscriber receives messages and subscribes again after Redis restarts", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  std::vector<std::pair<std::string, std::string>> received;
  RedisSubscriber subscriber(url_of(redis.url()), {}, {"approvals", "other"},
                             [&](std::string_view channel, std::string_view message) {
                               received.emplace_back(channel, message);
                             });
  RedisClient publisher(url_of(redis.url()), {}, 1);
  CHECK_FALSE(subscriber.subscribed());
  subscriber.start(io.get_executor());
  REQUIRE(run_until(
      io, [&] { return subscriber.subscribed(); }, 5s));

  CHECK(command(io, publisher, {"PUBLISH", "approvals", "call-1 accepted"}).reply.integer == 1);
  CHECK(command(io, publisher, {"PUBLISH", "unrelated", "x"}).reply.integer == 0);
  CHECK(command(io, publisher, {"PUBLISH", "other", "second"}).reply.integer == 1);
  REQUIRE(run_until(
      io, [&] { return received.size() == 2; }, 5s));
  CHECK(received[0] == std::pair<std::string, std::string>("approvals", "call-1 accepted"));
  CHECK(received[1] == std::pair<std::string, std::string>("other", "second"));

  redis.stop();
  REQUIRE(run_until(
      io, [&] { return !subscriber.subscribed(); }, 5s));
  run_until(
      io, [] { return false; }, 300ms);  // a few failed reconnects meanwhile
  redis.start();
  REQUIRE(run_until(
      io, [&] { return subscriber.subscribed(); }, 10s));
  CHECK(command(io, publisher, {"PUBLISH", "approvals", "call-2 declined"}).reply.integer == 1);
  REQUIRE(run_until(
      io, [&] { return received.size() == 3; }, 5s));
  CHECK(received[2] == std::pair<std::string, std::string>("approvals", "call-2 declined"));

  // A killed subscriber connection (not only a restart) is noticed too.
  REQUIRE(command(io, publisher, {"CLIENT", "KILL", "TYPE", "pubsub"}).ok());
  REQUIRE(run_until(
      io, [&] { return !subscriber.subscribed(); }, 5s));
  REQUIRE(run_until(
      io, [&] { return subscriber.subscribed(); }, 5s));
  CHECK(command(io, publisher, {"PUBLISH", "other", "third"}).reply.integer == 1);
  REQUIRE(run_until(
      io, [&] { return received.size() == 4; }, 5s));

  // stop() ends it at once: nothing is left to run on the io_context.
  subscriber.stop();
  CHECK_FALSE(subscriber.subscribed());
  publisher.close_idle();
  const auto started = std::chrono::steady_clock::now();
  io.restart();
  io.run_for(5s);
  CHECK(std::chrono::steady_clock::now() - started < 1s);
  CHECK(received.size() == 4);
}

TEST_CASE("a subscriber keeps trying while Redis is down, then subscribes", "[redis]") {
  asio::io_context io;
  auto redis = std::make_unique<LiveRedis>();
  const auto url = url_of(redis->url());
  redis->stop();
  bool got = false;
  RedisSubscriber subscriber(url, {}, {"approvals"},
                             [&](std::string_view, std::string_view) { got = true; });
  subscriber.start(io.get_executor());
  run_until(
      io, [] { return false; }, 400ms);
  CHECK_FALSE(subscriber.subscribed());
  redis->start();
  REQUIRE(run_until(
      io, [&] { return subscriber.subscribed(); }, 10s));
  RedisClient publisher(url, {}, 1);
  CHECK(command(io, publisher, {"PUBLISH", "approvals", "x"}).reply.integer == 1);
  CHECK(run_until(
      io, [&] { return got; }, 5s));
}

TEST_CASE("a subscriber notices a server that stopped answering, and subscribes again", "[redis]") {
  LiveRedis redis;
  asio::io_context io;
  RedisOptions options;
  options.command_timeout = 200ms;
  options.subscriber_ping_after = 300ms;
  int messages = 0;
  RedisSubscriber subscriber(url_of(redis.url()), options, {"approvals"},
                             [&](std::string_view, std::string_view) { ++messages; });
  subscriber.start(io.get_executor());
  REQUIRE(run_until(
      io, [&] { return subscriber.subscribed(); }, 5s));
  // Quiet but healthy: the PING is answered and the subscription stays.
  run_until(
      io, [] { return false; }, 800ms);
  CHECK(subscriber.subscribed());

  redis.pause();
  const auto paused = std::chrono::steady_clock::now();
  REQUIRE(run_until(
      io, [&] { return !subscriber.subscribed(); }, 5s));
  CHECK(std::chrono::steady_clock::now() - paused < 1500ms);
  redis.resume();
  REQUIRE(run_until(
      io, [&] { return subscriber.subscribed(); }, 10s));
  RedisClient publisher(url_of(redis.url()), {}, 1);
  CHECK(command(io, publisher, {"PUBLISH", "approvals", "x"}).reply.integer == 1);
  CHECK(run_until(
      io, [&] { return messages == 1; }, 5s));
}
