// The tamper-evident audit trail: one JSON line per decision, appended to a file, each line
// carrying the hash of the line before it and its own hash. Editing a line breaks its own hash;
// deleting or reordering lines breaks the chain; `membrane audit verify` says where.
//
// A line is the record's JSON with "seq" and "prev" (the previous line's hash, 64 zeros for the
// first line ever) first, and "hash" last: SHA-256 (hex) of the line's text up to `,"hash":`. The
// chain continues across restarts: the writer resumes from the file's last complete line.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "membrane/identity/jwt.hpp"

namespace membrane::audit {

using Json = nlohmann::json;

enum class FsyncPolicy { none, every_record };

// The time records carry: ISO 8601 UTC with milliseconds ("2026-11-23T15:04:05.123Z").
std::string utc_now();
std::string utc_time(std::chrono::system_clock::time_point when);

// One member of a submitted record, kept flat so that the submitting thread builds no JSON tree
// and the writer formats it straight to text. The key must outlive the record: a string literal.
class Field {
 public:
  using Value = std::variant<std::nullptr_t, bool, std::int64_t, std::uint64_t, std::string, Json>;
  Field(std::string_view key, std::nullptr_t)
      : key_(key), value_(std::in_place_type<std::nullptr_t>, nullptr) {}
  Field(std::string_view key, bool value) : key_(key), value_(std::in_place_type<bool>, value) {}
  Field(std::string_view key, int value)
      : key_(key), value_(std::in_place_type<std::int64_t>, value) {}
  Field(std::string_view key, std::int64_t value)
      : key_(key), value_(std::in_place_type<std::int64_t>, value) {}
  Field(std::string_view key, std::uint64_t value)
      : key_(key), value_(std::in_place_type<std::uint64_t>, value) {}
  Field(std::string_view key, const char* value)
      : key_(key), value_(std::in_place_type<std::string>, value) {}
  Field(std::string_view key, std::string_view value)
      : key_(key), value_(std::in_place_type<std::string>, value) {}
  Field(std::string_view key, std::string value)
      : key_(key), value_(std::in_place_type<std::string>, std::move(value)) {}
  Field(std::string_view key, Json value)
      : key_(key), value_(std::in_place_type<Json>, std::move(value)) {}

  std::string_view key() const { return key_; }
  const Value& value() const { return value_; }

 private:
  std::string_view key_;
  Value value_;
};

// A record handed to the writer thread, with what is left to do before its line is chained: the
// caller only fills it in; the writer formats, hashes and writes.
struct PendingRecord {
  // The record's members, in any order (the line has them sorted by key, as a JSON object's
  // dump would), each key once.
  std::vector<Field> fields;
  // Written as "time" (utc_time) when the record has none.
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  // When not null: the SHA-256 of its compact JSON is written as "args_sha256" (the arguments
  // themselves never are).
  Json arguments;
  // When not empty: the session id, written as "session", a digest of it (16 hex digits; the id
  // itself is a credential-like capability and is never written).
  std::string session_id;
  Json if_held_back;  // as for append()
  // Called on the writer thread once the batch holding the line was written (true), or the
  // record could not be written now (false: held back or lost, as with append()).
  std::function<void(bool written)> done;
};

struct AuditOptions {
  std::string path;
  FsyncPolicy fsync = FsyncPolicy::none;
  // Past this size the file is renamed to <path>.<first seq of the next file> and a new one
  // continues the chain (0 = never).
  std::uint64_t rotate_bytes = 0;
  // With a key, a signed checkpoint line every `checkpoint_every` records and when the log closes:
  // anyone holding the public key can check that the chain up to it is the gateway's.
  std::optional<identity::Jwk> signing_key;
  std::uint64_t checkpoint_every = 1000;
  // Records that could not be written (disk full, I/O error) are held back, up to this many, and
  // written when the log works again; past it they are lost, and counted in the gap record.
  std::size_t max_held_back = 4096;
  // audit.on_error: only changes what the log says when writes fail (calls refused or going on).
  bool refuse_when_failing = true;
};

class AuditLog {
 public:
  // Opens (creating, mode 0600) and reads the chain's end. Throws std::runtime_error naming the
  // file when it cannot be opened or its last complete line is not a valid audit line.
  explicit AuditLog(AuditOptions options);
  AuditLog(std::string path, FsyncPolicy fsync);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one record (an object; "seq", "prev" and "hash" are set here). Thread-safe; one
  // write(2) per line, so a crash leaves at most one incomplete last line, and the line is in
  // the file (write(2) returned) when append returns true.
  //
  // Returns false when the record could not be written now. The log is then failing: the record
  // is held back, with `if_held_back`'s members added, and written once a write succeeds again,
  // after a {"type":"gap"} record that says what happened meanwhile; past max_held_back, records
  // are lost (counted in that gap record). A write cut short is taken back (or its line ended),
  // so the chain stays verifiable.
  bool append(Json record, const Json& if_held_back = nullptr);

  // Hands a record to the writer thread (started on first use) and returns at once. The writer
  // takes every record queued meanwhile as one batch (group commit): one write(2) for all their
  // lines, one fdatasync with FsyncPolicy::every_record, then each record's `done`. Records are
  // chained in the order they were submitted. The destructor writes what is queued first.
  void submit(PendingRecord pending);

  // Called with the lines of every successful write (whole lines, each ending in a newline:
  // records, checkpoints, gap records), on the thread that wrote them and under the log's lock:
  // it must be quick and must not use the log. Set before the first record.
  using WrittenLines = std::function<void(std::string_view lines)>;
  void on_written(WrittenLines observer) { on_written_ = std::move(observer); }

