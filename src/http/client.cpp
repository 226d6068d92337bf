#include "http/client.hpp"

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <cerrno>
#include <charconv>

#include "http/worker_pool.hpp"
#include "http/write_now.hpp"
#include "membrane/core/ascii.hpp"
#include "membrane/core/log.hpp"

namespace membrane::http {
namespace ssl = asio::ssl;
using Parser = bhttp::response_parser<bhttp::buffer_body>;

// ---- URL ------------------------------------------------------------------------------------

std::optional<UpstreamUrl> UpstreamUrl::parse(std::string_view text, std::string& error) {
  UpstreamUrl url;
  std::string_view rest;
  if (text.substr(0, 7) == "http://") {
    rest = text.substr(7);
  } else if (text.substr(0, 8) == "https://") {
    url.tls = true;
    url.port = 443;
    rest = text.substr(8);
  } else {
    error = "unsupported URL scheme in '" + std::string(text) + "' (use http:// or https://)";
    return std::nullopt;
  }
  const auto path_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_start);
  if (path_start != std::string_view::npos) {
    std::string_view target = rest.substr(path_start);
    if (const auto fragment = target.find('#'); fragment != std::string_view::npos) {
      target = target.substr(0, fragment);
    }
    url.target =
        target.empty() || target.front() != '/' ? "/" + std::string(target) : std::string(target);
  }
  if (authority.find('@') != std::string_view::npos) {
    error = "credentials in upstream URLs are not supported: use upstream headers";
    return std::nullopt;
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 address in '" + std::string(text) + "'";
      return std::nullopt;
    }
    url.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        error = "unexpected text after IPv6 address in '" + std::string(text) + "'";
        return std::nullopt;
      }
      port_text = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty()) {
    error = "missing host in '" + std::string(text) + "'";
    return std::nullopt;
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      error = "invalid port '" + std::string(port_text) + "' in '" + std::string(text) + "'";
      return std::nullopt;
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  const bool default_port = url.port == (url.tls ? 443 : 80);
  const bool v6 = url.host.find(':') != std::string::npos;
  url.host_header =
      (v6 ? "[" + url.host + "]" : url.host) + (default_port ? "" : ":" + std::to_string(url.port));
  return url;
}

std::string UpstreamUrl::to_string() const {
  return std::string(tls ? "https://" : "http://") + host_header + target;
}

// ---- requests -------------------------------------------------------------------------------

OutgoingRequest::OutgoingRequest(bhttp::verb method, std::string_view target) : method_(method) {
  head_.reserve(384);
  head_.append(bhttp::to_string(method));
  head_.push_back(' ');
  head_.append(target);
  head_.append(" HTTP/1.1\r\n");
  // A target that is not one token of visible characters would break the request line.
  for (const unsigned char c : target) {
    if (c <= 0x20 || c == 0x7f) {
      refusal_ = "the request target holds a character that cannot be sent";
      break;
    }
  }
}

const OutgoingRequest::Field* OutgoingRequest::find(std::string_view name) const {
  for (const auto& field : fields_) {
    if (field.name_size == name.size() &&
        boost::beast::iequals(std::string_view(head_.data() + field.offset, field.name_size), name))
      return &field;
  }
  return nullptr;
}

bool OutgoingRequest::has(std::string_view name) const {
  return find(name) != nullptr;
}

void OutgoingRequest::set(std::string_view name, std::string_view value) {
  if (!ascii::is_http_token(name) || !ascii::is_header_value(value)) {
    if (refusal_.empty()) {
      refusal_ = "the header '" + std::string(name.substr(0, 64)) +
                 "' was not sent: its name or value holds characters that HTTP forbids there "
                 "(a line break would add header lines of the sender's choosing)";
    }
    return;
  }
  if (const Field* existing = find(name)) {
    // Rare (a configured header the gateway sets itself): the old line goes, the rest moves up.
    const auto at = existing->offset;
    const auto size = existing->size;
    head_.erase(at, size);
    fields_.erase(fields_.begin() + (existing - fields_.data()));
    for (auto& field : fields_)
      if (field.offset > at) field.offset -= size;
  }
  const auto offset = static_cast<std::uint32_t>(head_.size());
  head_.append(name);
  head_.append(": ");
  head_.append(value);
  head_.append("\r\n");
  fields_.push_back(Field{offset, static_cast<std::uint32_t>(head_.size() - offset),
                          static_cast<std::uint32_t>(name.size())});
}

