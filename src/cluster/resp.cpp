// Redis without I/O: redis:// URLs, the RESP2 protocol (a parser fed as bytes arrive, and the
// command encoder) and Lua scripts named by their SHA-1. The connections, the client and the
// subscriber that use them are in redis_client.cpp.
#include "cluster/redis_client.hpp"
#include "membrane/core/ascii.hpp"

#include <openssl/evp.h>

#include <cctype>
#include <charconv>

namespace membrane::cluster {

namespace {

template <class Number>
bool parse_number(std::string_view text, Number& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc{} && end == text.data() + text.size();
}

// Credentials with ':', '@' or '/' in them must be percent-encoded to fit in a URL.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = ascii::hex_value(text[i + 1]);
    const int low = ascii::hex_value(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

}  // namespace

// ---- URL ------------------------------------------------------------------------------------

std::optional<RedisUrl> RedisUrl::parse(std::string_view text, std::string& error) {
  // Error texts quote pieces of the URL, never all of it: it may hold a password.
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    error = "not a Redis URL: expected redis://[[user]:password@]host[:port][/db]";
    return std::nullopt;
  }
  std::string scheme(text.substr(0, scheme_end));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme == "rediss") {
    error = "rediss:// (Redis over TLS) is not supported: use redis://";
    return std::nullopt;
  }
  if (scheme != "redis") {
    error = "unsupported URL scheme '" + scheme + "://': use redis://host:port";
    return std::nullopt;
  }
  RedisUrl url;
  std::string_view rest = text.substr(scheme_end + 3);
  // The last '@' ends the credentials, so an unencoded '@' or '/' in a password still works.
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view credentials = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = credentials.find(':');
    if (colon == std::string_view::npos) {
      error = "Redis credentials must be user:password or :password (no ':' before '@')";
      return std::nullopt;
    }
    auto username = percent_decode(credentials.substr(0, colon));
    auto password = percent_decode(credentials.substr(colon + 1));
    if (!username || !password) {
      error = "invalid percent-encoding in the Redis credentials";
      return std::nullopt;
    }
    url.username = std::move(*username);
    url.password = std::move(*password);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    error =
        "query and fragment are not supported in Redis URLs: put the database in the path "
        "(redis://host:6379/2)";
    return std::nullopt;
  }
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 address '" + std::string(authority) + "' in the Redis URL";
      return std::nullopt;
    }
    url.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        error = "unexpected text after the IPv6 address in the Redis URL";
        return std::nullopt;
      }
      port_text = authority.substr(close + 2);
      has_port = true;
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
  }
  if (url.host.empty()) {
    error = "missing host in the Redis URL";
    return std::nullopt;
  }
  if (has_port) {
    unsigned port = 0;
    if (!parse_number(port_text, port) || port == 0 || port > 65535) {
      error = "invalid port '" + std::string(port_text) + "' in the Redis URL";
      return std::nullopt;
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  if (slash != std::string_view::npos) {
    const std::string_view db_text = rest.substr(slash + 1);
    if (!db_text.empty() && (!parse_number(db_text, url.db) || url.db < 0)) {
      error = "invalid database number '" + std::string(db_text) +
              "' in the Redis URL (expected /0, /1, ...)";
      return std::nullopt;
    }
  }
  return url;
}

std::string RedisUrl::endpoint() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedisUrl::to_string() const {
  return "redis://" + (username.empty() ? std::string() : username + "@") + endpoint() +
         (db != 0 ? "/" + std::to_string(db) : std::string());
}

// ---- RESP2 ----------------------------------------------------------------------------------

void RespParser::feed(std::string_view bytes) {
  // Replies already taken are dropped once they are at least half of the buffer: amortised
  // O(1) per byte, and the buffer never holds much more than the reply being parsed.
  if (position_ > 0 && position_ * 2 >= buffer_.size()) {
    buffer_.erase(0, position_);
    position_ = 0;
  }
  buffer_.append(bytes);
}

RespParser::Status RespParser::fail(std::string why) {
  error_ = std::move(why);
  open_arrays_.clear();
  return Status::error;
}

bool RespParser::parse_value(RedisReply& out, Status& status) {
  status = Status::need_more;
  const std::string_view rest = std::string_view(buffer_).substr(position_);
  if (rest.empty()) return false;
  // Only a bounded prefix is searched, so a line that never ends cannot make every feed()
  // rescan an ever-growing buffer.
  const auto newline = rest.substr(0, max_line_bytes + 2).find('\n');
  if (newline == std::string_view::npos) {
    if (rest.size() >= max_line_bytes + 2) {
      status = fail("line longer than " + std::to_string(max_line_bytes) + " bytes");
    }
    return false;
  }
  if (newline < 2 || rest[newline - 1] != '\r') {
    status = fail("line not terminated by CRLF");
    return false;
  }
  const char type = rest.front();
  const std::string_view line = rest.substr(1, newline - 2);
  const std::size_t line_end = position_ + newline + 1;
  switch (type) {
    case '+':
    case '-':
      if (line.find('\r') != std::string_view::npos) {
        status = fail("stray CR in a status line");
        return false;
      }
      out.kind = type == '+' ? RedisReply::Kind::status : RedisReply::Kind::error;
      out.text.assign(line);
      position_ = line_end;
      status = Status::reply;
      return true;
    case ':':
      if (!parse_number(line, out.integer)) {
        status = fail("invalid integer '" + std::string(line.substr(0, 32)) + "'");
        return false;
      }
      out.kind = RedisReply::Kind::integer;
      position_ = line_end;
      status = Status::reply;
      return true;
    case '$': {
      long long length = 0;
      if (!parse_number(line, length) || length < -1) {
        status = fail("invalid bulk string length '" + std::string(line.substr(0, 32)) + "'");
        return false;
      }
      if (length == -1) {
        out.kind = RedisReply::Kind::nil;
        position_ = line_end;
        status = Status::reply;
        return true;
      }
      if (static_cast<unsigned long long>(length) > max_bulk_bytes) {
        status = fail("bulk string of " + std::to_string(length) + " bytes exceeds the limit of " +
                      std::to_string(max_bulk_bytes));
        return false;
      }
      const std::size_t body = newline + 1;
      const std::size_t size = static_cast<std::size_t>(length);
      if (rest.size() < body + size + 2) return false;
      if (rest[body + size] != '\r' || rest[body + size + 1] != '\n') {
        status = fail("bulk string not terminated by CRLF");
        return false;
      }
      out.kind = RedisReply::Kind::bulk;
      out.text.assign(rest.substr(body, size));
      position_ += body + size + 2;
      status = Status::reply;
      return true;
    }
    case '*': {
      long long count = 0;
      if (!parse_number(line, count) || count < -1) {
        status = fail("invalid array length '" + std::string(line.substr(0, 32)) + "'");
        return false;
      }
      position_ = line_end;
      if (count == -1) {
        out.kind = RedisReply::Kind::nil;
        status = Status::reply;
        return true;
      }
      if (open_arrays_.size() + 1 > max_depth) {
        status = fail("arrays nested deeper than " + std::to_string(max_depth));
        return false;
      }
      if (static_cast<unsigned long long>(count) > max_array_elements) {
        status = fail("array of " + std::to_string(count) + " elements exceeds the limit of " +
                      std::to_string(max_array_elements));
        return false;
      }
      if (count == 0) {
        out.kind = RedisReply::Kind::array;
        status = Status::reply;
        return true;
      }
      Frame frame;
      frame.array.kind = RedisReply::Kind::array;
      // The header alone must not buy a big allocation: elements arrive (and cost bytes) first.
      frame.array.elements.reserve(std::min<std::size_t>(static_cast<std::size_t>(count), 64));
      frame.remaining = static_cast<std::size_t>(count);
      open_arrays_.push_back(std::move(frame));
      status = Status::reply;
      return false;
    }
    default:
      status = fail("unexpected RESP type byte 0x" +
                    std::string(1, "0123456789abcdef"[(type >> 4) & 0xf]) +
                    std::string(1, "0123456789abcdef"[type & 0xf]));
      return false;
  }
}

RespParser::Status RespParser::take(RedisReply& out) {
  if (!error_.empty()) return Status::error;
  for (;;) {
    RedisReply value;
    Status status;
    if (!parse_value(value, status)) {
      if (status != Status::reply) return status;
      continue;  // an array was opened: its elements follow
    }
    // A complete value finishes every enclosing array whose last element it was.
    for (;;) {
      if (open_arrays_.empty()) {
        out = std::move(value);
        return Status::reply;
      }
      Frame& top = open_arrays_.back();
      top.array.elements.push_back(std::move(value));
      if (--top.remaining > 0) break;
      value = std::move(top.array);
      open_arrays_.pop_back();
    }
  }
}

std::string encode_command(const std::vector<std::string>& args) {
  std::size_t size = 16;
  for (const auto& arg : args)
    size += arg.size() + 16;
  std::string wire;
  wire.reserve(size);
  wire += '*';
  wire += std::to_string(args.size());
  wire += "\r\n";
  for (const auto& arg : args) {
    wire += '$';
    wire += std::to_string(arg.size());
    wire += "\r\n";
    wire += arg;
    wire += "\r\n";
  }
  return wire;
}

// ---- scripts --------------------------------------------------------------------------------

RedisScript::RedisScript(std::string text) : source(std::move(text)) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(source.data(), source.size(), digest, &length, EVP_sha1(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  sha1.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    sha1 += hex[digest[i] >> 4];
    sha1 += hex[digest[i] & 0xf];
  }
}

}  // namespace membrane::cluster