  // False from a failed write until a write succeeds again.
  bool writable() const { return !failing_.load(std::memory_order_acquire); }
  // While failing: writes the gap record and what is held back. True when the log is writable.
  bool retry();
  // A call refused because the log could not be written (counted in the gap record).
  void count_refused();
  // Why writes fail ("" when writable).
  std::string problem() const;

  const std::string& path() const { return path_; }
  std::uint64_t records_written() const;
  std::uint64_t write_failures() const { return write_failures_.load(std::memory_order_relaxed); }
  std::uint64_t records_lost() const { return records_lost_.load(std::memory_order_relaxed); }
  std::size_t records_held_back() const;

 private:
  std::string write_line(const Json& record);  // mutex_ held; returns why it failed, or ""
  // mutex_ held: one write(2) of whole lines (or none of them: a partial write is taken back);
  // returns why it failed, or "".
  std::string write_bytes(const std::string& lines);
  // mutex_ held: a batch from the writer thread; written[i] says whether record i was written.
  void write_batch_locked(std::vector<PendingRecord>& batch, std::vector<bool>& written);
  void hold_back_locked(Json record, const Json& if_held_back);  // or count it lost
  void writer_loop();
  bool append_locked(const Json& record);  // write_line + counting and checkpoints
  bool recover_locked();
  void note_failure_locked(const std::string& why);
  void open_file();
  void rotate();
  void checkpoint(bool closing);  // mutex_ held

  AuditOptions options_;
  std::string& path_ = options_.path;
  std::uint64_t size_ = 0;
  std::uint64_t since_checkpoint_ = 0;
  int fd_ = -1;
  mutable std::mutex mutex_;
  std::string last_hash_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t written_ = 0;
  // A line was cut short and could not be taken back: the next write ends it first.
  bool torn_ = false;
  // Failure state (mutex_ held, except the atomics).
  std::atomic<bool> failing_{false};
  std::atomic<std::uint64_t> write_failures_{0};
  std::atomic<std::uint64_t> records_lost_{0};
  std::deque<Json> held_back_;
  bool gap_pending_ = false;
  std::string failing_since_;
  std::string last_error_;
  std::uint64_t failures_this_outage_ = 0;
  std::uint64_t lost_this_outage_ = 0;
  std::uint64_t refused_this_outage_ = 0;
  std::int64_t last_report_ms_ = 0;
  // The writer thread and its queue.
  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  std::vector<PendingRecord> queue_;
  std::string batch_lines_;  // mutex_ held: a batch's lines, its buffer reused
  WrittenLines on_written_;
  bool stopping_ = false;
  std::once_flag writer_started_;
  std::thread writer_;
};

// The line for `record` chained after `prev` (what AuditLog writes, without the newline).
std::string chain_line(Json record, const std::string& prev, std::uint64_t seq);

struct VerifyResult {
  bool ok = true;
  std::string file;      // where the first problem is
  std::size_t line = 0;  // 1-based line number of the first problem
  std::string problem;
  std::size_t records = 0;       // complete lines checked
  bool incomplete_tail = false;  // the last file ends in a partial line (a crash mid-write)
  std::size_t checkpoints = 0;   // signed checkpoints checked (with keys)
  bool ends_closed = false;  // the chain's last record is the signed checkpoint of a clean close
  std::size_t interrupted_writes = 0;  // partial lines a restarted writer ended (skipped)
};

// The chain position of a file's first complete audit line (0 when it has none).
std::uint64_t first_seq(const std::string& path);

// Checks the chain through `files` (in any order: they are sorted by the chain position of their
// first line). With `keys`, every checkpoint's signature is checked too.
VerifyResult verify_files(std::vector<std::string> files, const identity::KeySet* keys = nullptr);

// How far a verification that found no problem got, so that a later one can go on from there
// while the chain only grows: the files it read in chain order, each with its size and
// modification time then, and the chain's state after the last complete line.
struct VerifiedChain {
  struct File {
    std::string path;
    std::uint64_t size = 0;  // bytes verified (the last file: up to its last complete line)
    std::int64_t modified_ns = 0;
  };
  std::vector<File> files;
  std::string last_hash;
  std::uint64_t next_seq = 1;
  std::size_t lines_in_last_file = 0;
  VerifyResult result;  // the counts so far
};

// verify_files that goes on from `known` when the same files are there, the ones before the last
// unchanged (size and modification time) and the last one only longer; otherwise from the start.
// Lines verified before are not read again: an edit made in place to them is found by the next
// verification from the start (verify_files, or `known` cleared). On success `known` is updated;
// on a problem it is cleared.
VerifyResult verify_files_from(std::vector<std::string> files, const identity::KeySet* keys,
                               VerifiedChain& known);

struct QueryFilter {
  std::string txn;       // equal
  std::string identity;  // equal (the caller's sub)
  std::string tool;      // equal
  std::string verdict;   // equal: allow, deny, ask, redact
  std::string upstream;  // equal: the record's "server" (the member, through a virtual server)
  std::string rule;      // one of the record's "rules"
  std::string since;     // time >= since (ISO 8601 UTC, any prefix: "2026-11-23T15")
  std::string until;     // time < until
};

// The records (not checkpoints) of `files` that pass `filter`, in chain order. Lines that are not
// audit records are skipped: run verify_files to check the chain.
std::vector<Json> query_files(std::vector<std::string> files, const QueryFilter& filter);

}  // namespace membrane::audit
