// membrane_bench_echo: a minimal, fast MCP server over Streamable HTTP, used as the upstream
// of the benchmark in bench/run.sh (direct, through Membrane, through nginx).
//
//   POST   /mcp  JSON-RPC request, notification, response or batch; answers with JSON
//                (Content-Type: application/json, never SSE), 202 when nothing to answer
//   GET    /mcp  405 (no server-initiated stream); with --listen-streams, 200 and an SSE stream
//                that stays open and silent until the client leaves (for the memory benchmark)
//   DELETE /mcp  200 (session "terminated"; there is no real session state)
//
// Methods: initialize (echoes the client's protocolVersion, sets Mcp-Session-Id:
// bench-session), ping, tools/list (one tool, `echo`), tools/call echo -> the `message`
// argument as text content. Requests are accepted with or without a session id.
// POST /v1/traces answers 200 {}: an OTLP trace sink for the tracing benchmark.
//
// Usage: membrane_bench_echo [--port N] [--threads N] [--host ADDR] [--listen-streams]
//   --port 0 (the default) picks a free port; the bound address is printed to stderr as
//   `listening on 127.0.0.1:PORT`.
//        membrane_bench_echo --stdio
//   the same methods over stdio instead (newline-delimited JSON-RPC on stdin/stdout), as a
//   stdio upstream for the soak benchmark (bench/soak.sh).
//
// One io_context per thread (concurrency hint 1, no locking); the acceptor hands accepted
// connections to the threads round-robin. Header-only Asio/Beast: one translation unit.

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr std::string_view kDefaultProtocolVersion = "2025-11-25";
constexpr std::string_view kSessionId = "bench-session";

json rpc_result(const json& id, json result) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json rpc_error(const json& id, int code, std::string message) {
  return json{
      {"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", std::move(message)}}}};
}

const json& tools_list_result() {
  static const json result = {
      {"tools", json::array({{{"name", "echo"},
                              {"description", "Echoes back the message it is given."},
                              {"inputSchema",
                               {{"type", "object"},
                                {"properties", {{"message", {{"type", "string"}}}}},
                                {"required", json::array({"message"})}}}}})}};
  return result;
}

// Handles one JSON-RPC message. Returns the response to send, or nothing for notifications
// and for responses/errors the client sends us. Sets *initialized on `initialize`.
std::optional<json> handle_message(const json& msg, bool* initialized) {
  if (!msg.is_object()) return rpc_error(nullptr, -32600, "Invalid Request");
  const auto method_it = msg.find("method");
  const auto id_it = msg.find("id");
  if (method_it == msg.end()) {
    // A JSON-RPC response from the client (e.g. to a server request): nothing to answer.
    if (id_it != msg.end() && (msg.contains("result") || msg.contains("error"))) return {};
    return rpc_error(id_it != msg.end() ? *id_it : json(nullptr), -32600, "Invalid Request");
  }
  if (!method_it->is_string()) {
    return rpc_error(id_it != msg.end() ? *id_it : json(nullptr), -32600, "Invalid Request");
  }
  if (id_it == msg.end()) return {};  // notification (notifications/initialized, ...)

  const json& id = *id_it;
  const std::string& method = method_it->get_ref<const std::string&>();
  static const json kEmptyObject = json::object();
  const auto params_it = msg.find("params");
  const json& params = params_it != msg.end() && params_it->is_object() ? *params_it : kEmptyObject;

  if (method == "tools/call") {
    const auto name_it = params.find("name");
    if (name_it == params.end() || !name_it->is_string() || *name_it != "echo") {
      return rpc_error(id, -32602, "Unknown tool");
    }
    std::string text;
    if (const auto args_it = params.find("arguments");
        args_it != params.end() && args_it->is_object()) {
      if (const auto m = args_it->find("message"); m != args_it->end()) {
        text = m->is_string() ? m->get<std::string>() : m->dump();
      }
    }
    return rpc_result(id,
                      {{"content", json::array({{{"type", "text"}, {"text", std::move(text)}}})}});
  }
  if (method == "ping") return rpc_result(id, json::object());
  if (method == "tools/list") return rpc_result(id, tools_list_result());
  if (method == "initialize") {
    *initialized = true;
    json version = std::string(kDefaultProtocolVersion);
    if (const auto v = params.find("protocolVersion"); v != params.end() && v->is_string()) {
      version = *v;
    }
    return rpc_result(id,
                      {{"protocolVersion", std::move(version)},
                       {"capabilities", {{"tools", json::object()}}},
                       {"serverInfo", {{"name", "membrane-bench-echo"}, {"version", "1.0.0"}}}});
  }
  return rpc_error(id, -32601, "Method not found");
}

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

