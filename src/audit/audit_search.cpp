#include "membrane/audit/audit_search.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "membrane/core/json.hpp"
#include "membrane/mcp/sealed_session.hpp"

namespace membrane::audit {
namespace {

bool names_rule(const Json& record, const std::string& rule) {
  const auto rules = record.find("rules");
  if (rules == record.end() || !rules->is_array()) return false;
  return std::any_of(rules->begin(), rules->end(),
                     [&](const Json& each) { return each.is_string() && each == rule; });
}

// A file mapped for reading, unmapped when it goes.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat status {};
    if (::fstat(fd, &status) == 0 && S_ISREG(status.st_mode)) {
      size_ = static_cast<std::size_t>(status.st_size);
      if (size_ == 0) {
        opened_ = true;
      } else {
        void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (mapped != MAP_FAILED) {
          data_ = static_cast<const char*>(mapped);
          opened_ = true;
        }
      }
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  bool opened() const { return opened_; }
  std::string_view text() const {
    return data_ ? std::string_view(data_, size_) : std::string_view();
  }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  bool opened_ = false;
};

// The text a matching line must contain, for the most selective filter that has one: the member
// as the writer dumps it (`"txn":"t1"`, the value JSON-escaped). Empty when no filter has one.
std::string needle_for(const QueryFilter& filter) {
  const auto member = [](std::string_view key, const std::string& value) {
    std::string text = "\"";
    text.append(key);
    text.append("\":");
    text.append(Json(value).dump(-1, ' ', false, Json::error_handler_t::replace));
    return text;
  };
  std::string best;
  const auto consider = [&](std::string text) {
    if (text.size() > best.size()) best = std::move(text);
  };
  if (!filter.txn.empty()) consider(member("txn", filter.txn));
  if (!filter.identity.empty()) consider(member("identity", filter.identity));
  if (!filter.tool.empty()) consider(member("tool", filter.tool));
  if (!filter.upstream.empty()) consider(member("server", filter.upstream));
  if (!filter.verdict.empty()) consider(member("verdict", filter.verdict));
  if (!filter.rule.empty())
    consider(Json(filter.rule).dump(-1, ' ', false, Json::error_handler_t::replace));
  return best;
}

// The record's time as written (ISO 8601 UTC), read without parsing the line.
std::string_view time_in(std::string_view line) {
  constexpr std::string_view key = "\"time\":\"";
  // The last one: keys are sorted, so a nested "time" could only come before the record's own.
  const auto at = line.rfind(key);
  if (at == std::string_view::npos) return {};
  const auto start = at + key.size();
  const auto end = line.find('"', start);
  return end == std::string_view::npos ? std::string_view() : line.substr(start, end - start);
}

bool outside_time(std::string_view line, const QueryFilter& filter) {
  if (filter.since.empty() && filter.until.empty()) return false;
  const std::string_view time = time_in(line);
  return (!filter.since.empty() && time < filter.since) ||
         (!filter.until.empty() && time >= filter.until);
}

constexpr std::string_view checkpoint_marker = "\"type\":\"checkpoint\"";

struct Line {
  std::size_t start;
  std::size_t end;  // at its newline
};

// The complete lines of text[lo, hi) (hi at a line's end) that contain `needle`, in file order.
void candidate_lines(std::string_view text, std::size_t lo, std::size_t hi,
                     const std::string& needle, std::vector<Line>& lines) {
  lines.clear();
  if (needle.empty()) {
    std::size_t start = lo;
    while (start < hi) {
      const void* newline = std::memchr(text.data() + start, '\n', hi - start);
      const std::size_t end =
          newline ? static_cast<std::size_t>(static_cast<const char*>(newline) - text.data()) : hi;
      lines.push_back({start, end});
      start = end + 1;
    }
    return;
  }
  std::size_t from = lo;
  while (from < hi) {
    const void* found = ::memmem(text.data() + from, hi - from, needle.data(), needle.size());
    if (!found) break;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(found) - text.data());
    std::size_t start = at;
    while (start > lo && text[start - 1] != '\n')
      --start;
    const void* newline = std::memchr(text.data() + at, '\n', hi - at);
    const std::size_t end =
        newline ? static_cast<std::size_t>(static_cast<const char*>(newline) - text.data()) : hi;
    lines.push_back({start, end});
    from = end + 1;
  }
}

}  // namespace

bool matches(const Json& record, const QueryFilter& filter) {
  const auto equal = [&](const char* key, const std::string& wanted) {
    return wanted.empty() || json::string_member(record, key) == wanted;
  };
  const std::string_view time = json::string_member(record, "time");
  return equal("txn", filter.txn) && equal("identity", filter.identity) &&
         equal("tool", filter.tool) && equal("verdict", filter.verdict) &&
         equal("server", filter.upstream) &&
         (filter.rule.empty() || names_rule(record, filter.rule)) &&
         (filter.since.empty() || time >= filter.since) &&
         (filter.until.empty() || time < filter.until);
}

