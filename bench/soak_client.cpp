// membrane_bench_soak: the soak benchmark's load and its sampler (bench/soak.sh drives it).
//
// Several concurrent clients run sessions one after another until the total number of
// tools/call requests is reached. Each session opens a fresh connection, initializes (the
// gateway seals a new session id), sends notifications/initialized, makes a random number of
// echo calls (every answer is checked to carry this call's own text), then ends with DELETE and
// closes the connection. Every `--stdio-every`-th session goes to the stdio upstream instead,
// so stdio children are started and stopped throughout.
//
// Meanwhile the gateway process (--pid) is sampled every --interval seconds: VmRSS and VmHWM
// from /proc/PID/status, the entries of /proc/PID/fd, its threads and its child processes.
// Each sample is one tab-separated line on stdout:
//   sample <elapsed_s> <calls> <sessions> <rss_kib> <hwm_kib> <fds> <threads> <children>
// and at the end:
//   done calls=<n> sessions=<n> stdio_sessions=<n> errors=<n> seconds=<s> calls_per_s=<r>
// Errors (non-2xx, a wrong answer, a broken connection) are counted and the first few printed
// to stderr; exit status 0 when there were none, 3 otherwise.
//
// Usage: membrane_bench_soak --port P --pid PID [--host 127.0.0.1] [--calls 1000000]
//          [--clients 8] [--min-calls 20] [--max-calls 200] [--http-upstream echo]
//          [--stdio-upstream NAME --stdio-every 10] [--interval 5]
//        membrane_bench_soak --idle-connections N --body-bytes B [--header-bytes H] --port P --pid
//        PID
//   the second form measures idle keep-alive connections instead: N connections each send
//   one request with a body of B bytes and a header of H bytes (an echo call on a session of
//   the HTTP upstream), then stay open and idle; the gateway's RSS is sampled before, while they
//   idle, and after they closed.
//        membrane_bench_soak --streams N --stream-kind streamable|legacy --port P --pid PID
//   the third form measures sessions and SSE streams: `streamable` opens N sessions (initialize
//   and notifications/initialized, one after another on one connection), then one listen stream
//   (GET with the session id) per session, each on its own connection; `legacy` opens N
//   2024-11-05 SSE sessions (GET /sse/<upstream>). The gateway's RSS is sampled before, with the
//   sessions open, with the streams open, after they closed and 12 s later; lines are
//   `streams <phase> <rss_kib> <fds>`.
//
// Header-only Asio/Beast, one translation unit (like membrane_bench_echo).

#include <boost/asio.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/resource.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto token = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kProtocol = "2025-11-25";

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  long pid = 0;
  std::uint64_t calls = 1'000'000;
  unsigned clients = 8;
  unsigned min_calls = 20;
  unsigned max_calls = 200;
  std::string http_upstream = "echo";
  std::string stdio_upstream;
  unsigned stdio_every = 10;
  unsigned interval = 5;
  unsigned idle_connections = 0;
  std::size_t body_bytes = 0;
  std::size_t header_bytes = 0;
  unsigned streams = 0;
  std::string stream_kind = "streamable";
};

struct Totals {
  std::uint64_t calls_started = 0;
  std::uint64_t calls = 0;
  std::uint64_t sessions = 0;
  std::uint64_t stdio_sessions = 0;
  std::uint64_t errors = 0;
  bool done = false;
};

// What /proc says about the gateway right now.
struct Sample {
  long rss_kib = 0;
  long hwm_kib = 0;
  long threads = 0;
  long fds = 0;
  long children = 0;
};

long status_field(const std::string& status, std::string_view name) {
  const auto at = status.find(std::string(name) + ":");
  if (at == std::string::npos) return -1;
  return std::strtol(status.c_str() + at + name.size() + 1, nullptr, 10);
}

