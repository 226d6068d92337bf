#include "membrane/audit/audit_log.hpp"
#include "membrane/audit/audit_search.hpp"
#include "membrane/core/ascii.hpp"
#include "membrane/core/json.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "membrane/core/background_priority.hpp"
#include "membrane/core/log.hpp"
#include "membrane/core/sha256.hpp"

namespace membrane::audit {
namespace {

const std::string genesis(64, '0');
constexpr std::string_view hash_marker = ",\"hash\":\"";

using core::sha256_hex;

struct LineCheck {
  std::string problem;  // empty when the line is sound
  std::string prev;
  std::string hash;
  std::uint64_t seq = 0;
  Json record;
};

LineCheck check_line(std::string_view line) {
  LineCheck check;
  const auto marker = line.rfind(hash_marker);
  if (marker == std::string_view::npos || line.size() != marker + hash_marker.size() + 64 + 2 ||
      line.substr(line.size() - 2) != "\"}") {
    check.problem = "not an audit line (no trailing \"hash\")";
    return check;
  }
  check.hash = std::string(line.substr(marker + hash_marker.size(), 64));
  if (sha256_hex(line.substr(0, marker)) != check.hash) {
    check.problem = "the line was altered (its hash does not match its content)";
    return check;
  }
  auto record = json::parse_or_discarded(line);
  if (!record.is_object() || !record.contains("prev") || !record["prev"].is_string() ||
      !record.contains("seq") || !record["seq"].is_number_unsigned()) {
    check.problem = "not an audit record (missing prev or seq)";
    return check;
  }
  check.prev = record["prev"].get<std::string>();
  check.seq = record["seq"].get<std::uint64_t>();
  check.record = std::move(record);
  return check;
}

// The last complete record line of a file ("" when it has none). A line without its newline, or
// without a hash (a crash's leftover, ended by a restart), is not a record.
std::string last_complete_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!in.eof() && line.find(hash_marker) != std::string::npos) last = line;
  }
  return last;
}

}  // namespace

namespace {

bool is_chain_key(std::string_view key) {
  return key == "seq" || key == "prev" || key == "hash";
}

// Writes the scalar `value`; false (and nothing written) for an array, an object or a float.
bool append_scalar(std::string& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::string:
      json::append_string(out, value.get_ref<const std::string&>());
      return true;
    case Json::value_t::number_integer:
      ascii::append_decimal(out, value.get<std::int64_t>());
      return true;
    case Json::value_t::number_unsigned:
      ascii::append_decimal(out, value.get<std::uint64_t>());
      return true;
    case Json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return true;
    case Json::value_t::null:
      out += "null";
      return true;
    default:
      return false;
  }
}

// Scalars and arrays of them (the rules a decision names) are written in place; anything deeper
// goes through dump().
void append_json(std::string& out, const Json& value) {
  if (append_scalar(out, value)) return;
  if (value.is_array()) {
    out.push_back('[');
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (i > 0) out.push_back(',');
      if (!append_scalar(out, value[i]))
        out += value[i].dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    out.push_back(']');
    return;
  }
  out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void append_member_key(std::string& out, std::string_view key) {
  out.push_back(',');
  json::append_string(out, key);
  out.push_back(':');
}

// A record's members but the chain's own, each after a comma.
void append_members(std::string& out, const Json& record) {
  for (const auto& [key, value] : record.items()) {
    if (is_chain_key(key)) continue;
    append_member_key(out, key);
    append_json(out, value);
  }
}

void append_members(std::string& out, const std::vector<Field>& fields) {
  for (const auto& field : fields) {
    if (is_chain_key(field.key())) continue;
    append_member_key(out, field.key());
    std::visit(
        [&out](const auto& value) {
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>) {
            out += "null";
          } else if constexpr (std::is_same_v<T, bool>) {
            out += value ? "true" : "false";
          } else if constexpr (std::is_same_v<T, std::string>) {
            json::append_string(out, value);
          } else if constexpr (std::is_same_v<T, Json>) {
            append_json(out, value);
          } else {
            ascii::append_decimal(out, value);
          }
        },
        field.value());
  }
}

