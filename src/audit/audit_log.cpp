#include "membrane/audit/audit_log.hpp"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "membrane/core/log.hpp"

namespace membrane::audit {
namespace {

const std::string genesis(64, '0');
constexpr std::string_view hash_marker = ",\"hash\":\"";

std::string sha256_hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (const unsigned char byte : digest) {
    out.push_back(hex[byte >> 4]);
    out.push_back(hex[byte & 15]);
  }
  return out;
}

struct LineCheck {
  std::string problem;  // empty when the line is sound
  std::string prev;
  std::string hash;
  std::uint64_t seq = 0;
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
  const auto record = Json::parse(line, nullptr, false);
  if (!record.is_object() || !record.contains("prev") || !record["prev"].is_string() ||
      !record.contains("seq") || !record["seq"].is_number_unsigned()) {
    check.problem = "not an audit record (missing prev or seq)";
    return check;
  }
  check.prev = record["prev"].get<std::string>();
  check.seq = record["seq"].get<std::uint64_t>();
  return check;
}

// The last complete line of a file ("" when it has none).
std::string last_complete_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!in.eof()) last = line;  // a line without its newline is a crash's leftover
  }
  return last;
}

}  // namespace

std::string chain_line(Json record, const std::string& prev, std::uint64_t seq) {
  // "seq" and "prev" lead the line: a reader sees the chain without parsing the record.
  std::string line = "{\"seq\":" + std::to_string(seq) + ",\"prev\":\"" + prev + "\"";
  record.erase("seq");
  record.erase("prev");
  record.erase("hash");
  for (const auto& [key, value] : record.items()) {
    line += ",";
    line += Json(key).dump();
    line += ":";
    line += value.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  const std::string hash = sha256_hex(line);
  line += hash_marker;
  line += hash;
  line += "\"}";
  return line;
}

AuditLog::AuditLog(std::string path, FsyncPolicy fsync) : path_(std::move(path)), fsync_(fsync) {
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
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw std::runtime_error("cannot open the audit log '" + path_ + "': " + std::strerror(errno));
  }
  // A crash mid-write leaves a partial last line: end it, so the next record starts clean.
  struct stat info {};
  if (::fstat(fd_, &info) == 0 && info.st_size > 0) {
    std::ifstream in(path_, std::ios::binary);
    in.seekg(-1, std::ios::end);
    char tail = '\n';
    in.get(tail);
    if (tail != '\n') (void)!::write(fd_, "\n", 1);
  }
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) {
    ::fsync(fd_);
    ::close(fd_);
  }
}

bool AuditLog::append(Json record) {
  std::lock_guard lock(mutex_);
  std::string line = chain_line(std::move(record), last_hash_, next_seq_);
  const std::string hash = line.substr(line.size() - 66, 64);
  line.push_back('\n');
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t written = ::write(fd_, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      log::error("audit log '", path_, "': write failed: ", std::strerror(errno));
      return false;
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  if (fsync_ == FsyncPolicy::every_record) ::fdatasync(fd_);
  last_hash_ = hash;
  ++next_seq_;
  ++written_;
  return true;
}

std::uint64_t AuditLog::records_written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

VerifyResult verify_files(const std::vector<std::string>& files) {
  VerifyResult result;
  std::string expected_prev = genesis;
  std::uint64_t expected_seq = 1;
  for (std::size_t index = 0; index < files.size(); ++index) {
    const auto& file = files[index];
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      result = {false, file, 0, "cannot read the file", result.records, false, 0};
      return result;
    }
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (in.eof()) {
        // No newline: the write a crash interrupted. Only the last file may end so.
        if (index + 1 == files.size()) {
          result.incomplete_tail = true;
          break;
        }
        result = {false,          file,  number, "incomplete line in the middle of the chain",
                  result.records, false, 0};
        return result;
      }
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
      expected_prev = check.hash;
      expected_seq = check.seq + 1;
      ++result.records;
    }
  }
  return result;
}

}  // namespace membrane::audit
