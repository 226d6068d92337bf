// An LD_PRELOAD shim for bench/allocs.sh: counts the calls to malloc, calloc, realloc and the
// aligned allocators (Asio takes its handler and coroutine frame memory from aligned_alloc) in the
// process it is loaded into (and the bytes they ask for), and on SIGUSR2 appends
// "allocations <calls> bytes <bytes> large <calls>" to the file named by MEMBRANE_ALLOC_REPORT.
// "large" counts the requests over glibc's per-thread cache limit (1032 bytes): those take
// malloc's slow path (bins, splitting, consolidation of the fast bins). It changes nothing of
// what the allocator does. Only for benchmarks; never loaded by the gateway itself.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>

extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* old, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);
}

namespace {

std::atomic<unsigned long long> calls{0};
std::atomic<unsigned long long> requested{0};
std::atomic<unsigned long long> large{0};
constexpr std::size_t per_thread_cache_limit = 1032;
const char* report_path = nullptr;

void count(std::size_t size) {
  calls.fetch_add(1, std::memory_order_relaxed);
  requested.fetch_add(size, std::memory_order_relaxed);
  if (size > per_thread_cache_limit) large.fetch_add(1, std::memory_order_relaxed);
}

// Async-signal-safe formatting: no stdio in the handler.
char* append(char* out, const char* text) {
  while (*text)
    *out++ = *text++;
  return out;
}

char* append(char* out, unsigned long long value) {
  char digits[24];
  int length = 0;
  do {
    digits[length++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value);
  while (length)
    *out++ = digits[--length];
  return out;
}

void report(int) {
  if (!report_path) return;
  char line[128];
  char* end = append(line, "allocations ");
  end = append(end, calls.load(std::memory_order_relaxed));
  end = append(end, " bytes ");
  end = append(end, requested.load(std::memory_order_relaxed));
  end = append(end, " large ");
  end = append(end, large.load(std::memory_order_relaxed));
  end = append(end, "\n");
  const int saved_errno = errno;
  const int file = ::open(report_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (file >= 0) {
    [[maybe_unused]] const auto written = ::write(file, line, static_cast<std::size_t>(end - line));
    ::close(file);
  }
  errno = saved_errno;
}

struct InstallReporter {
  InstallReporter() {
    report_path = std::getenv("MEMBRANE_ALLOC_REPORT");
    struct sigaction action {};
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR2, &action, nullptr);
  }
} install_reporter;

}  // namespace

extern "C" void* malloc(std::size_t size) {
  count(size);
  return __libc_malloc(size);
}

extern "C" void* calloc(std::size_t count_of, std::size_t size) {
  count(count_of * size);
  return __libc_calloc(count_of, size);
}

extern "C" void* realloc(void* old, std::size_t size) {
  count(size);
  return __libc_realloc(old, size);
}

extern "C" void* aligned_alloc(std::size_t alignment, std::size_t size) {
  count(size);
  return __libc_memalign(alignment, size);
}

extern "C" void* memalign(std::size_t alignment, std::size_t size) {
  count(size);
  return __libc_memalign(alignment, size);
}

extern "C" int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  count(size);
  void* const pointer = __libc_memalign(alignment, size);
  if (!pointer) return ENOMEM;
  *out = pointer;
  return 0;
}