OutgoingRequest outgoing_request(const bhttp::request<bhttp::string_body>& request) {
  OutgoingRequest out(request.method(), request.target());
  for (const auto& field : request)
    out.set(field.name_string(), field.value());
  out.body() = request.body();
  return out;
}

// ---- connections ----------------------------------------------------------------------------

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  virtual awaitable<error_code> write(const std::string& head, const std::string& body,
                                      std::chrono::steady_clock::duration timeout) = 0;
  virtual awaitable<error_code> read_header(Parser& parser) = 0;
  virtual awaitable<std::pair<error_code, std::size_t>> read_some(Parser& parser) = 0;
  virtual beast::tcp_stream& tcp() = 0;

  // A pooled connection the server has closed in the meantime shows as readable with EOF (or
  // with unexpected bytes): either way it must not carry the next request. Upstreams close idle
  // connections after seconds, not microseconds, so a connection released moments ago is not
  // probed (saving a syscall per request); the retry in send() covers the rare race.
  bool looks_reusable() {
    if (!tcp().socket().is_open()) return false;
    if (std::chrono::steady_clock::now() - idle_since < std::chrono::milliseconds(500)) return true;
    char byte;
    const auto received = ::recv(tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  beast::flat_buffer buffer;
  // Body bytes are read into this, allocated once per connection rather than per response.
  std::unique_ptr<char[]> chunk = std::make_unique_for_overwrite<char[]>(chunk_size);
  static constexpr std::size_t chunk_size = 16 * 1024;
  std::chrono::steady_clock::time_point idle_since;
  bool reused = false;
};

template <class Stream>
class BasicClientConnection final : public ClientConnection {
 public:
  template <class... Args>
  explicit BasicClientConnection(Args&&... args) : stream_(std::forward<Args>(args)...) {}

  awaitable<error_code> write(const std::string& head, const std::string& body,
                              std::chrono::steady_clock::duration timeout) override {
    const std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(body)};
    co_return co_await write_all(stream_, wire, timeout);
  }
  awaitable<error_code> read_header(Parser& parser) override {
    auto [ec, n] = co_await bhttp::async_read_header(stream_, buffer, parser, use_nothrow);
    co_return ec;
  }
  awaitable<std::pair<error_code, std::size_t>> read_some(Parser& parser) override {
    auto [ec, n] = co_await bhttp::async_read_some(stream_, buffer, parser, use_nothrow);
    co_return std::pair{ec, n};
  }
  beast::tcp_stream& tcp() override { return beast::get_lowest_layer(stream_); }
  Stream& stream() { return stream_; }

 private:
  Stream stream_;
};

using PlainConnection = BasicClientConnection<beast::tcp_stream>;
using TlsConnection = BasicClientConnection<ssl::stream<beast::tcp_stream>>;

// ---- pool -----------------------------------------------------------------------------------

// Touched only by its own worker thread: no lock.
struct HttpClient::Pool {
  std::vector<std::unique_ptr<ClientConnection>> idle;
};

HttpClient::HttpClient(UpstreamUrl url, ClientOptions options, std::size_t worker_count)
    : url_(std::move(url)), options_(std::move(options)) {
  for (std::size_t i = 0; i < std::max<std::size_t>(worker_count, 1); ++i) {
    pools_.push_back(std::make_unique<Pool>());
  }
}

HttpClient::~HttpClient() = default;

void HttpClient::close_idle() {
  for (auto& pool : pools_)
    pool->idle.clear();
}

void HttpClient::release(std::unique_ptr<ClientConnection> connection) {
  auto& pool = *pools_[WorkerPool::current_index() % pools_.size()];
  if (pool.idle.size() >= options_.max_idle_per_worker) return;
  connection->tcp().expires_never();
  connection->reused = true;
  connection->idle_since = std::chrono::steady_clock::now();
  pool.idle.push_back(std::move(connection));
}