std::string encode_cursor(const SearchCursor& cursor) {
  const Json text = {{"f", cursor.file}, {"e", cursor.end}};
  return mcp::base64url_encode(text.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::optional<SearchCursor> decode_cursor(std::string_view text) {
  constexpr std::size_t longest = 8192;
  if (text.size() > longest) return std::nullopt;
  const auto bytes = mcp::base64url_decode(text);
  if (!bytes) return std::nullopt;
  const Json parsed = json::parse_or_discarded(*bytes);
  if (!parsed.is_object()) return std::nullopt;
  const auto file = parsed.find("f");
  const auto end = parsed.find("e");
  if (file == parsed.end() || !file->is_string() || end == parsed.end() ||
      !end->is_number_unsigned())
    return std::nullopt;
  return SearchCursor{file->get<std::string>(), end->get<std::uint64_t>()};
}

std::vector<std::string> newest_first(std::vector<std::string> files) {
  struct Dated {
    std::string file;
    std::int64_t modified_ns;
    std::uint64_t first_seq;
  };
  std::vector<Dated> dated;
  dated.reserve(files.size());
  for (auto& file : files) {
    struct stat status {};
    std::int64_t modified = 0;
    if (::stat(file.c_str(), &status) == 0)
      modified =
          static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec;
    const std::uint64_t seq = first_seq(file);
    dated.push_back({std::move(file), modified, seq});
  }
  std::stable_sort(dated.begin(), dated.end(), [](const Dated& a, const Dated& b) {
    return a.modified_ns != b.modified_ns ? a.modified_ns > b.modified_ns
                                          : a.first_seq > b.first_seq;
  });
  std::vector<std::string> ordered;
  ordered.reserve(dated.size());
  for (auto& each : dated)
    ordered.push_back(std::move(each.file));
  return ordered;
}

ScanResult scan_files(const std::vector<std::string>& files, const QueryFilter& filter,
                      const ScanOptions& options, const RecordVisitor& visit) {
  ScanResult result;
  std::size_t first = 0;
  if (options.start) {
    const auto at = std::find(files.begin(), files.end(), options.start->file);
    if (at == files.end()) {
      result.error = "the cursor names a file this search does not read (it may have rotated)";
      return result;
    }
    first = static_cast<std::size_t>(at - files.begin());
  }
  const std::string needle = needle_for(filter);
  std::vector<Line> lines;
  for (std::size_t index = first; index < files.size(); ++index) {
    const std::string& file = files[index];
    const MappedFile mapped(file);
    if (!mapped.opened()) {
      result.error = "cannot read '" + file + "'";
      return result;
    }
    const std::string_view text = mapped.text();
    std::size_t hi = text.size();
    if (options.start && index == first) hi = std::min<std::uint64_t>(options.start->end, hi);
    // Only complete lines: a writer may be in the middle of the last one.
    while (hi > 0 && text[hi - 1] != '\n')
      --hi;
    while (hi > 0) {
      if (result.scanned_bytes >= options.max_scan_bytes) {
        result.limited = true;
        result.next = SearchCursor{file, hi};
        return result;
      }
      // A block of whole lines ending at hi (the newline before hi is its last line's end).
      const std::size_t block_bytes = std::max<std::size_t>(options.block_bytes, 1);
      std::size_t lo = hi > block_bytes ? hi - block_bytes : 0;
      while (lo > 0 && text[lo - 1] != '\n')
        --lo;
      const std::size_t block_end = hi - 1;  // the block's last newline
      candidate_lines(text, lo, block_end, needle, lines);
      result.scanned_bytes += hi - lo;
      if (needle.empty()) {
        result.scanned_records += lines.size();
      } else {
        result.scanned_records +=
            static_cast<std::uint64_t>(std::count(text.data() + lo, text.data() + hi, '\n'));
      }
      for (auto line = lines.rbegin(); line != lines.rend(); ++line) {
        const std::string_view body = text.substr(line->start, line->end - line->start);
        if (outside_time(body, filter) || body.find(checkpoint_marker) != std::string_view::npos)
          continue;
        Json record = json::parse_or_discarded(body);
        if (!record.is_object() || !matches(record, filter)) continue;
        if (!visit(record, file)) {
          result.next = SearchCursor{file, line->start};
          return result;
        }
      }
      hi = lo;
    }
  }
  return result;
}

SearchResult search_files(const std::vector<std::string>& files, const QueryFilter& filter,
                          std::size_t limit, const ScanOptions& options) {
  SearchResult found;
  if (limit == 0) return found;
  found.scan = scan_files(files, filter, options, [&](Json& record, const std::string& file) {
    record["file"] = file;
    found.records.push_back(std::move(record));
    return found.records.size() < limit;
  });
  // The visitor stopped at the limit: a next page exists only if older records may remain.
  if (found.scan.next && found.scan.next->end == 0 && !found.scan.limited) {
    const auto at = std::find(files.begin(), files.end(), found.scan.next->file);
    if (at != files.end() && at + 1 == files.end()) found.scan.next.reset();
  }
  return found;
}

}  // namespace membrane::audit