void set_json(Response& res, http::status status, std::string body) {
  res.result(status);
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
}

void handle_post(const Request& req, Response& res) {
  json body = json::parse(req.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    set_json(res, http::status::bad_request, rpc_error(nullptr, -32700, "Parse error").dump());
    return;
  }
  bool initialized = false;
  std::optional<json> out;
  if (body.is_array()) {
    if (body.empty()) {
      out = rpc_error(nullptr, -32600, "Invalid Request");
    } else {
      json replies = json::array();
      for (const json& msg : body) {
        if (auto r = handle_message(msg, &initialized)) replies.push_back(std::move(*r));
      }
      if (!replies.empty()) out = std::move(replies);
    }
  } else {
    out = handle_message(body, &initialized);
  }
  if (initialized) res.set("Mcp-Session-Id", kSessionId);
  if (!out) {
    res.result(http::status::accepted);
    return;
  }
  set_json(res, http::status::ok, out->dump());
}

bool listen_streams = false;  // --listen-streams

bool path_is_mcp(std::string_view target) {
  const auto q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  return target == "/mcp" || target == "/mcp/";
}

void handle(const Request& req, Response& res) {
  res.version(req.version());
  res.keep_alive(req.keep_alive());
  if (req.method() == http::verb::post && req.target() == "/v1/traces") {
    // An OTLP/HTTP sink, so the benchmark can compare span export to a live and a dead collector.
    set_json(res, http::status::ok, "{}");
  } else if (!path_is_mcp(req.target())) {
    set_json(res, http::status::not_found, R"({"error":"not found"})");
  } else if (req.method() == http::verb::post) {
    handle_post(req, res);
  } else if (req.method() == http::verb::delete_) {
    res.result(http::status::ok);
  } else {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "POST, DELETE");
  }
  res.prepare_payload();
}

asio::awaitable<void> serve_connection(tcp::socket socket) {
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  beast::flat_buffer buffer;
  for (;;) {
    Request req;
    auto [read_ec, n_read] = co_await http::async_read(socket, buffer, req, token);
    if (read_ec) break;  // EOF, reset or malformed request: drop the connection
    if (listen_streams && req.method() == http::verb::get && path_is_mcp(req.target())) {
      // A listen stream: headers, then nothing until the client leaves.
      static const std::string header =
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
          "Transfer-Encoding: chunked\r\n\r\n";
      auto [write_ec, n_written] = co_await asio::async_write(socket, asio::buffer(header), token);
      char sink[256];
      while (!write_ec) {
        auto [ec_read, n] = co_await socket.async_read_some(asio::buffer(sink), token);
        if (ec_read) break;
      }
      break;
    }
    Response res;
    handle(req, res);
    const bool keep_alive = res.keep_alive();
    auto [write_ec, n_written] = co_await http::async_write(socket, res, token);
    if (write_ec || !keep_alive) break;
  }
  socket.shutdown(tcp::socket::shutdown_send, ec);
  socket.close(ec);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::vector<asio::io_context*> pool) {
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  std::size_t next = 0;
  for (;;) {
    asio::io_context& target = *pool[next++ % pool.size()];
    auto [ec, socket] = co_await acceptor.async_accept(target, token);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      continue;  // e.g. EMFILE: try again
    }
    asio::co_spawn(target, serve_connection(std::move(socket)), asio::detached);
  }
}