Json to_json(const std::vector<Field>& fields) {
  Json record = Json::object();
  for (const auto& field : fields) {
    std::visit([&](const auto& value) { record[std::string(field.key())] = value; }, field.value());
  }
  return record;
}

// Appends the line for a record's members chained after `prev` ("seq" and "prev" lead the line:
// a reader sees the chain without parsing the record), and sets `hash` to the line's hash.
template <class Members>
void append_line(std::string& out, const Members& members, std::string_view prev, std::uint64_t seq,
                 std::string& hash) {
  const std::size_t start = out.size();
  out += "{\"seq\":";
  ascii::append_decimal(out, seq);
  out += ",\"prev\":\"";
  out += prev;
  out.push_back('"');
  append_members(out, members);
  core::sha256_hex_into(hash, std::string_view(out).substr(start));
  out += hash_marker;
  out += hash;
  out += "\"}";
}

// The line for `record` (its own "seq", "prev" and "hash" members ignored).
std::string make_line(const Json& record, const std::string& prev, std::uint64_t seq) {
  std::string line;
  std::string hash;
  append_line(line, record, prev, seq, hash);
  return line;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Errors that say nothing about the descriptor: the file is fine, the space is not.
bool is_space_error(int error) {
  return error == ENOSPC || error == EDQUOT || error == EFBIG;
}

}  // namespace

std::string utc_now() {
  return utc_time(std::chrono::system_clock::now());
}

std::string utc_time(std::chrono::system_clock::time_point now) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return text;
}

std::string chain_line(Json record, const std::string& prev, std::uint64_t seq) {
  return make_line(record, prev, seq);
}

AuditLog::AuditLog(std::string path, FsyncPolicy fsync)
    : AuditLog(AuditOptions{std::move(path), fsync, 0, std::nullopt, 1000}) {}

AuditLog::AuditLog(AuditOptions options) : options_(std::move(options)) {
  const std::string last = last_complete_line(path_);
  if (!last.empty()) {
    const auto check = check_line(last);
    if (!check.problem.empty()) {
      throw std::runtime_error("audit log '" + path_ + "': its last line is damaged (" +
                               check.problem + "); run 'membrane audit verify' and move it aside");
    }
    last_hash_ = check.hash;
    next_seq_ = check.seq + 1;
  } else {
    last_hash_ = genesis;
  }
  open_file();
  // A crash mid-write leaves a partial last line: end it, so the next record starts clean.
  if (size_ > 0) {
    std::ifstream in(path_, std::ios::binary);
    in.seekg(-1, std::ios::end);
    char tail = '\n';
    in.get(tail);
    if (tail != '\n' && ::write(fd_, "\n", 1) == 1) ++size_;
  }
}

void AuditLog::open_file() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw std::runtime_error("cannot open the audit log '" + path_ + "': " + std::strerror(errno));
  }
  struct stat info {};
  size_ = ::fstat(fd_, &info) == 0 ? static_cast<std::uint64_t>(info.st_size) : 0;
}

void AuditLog::rotate() {
  ::fsync(fd_);
  ::close(fd_);
  fd_ = -1;
  // Named by the chain position that continues in the next file: sorted, the files read in order.
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".%012llu", static_cast<unsigned long long>(next_seq_));
  const std::string rotated = path_ + suffix;
  if (std::rename(path_.c_str(), rotated.c_str()) != 0) {
    log::error("audit log '", path_, "': cannot rotate to '", rotated, "': ", std::strerror(errno),
               "; continuing in the same file");
  } else {
    log::info("audit log rotated to '", rotated, "'");
  }
  try {
    open_file();
  } catch (const std::exception& problem) {
    log::error(problem.what());
  }
}