Sample sample_process(long pid) {
  Sample sample;
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream in(base + "/status");
  const std::string status((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  sample.rss_kib = status_field(status, "VmRSS");
  sample.hwm_kib = status_field(status, "VmHWM");
  sample.threads = status_field(status, "Threads");
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(base + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++sample.fds;
  // Child processes (stdio upstreams), from every thread's children list.
  for (auto it = std::filesystem::directory_iterator(base + "/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::ifstream children(it->path() / "children");
    std::string child;
    while (children >> child)
      ++sample.children;
  }
  return sample;
}

void report_error(Totals& totals, const std::string& what) {
  if (++totals.errors <= 10) std::cerr << "soak: error: " << what << "\n";
}

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// One session's connection: sequential requests, keep-alive.
class Connection {
 public:
  explicit Connection(asio::any_io_executor executor) : stream_(executor) {}

  asio::awaitable<bool> connect(const tcp::endpoint& endpoint) {
    stream_.expires_after(std::chrono::seconds(30));
    auto [ec] = co_await stream_.async_connect(endpoint, token);
    if (ec) co_return false;
    beast::error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    co_return true;
  }

  asio::awaitable<std::optional<Response>> exchange(Request& request) {
    stream_.expires_after(std::chrono::seconds(60));
    auto [write_ec, written] = co_await http::async_write(stream_, request, token);
    if (write_ec) co_return std::nullopt;
    http::response_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    auto [read_ec, read] = co_await http::async_read(stream_, buffer_, parser, token);
    if (read_ec) co_return std::nullopt;
    co_return parser.release();
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

Request mcp_request(http::verb verb, const std::string& target, const std::string& session,
                    std::string body) {
  Request request{verb, target, 11};
  request.set(http::field::host, "127.0.0.1");
  request.set(http::field::accept, "application/json, text/event-stream");
  request.set("MCP-Protocol-Version", kProtocol);
  if (!session.empty()) request.set("Mcp-Session-Id", session);
  if (!body.empty()) request.set(http::field::content_type, "application/json");
  request.body() = std::move(body);
  request.keep_alive(true);
  request.prepare_payload();
  return request;
}

Request initialize_request(const std::string& target) {
  return mcp_request(
      http::verb::post, target, "",
      R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":")" +
          std::string(kProtocol) +
          R"(","capabilities":{},"clientInfo":{"name":"membrane-soak","version":"1"}}})");
}

asio::awaitable<void> run_client(const Options& options, Totals& totals, unsigned index,
                                 tcp::endpoint endpoint) {
  std::mt19937 random(index * 7919 + 17);
  std::uniform_int_distribution<unsigned> per_session(options.min_calls, options.max_calls);
  const auto executor = co_await asio::this_coro::executor;
  std::uint64_t id = 0;
  for (std::uint64_t session_number = 0; totals.calls_started < options.calls; ++session_number) {
    const bool stdio = !options.stdio_upstream.empty() && options.stdio_every > 0 &&
                       (totals.sessions + index) % options.stdio_every == 0;
    const std::string target = "/mcp/" + (stdio ? options.stdio_upstream : options.http_upstream);
    Connection connection(executor);
    if (!co_await connection.connect(endpoint)) {
      report_error(totals, "cannot connect");
      continue;
    }
    auto initialize = initialize_request(target);
    auto initialized = co_await connection.exchange(initialize);
    if (!initialized || initialized->result_int() != 200 ||
        (*initialized)["Mcp-Session-Id"].empty()) {
      report_error(totals,
                   "initialize on " + target + " failed" +
                       (initialized ? ": HTTP " + std::to_string(initialized->result_int()) + " " +
                                          initialized->body().substr(0, 200)
                                    : std::string(": connection broken")));
      connection.close();
      continue;
    }
    const std::string session((*initialized)["Mcp-Session-Id"]);
    auto note = mcp_request(http::verb::post, target, session,
                            R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    auto noted = co_await connection.exchange(note);
    if (!noted || noted->result_int() != 202) report_error(totals, "notifications/initialized");

    const unsigned calls = per_session(random);
    for (unsigned i = 0; i < calls && totals.calls_started < options.calls; ++i) {
      ++totals.calls_started;
      const std::string text = "soak " + std::to_string(index) + "/" +
                               std::to_string(session_number) + "/" + std::to_string(i);
      auto call = mcp_request(
          http::verb::post, target, session,
          R"({"jsonrpc":"2.0","id":)" + std::to_string(++id) +
              R"(,"method":"tools/call","params":{"name":"echo","arguments":{"message":")" + text +
              R"("}}})");
      auto answered = co_await connection.exchange(call);
      if (!answered) {
        report_error(totals, "tools/call on " + target + ": connection broken");
        break;
      }
      // JSON (HTTP upstream) or an SSE stream (stdio upstream): either way the answer must
      // carry this call's own text.
      if (answered->result_int() != 200 ||
          answered->body().find("\"text\":\"" + text + "\"") == std::string::npos) {
        report_error(totals, "tools/call on " + target + ": HTTP " +
                                 std::to_string(answered->result_int()) + " " +
                                 answered->body().substr(0, 200));
      }
      ++totals.calls;
    }
    auto end = mcp_request(http::verb::delete_, target, session, "");
    auto ended = co_await connection.exchange(end);
    if (!ended || ended->result_int() != 200) {
      report_error(totals, "DELETE on " + target + ": " +
                               (ended ? "HTTP " + std::to_string(ended->result_int())
                                      : std::string("connection broken")));
    }
    connection.close();
    ++totals.sessions;
    if (stdio) ++totals.stdio_sessions;
  }
}