awaitable<std::pair<std::unique_ptr<ClientConnection>, std::string>> HttpClient::connect() {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(executor);
  auto [resolve_ec, endpoints] =
      co_await resolver.async_resolve(url_.host, std::to_string(url_.port), use_nothrow);
  if (resolve_ec) {
    co_return std::pair{nullptr, "cannot resolve " + url_.host + ": " + resolve_ec.message()};
  }
  std::unique_ptr<ClientConnection> connection;
  if (url_.tls) {
    auto tls = std::make_unique<TlsConnection>(beast::tcp_stream(executor), *options_.tls);
    auto& stream = tls->stream();
    // SNI, and the name the certificate must carry.
    if (!SSL_set_tlsext_host_name(stream.native_handle(), url_.host.c_str())) {
      co_return std::pair{nullptr, "cannot set TLS server name " + url_.host};
    }
    if (options_.verify_host_name)
      stream.set_verify_callback(ssl::host_name_verification(url_.host));
    connection = std::move(tls);
  } else {
    connection = std::make_unique<PlainConnection>(executor);
  }
  auto& tcp = connection->tcp();
  tcp.expires_after(options_.connect_timeout);
  auto [connect_ec, endpoint] = co_await tcp.async_connect(endpoints, use_nothrow);
  if (connect_ec) {
    const std::string reason =
        connect_ec == beast::error::timeout ? "connect timed out" : connect_ec.message();
    co_return std::pair{nullptr, "cannot connect to " + url_.host_header + ": " + reason};
  }
  error_code ignored;
  tcp.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  if (url_.tls) {
    auto& stream = static_cast<TlsConnection&>(*connection).stream();
    auto [handshake_ec] = co_await stream.async_handshake(ssl::stream_base::client, use_nothrow);
    if (handshake_ec) {
      std::string reason = handshake_ec.message();
      if (const long verify = SSL_get_verify_result(stream.native_handle()); verify != X509_V_OK) {
        reason = std::string("certificate verification failed: ") +
                 X509_verify_cert_error_string(verify);
      }
      co_return std::pair{nullptr, "TLS handshake with " + url_.host_header + " failed: " + reason};
    }
  }
  co_return std::pair{std::move(connection), std::string()};
}

// ---- responses ------------------------------------------------------------------------------

struct ClientResponse::State {
  HttpClient* owner = nullptr;
  std::unique_ptr<ClientConnection> connection;
  Parser parser;
  bool aborted = false;
  bool failed = false;
};

ClientResponse::ClientResponse(std::unique_ptr<State> state) : state_(std::move(state)) {}

ClientResponse::~ClientResponse() {
  if (!state_ || !state_->connection) return;
  if (!state_->aborted && !state_->failed && state_->parser.is_done() &&
      state_->parser.keep_alive()) {
    state_->owner->release(std::move(state_->connection));
  }
}

unsigned ClientResponse::status() const {
  return state_->parser.get().result_int();
}

std::string_view ClientResponse::header(bhttp::field field) const {
  return state_->parser.get()[field];
}

std::string_view ClientResponse::header(std::string_view name) const {
  return state_->parser.get()[name];
}

bool ClientResponse::complete() const {
  return state_->parser.is_done();
}

void ClientResponse::expires_at(std::chrono::steady_clock::time_point deadline) {
  if (state_->connection) state_->connection->tcp().expires_at(deadline);
}

void ClientResponse::abort() {
  state_->aborted = true;
  if (state_->connection) {
    error_code ignored;
    state_->connection->tcp().socket().cancel(ignored);
    state_->connection->tcp().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  }
}