AuditLog::~AuditLog() {
  if (writer_.joinable()) {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
    }
    queue_ready_.notify_one();
    writer_.join();  // it writes what is queued before it ends
  }
  {
    std::lock_guard lock(mutex_);
    // A last chance for what is held back; what still cannot be written is said out loud.
    if (failing_ && !recover_locked()) {
      log::error("audit log '", path_, "': ", held_back_.size() + lost_this_outage_,
                 " record(s) could not be written before shutdown (", last_error_, ")");
    }
    if (fd_ >= 0 && options_.signing_key && written_ > 0) checkpoint(true);
  }
  if (fd_ < 0) return;
  ::fsync(fd_);
  ::close(fd_);
}

void AuditLog::checkpoint(bool closing) {
  const auto now = std::chrono::system_clock::now();
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  // The signature covers the chain head it follows and its own place in the chain.
  const Json claims = {{"seq", next_seq_}, {"head", last_hash_}, {"iat", seconds}};
  Json record = {{"type", "checkpoint"},
                 {"closing", closing},
                 {"jws", identity::sign_token({{"typ", "membrane-audit-checkpoint"}}, claims,
                                              *options_.signing_key)}};
  if (auto problem = write_line(record); !problem.empty()) note_failure_locked(problem);
  since_checkpoint_ = 0;
}

bool AuditLog::append(Json record, const Json& if_held_back) {
  std::lock_guard lock(mutex_);
  if (!failing_ || recover_locked()) {
    if (append_locked(record)) return true;
  }
  hold_back_locked(std::move(record), if_held_back);
  return false;
}

void AuditLog::hold_back_locked(Json record, const Json& if_held_back) {
  if (held_back_.size() >= options_.max_held_back) {
    ++lost_this_outage_;
    records_lost_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (if_held_back.is_object()) record.update(if_held_back);
  held_back_.push_back(std::move(record));
}

void AuditLog::submit(PendingRecord pending) {
  std::call_once(writer_started_, [this] {
    writer_ = std::thread([this] {
      core::run_as_background_thread();
      writer_loop();
    });
  });
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(std::move(pending));
  }
  queue_ready_.notify_one();
}

void AuditLog::writer_loop() {
  std::vector<PendingRecord> batch;
  std::vector<bool> written;
  for (;;) {
    {
      std::unique_lock lock(queue_mutex_);
      queue_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to write
      batch.swap(queue_);
    }
    // What the callers left to do, done here and not on their threads.
    for (auto& pending : batch) {
      auto& fields = pending.fields;
      const auto has = [&fields](std::string_view key) {
        return std::any_of(fields.begin(), fields.end(),
                           [key](const Field& field) { return field.key() == key; });
      };
      if (!has("time")) fields.emplace_back("time", utc_time(pending.time));
      if (!pending.session_id.empty())
        fields.emplace_back("session", core::session_digest(pending.session_id));
      if (!pending.arguments.is_null()) {
        fields.emplace_back("args_sha256", sha256_hex(pending.arguments.dump(
                                               -1, ' ', false, Json::error_handler_t::replace)));
      }
      std::sort(fields.begin(), fields.end(),
                [](const Field& a, const Field& b) { return a.key() < b.key(); });
    }
    written.assign(batch.size(), false);
    {
      std::lock_guard lock(mutex_);
      write_batch_locked(batch, written);
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) batch[i].done(written[i]);
    }
    batch.clear();
  }
}