void print_sample(const Options& options, const Totals& totals, Clock::time_point start) {
  const auto sample = sample_process(options.pid);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "sample\t" << static_cast<long>(elapsed + 0.5) << "\t" << totals.calls << "\t"
            << totals.sessions << "\t" << sample.rss_kib << "\t" << sample.hwm_kib << "\t"
            << sample.fds << "\t" << sample.threads << "\t" << sample.children << std::endl;
}

asio::awaitable<void> sampler(const Options& options, const Totals& totals,
                              Clock::time_point start) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  print_sample(options, totals, start);
  while (!totals.done) {
    timer.expires_after(std::chrono::seconds(options.interval));
    co_await timer.async_wait(token);
    if (!totals.done) print_sample(options, totals, start);
  }
}

asio::awaitable<void> soak(const Options& options, Totals& totals, tcp::endpoint endpoint) {
  const auto executor = co_await asio::this_coro::executor;
  const auto start = Clock::now();
  asio::co_spawn(executor, sampler(options, totals, start), asio::detached);
  // The clients as one group: this coroutine waits for all of them.
  asio::experimental::channel<void(beast::error_code)> finished(executor, options.clients);
  for (unsigned i = 0; i < options.clients; ++i) {
    asio::co_spawn(executor, run_client(options, totals, i, endpoint),
                   [&finished](std::exception_ptr) { finished.try_send(beast::error_code()); });
  }
  for (unsigned i = 0; i < options.clients; ++i)
    co_await finished.async_receive(token);
  // Let the gateway finish stopping the last children, then one final sample.
  asio::steady_timer settle(executor, std::chrono::seconds(options.interval));
  co_await settle.async_wait(token);
  print_sample(options, totals, start);
  totals.done = true;
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "done calls=" << totals.calls << " sessions=" << totals.sessions
            << " stdio_sessions=" << totals.stdio_sessions << " errors=" << totals.errors
            << " seconds=" << static_cast<long>(seconds)
            << " calls_per_s=" << static_cast<long>(totals.calls / seconds) << std::endl;
}

// Gives the gateway a moment to finish what the last requests started.
asio::awaitable<void> settle(asio::any_io_executor executor) {
  asio::steady_timer timer(executor, std::chrono::seconds(2));
  co_await timer.async_wait(token);
}

// One line of a memory measurement: `<measure> <phase> <rss_kib> <fds>`.
void print_memory(const Options& options, std::string_view measure, std::string_view phase) {
  const auto sample = sample_process(options.pid);
  std::cout << measure << "\t" << phase << "\t" << sample.rss_kib << "\t" << sample.fds
            << std::endl;
}