awaitable<std::pair<error_code, std::string_view>> ClientResponse::read_some() {
  auto& state = *state_;
  if (state.aborted)
    co_return std::pair{error_code(asio::error::operation_aborted), std::string_view()};
  while (!state.parser.is_done()) {
    auto& body = state.parser.get().body();
    char* const chunk = state.connection->chunk.get();
    body.data = chunk;
    body.size = ClientConnection::chunk_size;
    auto [ec, n] = co_await state.connection->read_some(state.parser);
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      state.failed = true;
      co_return std::pair{ec, std::string_view()};
    }
    const std::size_t produced = ClientConnection::chunk_size - state.parser.get().body().size;
    if (produced > 0) co_return std::pair{error_code(), std::string_view(chunk, produced)};
  }
  co_return std::pair{error_code(), std::string_view()};
}

awaitable<std::pair<error_code, std::string>> ClientResponse::read_all(std::size_t limit) {
  std::string body;
  // A JSON body is bounded in time as well as size; only event streams may stay open.
  state_->connection->tcp().expires_after(state_->owner->options_.response_timeout);
  if (const auto length = state_->parser.content_length(); length && *length <= limit) {
    body.reserve(*length);
  }
  for (;;) {
    auto [ec, piece] = co_await read_some();
    if (ec) co_return std::pair{ec, std::move(body)};
    if (piece.empty()) {
      if (state_->connection) state_->connection->tcp().expires_never();
      co_return std::pair{error_code(), std::move(body)};
    }
    if (body.size() + piece.size() > limit) {
      state_->failed = true;
      co_return std::pair{error_code(bhttp::error::body_limit), std::move(body)};
    }
    body.append(piece);
  }
}

awaitable<ClientResult> HttpClient::send(OutgoingRequest request) {
  request.set(bhttp::field::host, url_.host_header);
  // What Beast's prepare_payload() writes: a length for a body, and for methods that carry one.
  const auto method = request.method();
  if (!request.body().empty() || method == bhttp::verb::post || method == bhttp::verb::put ||
      method == bhttp::verb::patch) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, request.body().size()).ptr;
    request.set(bhttp::field::content_length, std::string_view(digits, end - digits));
  }
  if (!request.refusal().empty()) co_return ClientResult{nullptr, request.refusal()};
  request.head_.append("\r\n");

  auto& pool = *pools_[WorkerPool::current_index() % pools_.size()];
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<ClientConnection> connection;
    while (!pool.idle.empty() && !connection) {
      connection = std::move(pool.idle.back());
      pool.idle.pop_back();
      if (!connection->looks_reusable()) connection.reset();
    }
    if (!connection) {
      auto [fresh, error] = co_await connect();
      if (!fresh) co_return ClientResult{nullptr, error};
      connection = std::move(fresh);
    }
    const bool reused = connection->reused;

    if (auto ec =
            co_await connection->write(request.head(), request.body(), options_.response_timeout)) {
      // Nothing reached a server that closed the pooled connection: safe to try a fresh one.
      if (reused) continue;
      co_return ClientResult{
          nullptr, "cannot send the request to " + url_.host_header + ": " + ec.message()};
    }

    auto state = std::make_unique<ClientResponse::State>();
    state->owner = this;
    state->parser.header_limit(64 * 1024);
    state->parser.body_limit(
        boost::none);  // streams are unbounded; read_all enforces its own limit
    connection->tcp().expires_after(options_.response_timeout);
    auto ec = co_await connection->read_header(state->parser);
    if (ec) {
      // The classic keep-alive race: the upstream closed an idle connection just as the request
      // went out, and sent nothing back. A fresh connection gets one more try.
      const bool closed_before_answer = ec == bhttp::error::end_of_stream ||
                                        ec == asio::error::eof ||
                                        ec == asio::error::connection_reset;
      if (reused && closed_before_answer && connection->buffer.size() == 0) continue;
      const std::string reason =
          ec == beast::error::timeout
              ? "no response within " + std::to_string(options_.response_timeout.count()) + " ms"
              : ec.message();
      co_return ClientResult{nullptr, "no response from " + url_.host_header + ": " + reason};
    }
    connection->tcp().expires_never();
    state->connection = std::move(connection);
    co_return ClientResult{std::make_unique<ClientResponse>(std::move(state)), {}};
  }
  co_return ClientResult{
      nullptr, "the connection to " + url_.host_header + " closed before the request was sent"};
}

}  // namespace membrane::http