void AuditLog::write_batch_locked(std::vector<PendingRecord>& batch, std::vector<bool>& written) {
  if (!failing_ || recover_locked()) {
    std::string& lines = batch_lines_;
    lines.clear();
    std::string hash = last_hash_;
    std::string next_hash;
    std::uint64_t seq = next_seq_;
    for (const auto& pending : batch) {
      append_line(lines, pending.fields, hash, seq++, next_hash);
      hash.swap(next_hash);
      lines.push_back('\n');
    }
    const std::string problem = write_bytes(lines);
    // A burst's buffer is not kept for good.
    if (lines.capacity() > 1024 * 1024) std::string().swap(lines);
    if (problem.empty()) {
      last_hash_ = std::move(hash);
      next_seq_ = seq;
      written_ += batch.size();
      written.assign(batch.size(), true);
      since_checkpoint_ += batch.size();
      if (options_.signing_key && since_checkpoint_ >= options_.checkpoint_every) checkpoint(false);
      return;
    }
    note_failure_locked(problem);
  }
  for (auto& pending : batch)
    hold_back_locked(to_json(pending.fields), pending.if_held_back);
}

bool AuditLog::append_locked(const Json& record) {
  if (auto problem = write_line(record); !problem.empty()) {
    note_failure_locked(problem);
    return false;
  }
  ++written_;
  if (options_.signing_key && ++since_checkpoint_ >= options_.checkpoint_every) checkpoint(false);
  return true;
}

bool AuditLog::retry() {
  if (!failing_) return true;
  std::lock_guard lock(mutex_);
  return !failing_ || recover_locked();
}

// The first write after an outage is the gap record, so the chain itself says that records may
// be missing, and why; then the held-back records, oldest first (each keeps its own "time").
bool AuditLog::recover_locked() {
  if (gap_pending_) {
    const Json gap = {{"type", "gap"},
                      {"since", failing_since_},
                      {"until", utc_now()},
                      {"error", last_error_},
                      {"failed_writes", failures_this_outage_},
                      {"late", held_back_.size()},
                      {"lost", lost_this_outage_},
                      {"refused", refused_this_outage_}};
    if (!append_locked(gap)) return false;
    gap_pending_ = false;
  }
  while (!held_back_.empty()) {
    if (!append_locked(held_back_.front())) return false;
    held_back_.pop_front();
  }
  log::warn("audit log '", path_, "' is writable again after ", failures_this_outage_,
            " failed write(s) since ", failing_since_, ": held-back records written, ",
            lost_this_outage_, " lost, ", refused_this_outage_, " call(s) refused");
  failures_this_outage_ = 0;
  lost_this_outage_ = 0;
  refused_this_outage_ = 0;
  failing_.store(false, std::memory_order_release);
  return true;
}

void AuditLog::note_failure_locked(const std::string& why) {
  write_failures_.fetch_add(1, std::memory_order_relaxed);
  ++failures_this_outage_;
  last_error_ = why;
  const auto now = steady_ms();
  if (!failing_) {
    failing_.store(true, std::memory_order_release);
    gap_pending_ = true;
    failing_since_ = utc_now();
    last_report_ms_ = now;
    log::error("audit log '", path_, "': write failed: ", why,
               options_.refuse_when_failing
                   ? "; calls are refused until it can be written again (audit.on_error: refuse)"
                   : "; calls go on, their records are held back (up to " +
                         std::to_string(options_.max_held_back) +
                         ") until it can be written again (audit.on_error: log)");
    return;
  }
  // Loud, but not one line per call.
  if (now - last_report_ms_ >= 10'000) {
    last_report_ms_ = now;
    log::error("audit log '", path_, "' still cannot be written (", why,
               "): ", failures_this_outage_, " failed write(s) since ", failing_since_, ", ",
               held_back_.size(), " record(s) held back, ", lost_this_outage_, " lost, ",
               refused_this_outage_, " call(s) refused");
  }
}

void AuditLog::count_refused() {
  std::lock_guard lock(mutex_);
  ++refused_this_outage_;
}

std::string AuditLog::problem() const {
  std::lock_guard lock(mutex_);
  return failing_ ? "audit log '" + path_ + "': " + last_error_ : std::string();
}

std::size_t AuditLog::records_held_back() const {
  std::lock_guard lock(mutex_);
  return held_back_.size();
}