// The idle keep-alive measurement: what N connections cost the gateway once they are idle.
asio::awaitable<void> idle_connections(const Options& options, Totals& totals,
                                       tcp::endpoint endpoint) {
  const auto executor = co_await asio::this_coro::executor;
  const auto report = [&](std::string_view phase) { print_memory(options, "idle", phase); };
  // One session for every call (stateless of the gateway: any connection may use it).
  Connection setup(executor);
  if (!co_await setup.connect(endpoint)) throw std::runtime_error("cannot connect");
  const std::string target = "/mcp/" + options.http_upstream;
  auto initialize = initialize_request(target);
  auto initialized = co_await setup.exchange(initialize);
  if (!initialized || initialized->result_int() != 200)
    throw std::runtime_error("initialize failed");
  const std::string session((*initialized)["Mcp-Session-Id"]);
  co_await settle(executor);
  report("before");
  std::vector<std::unique_ptr<Connection>> connections;
  const std::string padding(options.body_bytes, 'x');
  for (unsigned i = 0; i < options.idle_connections; ++i) {
    auto connection = std::make_unique<Connection>(executor);
    if (!co_await connection->connect(endpoint)) {
      report_error(totals, "cannot connect");
      continue;
    }
    auto call = mcp_request(
        http::verb::post, target, session,
        R"({"jsonrpc":"2.0","id":)" + std::to_string(i + 1) +
            R"(,"method":"tools/call","params":{"name":"echo","arguments":{"message":"idle","padding":")" +
            padding + R"("}}})");
    if (options.header_bytes > 0) {
      call.set("X-Padding", std::string(options.header_bytes, 'h'));
      call.prepare_payload();
    }
    auto answered = co_await connection->exchange(call);
    if (!answered || answered->result_int() != 200) report_error(totals, "tools/call failed");
    connections.push_back(std::move(connection));
  }
  co_await settle(executor);
  report("idle");
  for (auto& connection : connections)
    connection->close();
  connections.clear();
  co_await settle(executor);
  report("closed");
  setup.close();
}

// An SSE stream held open: its response header read, its events left unread.
asio::awaitable<bool> open_stream(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                  const tcp::endpoint& endpoint, Request& request) {
  stream.expires_after(std::chrono::seconds(30));
  auto [connect_ec] = co_await stream.async_connect(endpoint, token);
  if (connect_ec) co_return false;
  auto [write_ec, written] = co_await http::async_write(stream, request, token);
  if (write_ec) co_return false;
  http::response_parser<http::empty_body> parser;
  auto [read_ec, read] = co_await http::async_read_header(stream, buffer, parser, token);
  stream.expires_never();
  if (read_ec) co_return false;
  const auto& header = parser.get();
  co_return header.result_int() == 200 &&
      header[http::field::content_type].starts_with("text/event-stream");
}

