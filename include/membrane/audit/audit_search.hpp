// Searching audit files without reading every record: the records a filter asks for, newest first,
// a page at a time, with a bound on how much one search may read.
//
// Lines are JSON objects dumped with sorted keys and no spaces, so a record whose "txn" is "t1"
// contains the text `"txn":"t1"`. A search looks for that text first (memmem over the mapped
// file) and parses only the lines that contain it; every parsed line is then checked in full by
// `matches`, so the shortcut can only save work, never change an answer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/audit/audit_log.hpp"

namespace membrane::audit {

// True when `record` (an audit line's JSON) passes every filter that is set.
bool matches(const Json& record, const QueryFilter& filter);

// Where the next page starts: records whose line ends at or before `end` in `file`, then the
// files after it in search order.
struct SearchCursor {
  std::string file;
  std::uint64_t end = 0;
};
// Opaque to clients: base64url of a small JSON object.
std::string encode_cursor(const SearchCursor& cursor);
std::optional<SearchCursor> decode_cursor(std::string_view text);

// The order searches read files in: newest first (by modification time, then by the chain
// position of their first line), so the newest records come first.
std::vector<std::string> newest_first(std::vector<std::string> files);

struct ScanOptions {
  std::optional<SearchCursor> start;  // where to start (newest end of the first file when unset)
  // A search reads at most this many bytes of the files, then stops with `limited` set and a
  // cursor to go on from.
  std::uint64_t max_scan_bytes = std::uint64_t{2} << 30;
  // Files are read newest end first, this much at a time (whole lines).
  std::size_t block_bytes = std::size_t{8} << 20;
};

struct ScanResult {
  std::uint64_t scanned_bytes = 0;    // bytes of the files looked at
  std::uint64_t scanned_records = 0;  // lines looked at (parsed or skipped by the text test)
  bool limited = false;               // stopped by max_scan_bytes
  // Where to go on (set when the visitor or the byte limit stopped the scan before the end).
  std::optional<SearchCursor> next;
  std::string error;  // the cursor names no file of the search, or a file could not be read
};

// Calls `visit` with each record (not checkpoints) of `files` (already in search order) that
// passes `filter`, newest first within each file, with the file it came from. `visit` returns
// false to stop: `next` then points just past that record. The files are mapped, not read; a
// file that changes meanwhile is read as it was when mapped, up to its last complete line.
using RecordVisitor = std::function<bool(Json& record, const std::string& file)>;
ScanResult scan_files(const std::vector<std::string>& files, const QueryFilter& filter,
                      const ScanOptions& options, const RecordVisitor& visit);

struct SearchResult {
  std::vector<Json> records;  // newest first; each has "file" added
  ScanResult scan;
};

// Up to `limit` records, newest first (scan_files with a collecting visitor).
SearchResult search_files(const std::vector<std::string>& files, const QueryFilter& filter,
                          std::size_t limit, const ScanOptions& options);

}  // namespace membrane::audit