std::string AuditLog::write_line(const Json& record) {
  std::string line = make_line(record, last_hash_, next_seq_);
  std::string hash = line.substr(line.size() - 66, 64);
  line.push_back('\n');
  if (auto problem = write_bytes(line); !problem.empty()) return problem;
  last_hash_ = std::move(hash);
  ++next_seq_;
  return {};
}

std::string AuditLog::write_bytes(const std::string& lines) {
  if (fd_ < 0) {
    try {
      open_file();
    } catch (const std::exception& problem) {
      return problem.what();
    }
  }
  if (options_.rotate_bytes && size_ >= options_.rotate_bytes) rotate();
  if (fd_ < 0) return "the file is not open";
  if (torn_) {
    // End the line a failed write left behind: it holds no record, and verify skips it.
    if (::write(fd_, "\n", 1) != 1) return std::strerror(errno);
    ++size_;
    torn_ = false;
  }
  const char* data = lines.data();
  std::size_t left = lines.size();
  while (left > 0) {
    const ssize_t written = ::write(fd_, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      const int error = written < 0 ? errno : EIO;
      const std::size_t partial = lines.size() - left;
      // Part of the lines reached the file: take them back, or at least end the last before the
      // next write.
      if (partial > 0) {
        if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
          torn_ = true;
          size_ += partial;
        }
      }
      // Another descriptor may fare better after an I/O error (a remounted or replaced file);
      // a full disk is the same whichever descriptor writes.
      if (!is_space_error(error)) {
        ::close(fd_);
        fd_ = -1;
      }
      return std::strerror(error);
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  if (options_.fsync == FsyncPolicy::every_record) ::fdatasync(fd_);
  size_ += lines.size();
  if (on_written_) on_written_(lines);
  return {};
}

std::uint64_t AuditLog::records_written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

std::uint64_t first_seq(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (std::getline(in, line) && !in.eof()) {
    const auto check = check_line(line);
    if (check.problem.empty()) return check.seq;
  }
  return 0;
}

namespace {

// A checkpoint's signature covers the chain head before it and its own position.
std::string checkpoint_problem(const LineCheck& check, const identity::KeySet& keys) {
  const auto jws = check.record.find("jws");
  if (jws == check.record.end() || !jws->is_string()) return "a checkpoint without a signature";
  const auto signature = identity::verify_signature(jws->get<std::string>(), keys);
  if (!signature) return "the checkpoint's signature does not verify: " + signature.error;
  const auto& claims = signature.token->claims;
  if (claims.value("head", Json()) != Json(check.prev) ||
      claims.value("seq", Json()) != Json(check.seq)) {
    return "the checkpoint was signed for another place in the chain";
  }
  return {};
}

}  // namespace

namespace {

std::pair<std::uint64_t, std::int64_t> size_and_time(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) return {0, 0};
  return {
      static_cast<std::uint64_t>(status.st_size),
      static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec};
}

// True when `known` still describes the start of `files` (in chain order): then it is where to go
// on from.
bool can_resume(const std::vector<std::string>& files, const VerifiedChain& known) {
  if (known.files.empty() || known.files.size() > files.size()) return false;
  for (std::size_t index = 0; index < known.files.size(); ++index) {
    const auto& before = known.files[index];
    if (files[index] != before.path) return false;
    const auto [size, modified] = size_and_time(before.path);
    const bool last = index + 1 == known.files.size();
    if (last ? size < before.size : (size != before.size || modified != before.modified_ns))
      return false;
  }
  return true;
}

}  // namespace

VerifyResult verify_files(std::vector<std::string> files, const identity::KeySet* keys) {
  VerifiedChain fresh;
  return verify_files_from(std::move(files), keys, fresh);
}