// Sessions and SSE streams: what each costs the gateway while it is open, and what is left after.
asio::awaitable<void> sessions_and_streams(const Options& options, Totals& totals,
                                           tcp::endpoint endpoint) {
  const auto executor = co_await asio::this_coro::executor;
  const auto report = [&](std::string_view phase) { print_memory(options, "streams", phase); };
  const bool legacy = options.stream_kind == "legacy";
  co_await settle(executor);
  report("before");
  std::vector<std::string> sessions;
  Connection setup(executor);
  if (!legacy) {
    if (!co_await setup.connect(endpoint)) throw std::runtime_error("cannot connect");
    const std::string target = "/mcp/" + options.http_upstream;
    for (unsigned i = 0; i < options.streams; ++i) {
      auto initialize = initialize_request(target);
      auto initialized = co_await setup.exchange(initialize);
      if (!initialized || initialized->result_int() != 200) {
        report_error(totals, "initialize failed");
        continue;
      }
      sessions.emplace_back((*initialized)["Mcp-Session-Id"]);
      auto notified = mcp_request(http::verb::post, target, sessions.back(),
                                  R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
      auto accepted = co_await setup.exchange(notified);
      if (!accepted || accepted->result_int() != 202)
        report_error(totals, "notifications/initialized failed");
    }
    co_await settle(executor);
    report("sessions");
  }
  struct Open {
    explicit Open(asio::any_io_executor executor) : stream(executor) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
  };
  std::vector<std::unique_ptr<Open>> open;
  for (unsigned i = 0; i < options.streams; ++i) {
    if (!legacy && i >= sessions.size()) break;
    Request request{http::verb::get,
                    legacy ? "/sse/" + options.http_upstream : "/mcp/" + options.http_upstream, 11};
    request.set(http::field::host, "127.0.0.1");
    request.set(http::field::accept, "text/event-stream");
    if (!legacy) {
      request.set("MCP-Protocol-Version", kProtocol);
      request.set("Mcp-Session-Id", sessions[i]);
    }
    request.keep_alive(true);
    request.prepare_payload();
    auto held = std::make_unique<Open>(executor);
    if (!co_await open_stream(held->stream, held->buffer, endpoint, request)) {
      report_error(totals, "stream " + std::to_string(i) + " did not open");
      continue;
    }
    open.push_back(std::move(held));
  }
  co_await settle(executor);
  std::cout << "streams\topen\t" << open.size() << std::endl;
  report("streams");
  for (auto& held : open) {
    beast::error_code ignored;
    held->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    held->stream.close();
  }
  open.clear();
  setup.close();
  co_await settle(executor);
  report("closed");
  // The gateway gives freed memory back to the system within a second or two when connections fell
  // (its MemoryTrimmer): what it still holds after that.
  asio::steady_timer later(executor, std::chrono::seconds(12));
  co_await later.async_wait(token);
  report("released");
}

[[noreturn]] void usage(int status) {
  (status == 0 ? std::cout : std::cerr)
      << "usage: membrane_bench_soak --port P --pid PID [--host ADDR] [--calls N] [--clients N]\n"
         "         [--min-calls N] [--max-calls N] [--http-upstream NAME]\n"
         "         [--stdio-upstream NAME] [--stdio-every N] [--interval S]\n"
         "       membrane_bench_soak --idle-connections N --body-bytes B [--header-bytes H]\n"
         "         --port P --pid PID\n"
         "       membrane_bench_soak --streams N [--stream-kind streamable|legacy] --port P\n"
         "         --pid PID\n"
         "See bench/README.md (soak benchmark).\n";
  std::exit(status);
}

std::uint64_t parse_number(std::string_view flag, std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc() || end != text.data() + text.size()) {
    std::cerr << "membrane_bench_soak: bad value for " << flag << ": '" << text << "'\n";
    usage(2);
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") usage(0);
    if (i + 1 >= argc) usage(2);
    const std::string_view value = argv[++i];
    if (arg == "--host")
      options.host = value;
    else if (arg == "--port")
      options.port = static_cast<unsigned short>(parse_number(arg, value));
    else if (arg == "--pid")
      options.pid = static_cast<long>(parse_number(arg, value));
    else if (arg == "--calls")
      options.calls = parse_number(arg, value);
    else if (arg == "--clients")
      options.clients = static_cast<unsigned>(parse_number(arg, value));
    else if (arg == "--min-calls")
      options.min_calls = static_cast<unsigned>(parse_number(arg, value));
    else if (arg == "--max-calls")
      options.max_calls = static_cast<unsigned>(parse_number(arg, value));
    else if (arg == "--http-upstream")
      options.http_upstream = value;
    else if (arg == "--stdio-upstream")
      options.stdio_upstream = value;
    else if (arg == "--stdio-every")
      options.stdio_every = static_cast<unsigned>(parse_number(arg, value));
    else if (arg == "--interval")
      options.interval = static_cast<unsigned>(parse_number(arg, value));
    else if (arg == "--idle-connections")
      options.idle_connections = static_cast<unsigned>(parse_number(arg, value));
    else if (arg == "--body-bytes")
      options.body_bytes = parse_number(arg, value);
    else if (arg == "--header-bytes")
      options.header_bytes = parse_number(arg, value);
    else if (arg == "--streams")
      options.streams = static_cast<unsigned>(parse_number(arg, value));
    else if (arg == "--stream-kind")
      options.stream_kind = value;
    else
      usage(2);
  }
  if (options.port == 0 || options.pid == 0 || options.clients == 0 || options.interval == 0 ||
      options.min_calls == 0 || options.max_calls < options.min_calls ||
      (options.stream_kind != "streamable" && options.stream_kind != "legacy"))
    usage(2);

  // --idle-connections holds thousands of sockets: allow as many descriptors as the hard limit.
  if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  try {
    asio::io_context context(1);
    const tcp::endpoint endpoint(asio::ip::make_address(options.host), options.port);
    Totals totals;
    if (options.streams > 0) {
      asio::co_spawn(context, sessions_and_streams(options, totals, endpoint),
                     [](std::exception_ptr e) {
                       if (e) std::rethrow_exception(e);
                     });
    } else if (options.idle_connections > 0) {
      asio::co_spawn(context, idle_connections(options, totals, endpoint),
                     [](std::exception_ptr e) {
                       if (e) std::rethrow_exception(e);
                     });
    } else {
      asio::co_spawn(context, soak(options, totals, endpoint), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
    }
    context.run();
    return totals.errors == 0 ? 0 : 3;
  } catch (const std::exception& error) {
    std::cerr << "membrane_bench_soak: " << error.what() << "\n";
    return 1;
  }
}
