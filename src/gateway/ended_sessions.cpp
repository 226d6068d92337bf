#include "gateway/ended_sessions.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "gateway/responses.hpp"
#include "membrane/core/log.hpp"
#include "membrane/core/sha256.hpp"

namespace membrane::gateway {
namespace {

constexpr std::size_t digest_bytes = 16;

bool is_digest(std::string_view text) {
  return text.size() == 2 * digest_bytes &&
         text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// "<digest> <expires>" as written to the file and published on the channel.
bool parse_entry(std::string_view line, std::string& digest, std::int64_t& expires_at) {
  const auto space = line.find(' ');
  if (space == std::string_view::npos || !is_digest(line.substr(0, space))) return false;
  const std::string number(line.substr(space + 1));
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(number.c_str(), &end, 10);
  if (errno != 0 || end == number.c_str() || *end != '\0' || value <= 0) return false;
  digest = std::string(line.substr(0, space));
  expires_at = value;
  return true;
}

std::string entry_line(const std::string& digest, std::int64_t expires_at) {
  return digest + " " + std::to_string(expires_at) + "\n";
}

}  // namespace

EndedSessions::EndedSessions() = default;

EndedSessions::EndedSessions(Options options) : options_(std::move(options)) {}

EndedSessions::~EndedSessions() {
  stop();
  if (file_fd_ >= 0) ::close(file_fd_);
}

std::string EndedSessions::digest_of(std::string_view sealed_id) {
  return core::sha256_hex(sealed_id, digest_bytes);
}

void EndedSessions::remember(std::string digest, std::int64_t expires_at) {
  const auto now = unix_now();
  std::lock_guard lock(mutex_);
  // Deletions whose id has expired anyway are forgotten, oldest first: the record holds the
  // deletions of the last session.max_age, not every one up to the capacity (the soak benchmark
  // showed it growing with every deleted session).
  while (!order_.empty()) {
    const auto oldest = expiry_.find(order_.front());
    if (oldest != expiry_.end() && oldest->second > now) break;
    if (oldest != expiry_.end()) expiry_.erase(oldest);
    order_.pop_front();
  }
  auto [it, inserted] = expiry_.emplace(digest, expires_at);
  if (!inserted) {
    it->second = std::max(it->second, expires_at);
    return;
  }
  order_.push_back(std::move(digest));
  if (order_.size() > options_.capacity) {
    expiry_.erase(order_.front());
    order_.pop_front();
  }
  any_.store(true, std::memory_order_release);
}

bool EndedSessions::contains(std::string_view sealed_id) const {
  if (!any_.load(std::memory_order_acquire)) return false;
  const std::string digest = digest_of(sealed_id);
  std::lock_guard lock(mutex_);
  return expiry_.contains(digest);
}

std::size_t EndedSessions::size() const {
  std::lock_guard lock(mutex_);
  return expiry_.size();
}

void EndedSessions::load_file() {
  if (options_.file.empty() || file_fd_ >= 0) return;
  const std::int64_t now = unix_now();
  std::vector<std::pair<std::string, std::int64_t>> live;
  {
    std::ifstream in(options_.file);
    if (in) {
      std::string line;
      std::size_t number = 0;
      std::size_t skipped = 0;
      while (std::getline(in, line) && live.size() < options_.capacity) {
        ++number;
        if (line.size() > 64) {
          ++skipped;
          continue;
        }
        std::string digest;
        std::int64_t expires_at = 0;
        if (!parse_entry(line, digest, expires_at)) {
          ++skipped;
          continue;
        }
        if (expires_at > now) live.emplace_back(std::move(digest), expires_at);
      }
      if (skipped > 0) {
        log::warn("session.ended_file ", options_.file, ": ignored ", skipped,
                  " malformed line(s) of ", number);
      }
    } else if (std::filesystem::exists(options_.file)) {
      throw std::runtime_error("session.ended_file '" + options_.file + "' cannot be read");
    }
  }
  for (const auto& [digest, expires_at] : live)
    remember(digest, expires_at);
  // Compacted: expired entries go; written aside and renamed so a crash leaves one whole file.
  const std::string compacted = options_.file + ".tmp";
  {
    std::ofstream out(compacted, std::ios::trunc);
    for (const auto& [digest, expires_at] : live)
      out << entry_line(digest, expires_at);
    out.flush();
    if (!out) {
      throw std::runtime_error("session.ended_file: cannot write '" + compacted +
                               "': " + std::strerror(errno));
    }
  }
  std::error_code ec;
  std::filesystem::rename(compacted, options_.file, ec);
  if (ec) {
    throw std::runtime_error("session.ended_file: cannot replace '" + options_.file +
                             "': " + ec.message());
  }
  file_fd_ = ::open(options_.file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (file_fd_ < 0) {
    throw std::runtime_error("session.ended_file '" + options_.file +
                             "' cannot be opened for writing: " + std::strerror(errno));
  }
  log::info("sessions: ", live.size(), " ended session(s) remembered from ", options_.file);
}

void EndedSessions::start(asio::any_io_executor executor) {
  load_file();
  if (!options_.redis) return;
  executor_ = executor;
  const std::string channel = options_.key_prefix + "ended";
  subscriber_ = std::make_unique<cluster::RedisSubscriber>(
      options_.redis->url(), options_.redis_options, std::vector<std::string>{channel},
      [this](std::string_view, std::string_view payload) { on_message(payload); });
  subscriber_->start(executor);
  asio::co_spawn(executor, load_from_redis(), asio::detached);
}

void EndedSessions::stop() {
  if (subscriber_) subscriber_->stop();
}

void EndedSessions::add(std::string_view sealed_id, std::int64_t expires_at) {
  std::string digest = digest_of(sealed_id);
  remember(digest, expires_at);
  append_to_file(digest, expires_at);
  if (options_.redis && executor_)
    asio::co_spawn(executor_, share(std::move(digest), expires_at), asio::detached);
}

void EndedSessions::append_to_file(const std::string& digest, std::int64_t expires_at) {
  if (file_fd_ < 0) return;
  const std::string line = entry_line(digest, expires_at);
  // One write(2) of a short line with O_APPEND: whole lines, whatever other threads write.
  if (::write(file_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    log::error("sessions: could not record an ended session in ", options_.file, ": ",
               std::strerror(errno), "; after a restart its id would be accepted again");
  }
}

namespace {
bool shared(const cluster::RedisResult& result) {
  if (result.ok() && result.reply.kind != cluster::RedisReply::Kind::error) return true;
  log::warn("sessions: could not share an ended session with the other replicas (",
            result.ok() ? result.reply.text : result.error,
            "); they accept its id until it expires");
  return false;
}
}  // namespace

awaitable<void> EndedSessions::share(std::string digest, std::int64_t expires_at) {
  std::vector<std::string> store = {"SET", options_.key_prefix + "ended:" + digest, "1", "EXAT",
                                    std::to_string(expires_at)};
  if (!shared(co_await options_.redis->command(std::move(store)))) co_return;
  std::vector<std::string> publish = {"PUBLISH", options_.key_prefix + "ended",
                                      digest + " " + std::to_string(expires_at)};
  shared(co_await options_.redis->command(std::move(publish)));
}

awaitable<void> EndedSessions::load_from_redis() {
  const std::string pattern = options_.key_prefix + "ended:*";
  const std::size_t prefix_size = pattern.size() - 1;
  std::string cursor = "0";
  std::size_t loaded = 0;
  do {
    std::vector<std::string> scan = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    auto scanned = co_await options_.redis->command(std::move(scan));
    if (!scanned.ok() || scanned.reply.kind != cluster::RedisReply::Kind::array ||
        scanned.reply.elements.size() != 2) {
      log::warn("sessions: could not load the ended sessions from Redis (",
                scanned.ok() ? scanned.reply.text : scanned.error, ")");
      co_return;
    }
    cursor = scanned.reply.elements[0].text;
    for (const auto& key : scanned.reply.elements[1].elements) {
      if (key.text.size() <= prefix_size || loaded >= options_.capacity) continue;
      const std::string digest = key.text.substr(prefix_size);
      if (!is_digest(digest)) continue;
      // TTL rather than EXPIRETIME, which Redis before 7.0 lacks.
      std::vector<std::string> ask = {"TTL", key.text};
      auto ttl = co_await options_.redis->command(std::move(ask));
      if (!ttl.ok() || ttl.reply.kind != cluster::RedisReply::Kind::integer ||
          ttl.reply.integer <= 0)
        continue;
      remember(digest, unix_now() + ttl.reply.integer);
      ++loaded;
    }
  } while (cursor != "0");
  log::info("sessions: ", loaded, " ended session(s) loaded from Redis");
}

void EndedSessions::on_message(std::string_view payload) {
  std::string digest;
  std::int64_t expires_at = 0;
  if (payload.size() > 64 || !parse_entry(payload, digest, expires_at)) {
    log::warn("sessions: ignoring a malformed message on ", options_.key_prefix, "ended");
    return;
  }
  remember(std::move(digest), expires_at);
}

}  // namespace membrane::gateway