VerifyResult verify_files_from(std::vector<std::string> files, const identity::KeySet* keys,
                               VerifiedChain& known) {
  std::stable_sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    return first_seq(a) < first_seq(b);
  });
  VerifyResult result;
  std::string expected_prev = genesis;
  std::uint64_t expected_seq = 1;
  std::size_t first_file = 0;
  std::uint64_t first_offset = 0;
  std::size_t first_line = 0;
  if (can_resume(files, known)) {
    result = known.result;
    expected_prev = known.last_hash;
    expected_seq = known.next_seq;
    first_file = known.files.size() - 1;
    first_offset = known.files.back().size;
    first_line = known.lines_in_last_file;
    known.files.pop_back();
  } else {
    known = VerifiedChain();
  }
  for (std::size_t index = first_file; index < files.size(); ++index) {
    const auto& file = files[index];
    const std::int64_t modified = size_and_time(file).second;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      result = {false, file, 0, "cannot read the file", result.records, false, 0};
      known = VerifiedChain();
      return result;
    }
    std::uint64_t offset = 0;
    std::size_t number = 0;
    if (index == first_file && first_offset > 0) {
      in.seekg(static_cast<std::streamoff>(first_offset));
      offset = first_offset;
      number = first_line;
    }
    std::string line;
    while (std::getline(in, line)) {
      ++number;
      if (in.eof()) {
        // No newline: the write a crash interrupted. Only the last file may end so.
        if (index + 1 == files.size()) {
          result.incomplete_tail = true;
          --number;
          break;
        }
        result = {false,          file,  number, "incomplete line in the middle of the chain",
                  result.records, false, 0};
        known = VerifiedChain();
        return result;
      }
      offset += line.size() + 1;
      if (line.empty()) continue;
      // A write a crash cut short, ended by the restarted writer: it holds no record. Skipping it
      // hides nothing: a record removed or altered would still break the chain at the next line.
      if (line.find(hash_marker) == std::string::npos) {
        ++result.interrupted_writes;
        continue;
      }
      const auto check = check_line(line);
      const auto fail = [&](std::string problem) {
        result.ok = false;
        result.file = file;
        result.line = number;
        result.problem = std::move(problem);
        known = VerifiedChain();
      };
      if (!check.problem.empty()) {
        fail(check.problem);
        return result;
      }
      if (check.prev != expected_prev) {
        fail(result.records == 0
                 ? "the chain does not start here: its first lines (or an earlier file) are missing"
                 : "the chain is broken here: a line before it was removed, inserted or reordered");
        return result;
      }
      if (check.seq != expected_seq) {
        fail("sequence " + std::to_string(check.seq) + " where " + std::to_string(expected_seq) +
             " was expected: lines are missing or reordered");
        return result;
      }
      const bool is_checkpoint = check.record.value("type", Json()) == Json("checkpoint");
      if (is_checkpoint && keys) {
        if (auto problem = checkpoint_problem(check, *keys); !problem.empty()) {
          fail(std::move(problem));
          return result;
        }
        ++result.checkpoints;
      }
      result.ends_closed = is_checkpoint && check.record.value("closing", Json()) == Json(true);
      expected_prev = check.hash;
      expected_seq = check.seq + 1;
      ++result.records;
    }
    // What was read of this file; a file that grew meanwhile is read on from here next time.
    known.files.push_back({file, offset, modified});
    known.lines_in_last_file = number;
  }
  known.last_hash = expected_prev;
  known.next_seq = expected_seq;
  known.result = result;
  // A tail left incomplete may be completed by the writer: not part of what was verified.
  known.result.incomplete_tail = false;
  return result;
}

std::vector<Json> query_files(std::vector<std::string> files, const QueryFilter& filter) {
  std::stable_sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    return first_seq(a) < first_seq(b);
  });
  std::vector<Json> found;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(hash_marker) == std::string::npos) continue;
      auto record = json::parse_or_discarded(line);
      if (!record.is_object()) continue;
      if (const auto type = record.find("type"); type != record.end() && *type == "checkpoint")
        continue;
      if (matches(record, filter)) found.push_back(std::move(record));
    }
  }
  return found;
}

}  // namespace membrane::audit