// One JSON-RPC message per line in, one answer per line out, until stdin closes.
int serve_stdio() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
    bool initialized = false;
    std::optional<json> out;
    if (message.is_discarded()) {
      out = rpc_error(nullptr, -32700, "Parse error");
    } else {
      out = handle_message(message, &initialized);
    }
    if (out) std::cout << out->dump() << '\n' << std::flush;
  }
  return 0;
}

[[noreturn]] void usage(int status) {
  (status == 0 ? std::cout : std::cerr)
      << "usage: membrane_bench_echo [--port N] [--threads N] [--host ADDR] [--listen-streams]\n"
         "       membrane_bench_echo --stdio\n"
         "  --port N     TCP port on ADDR; 0 (default) picks a free one\n"
         "  --threads N  I/O threads (default 1)\n"
         "  --host ADDR  listen address (default 127.0.0.1)\n"
         "  --stdio      serve one client over stdin/stdout instead of HTTP\n"
         "  --listen-streams  hold GET /mcp open as a silent SSE stream instead of 405\n"
         "Prints `listening on ADDR:PORT` to stderr once accepting.\n";
  std::exit(status);
}

unsigned parse_number(std::string_view flag, std::string_view text, unsigned max) {
  unsigned value = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc() || end != text.data() + text.size() || value > max) {
    std::cerr << "membrane_bench_echo: bad value for " << flag << ": '" << text << "'\n";
    usage(2);
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned port = 0;
  unsigned threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") usage(0);
    if (arg == "--stdio") return serve_stdio();
    if (arg == "--listen-streams") {
      listen_streams = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << "membrane_bench_echo: unknown flag or missing value: " << arg << "\n";
      usage(2);
    }
    const std::string_view value = argv[++i];
    if (arg == "--port") {
      port = parse_number(arg, value, 65535);
    } else if (arg == "--threads") {
      threads = parse_number(arg, value, 256);
      if (threads == 0) usage(2);
    } else if (arg == "--host") {
      host = value;
    } else {
      std::cerr << "membrane_bench_echo: unknown flag: " << arg << "\n";
      usage(2);
    }
  }

  try {
    std::vector<std::unique_ptr<asio::io_context>> contexts;
    std::vector<asio::io_context*> pool;
    for (unsigned i = 0; i < threads; ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));
      pool.push_back(contexts.back().get());
    }
    asio::io_context& main_ctx = *contexts.front();

    const tcp::endpoint endpoint(asio::ip::make_address(host), static_cast<unsigned short>(port));
    tcp::acceptor acceptor(main_ctx);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    const tcp::endpoint bound = acceptor.local_endpoint();

    // Keep the other contexts running while they have no connections yet.
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    for (auto& ctx : contexts)
      guards.push_back(asio::make_work_guard(*ctx));

    asio::signal_set signals(main_ctx, SIGINT, SIGTERM);
    signals.async_wait([&](const beast::error_code& ec, int) {
      if (ec) return;
      beast::error_code ignored;
      acceptor.close(ignored);
      for (auto& ctx : contexts)
        ctx->stop();
    });

    asio::co_spawn(main_ctx, accept_loop(acceptor, pool), asio::detached);
    std::cerr << "listening on " << bound.address().to_string() << ":" << bound.port() << std::endl;

    std::vector<std::thread> workers;
    for (unsigned i = 1; i < threads; ++i) {
      workers.emplace_back([ctx = contexts[i].get()] { ctx->run(); });
    }
    main_ctx.run();
    for (auto& ctx : contexts)
      ctx->stop();
    for (auto& t : workers)
      t.join();
  } catch (const std::exception& e) {
    std::cerr << "membrane_bench_echo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
