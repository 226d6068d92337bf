#include "upstream/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/syscall.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>

extern char** environ;

namespace membrane::upstream {
namespace {

struct Pipe {
  int read_end = -1;
  int write_end = -1;
  ~Pipe() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
  bool open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    read_end = fds[0];
    write_end = fds[1];
    return true;
  }
  int take_read() { return std::exchange(read_end, -1); }
  int take_write() { return std::exchange(write_end, -1); }
};

// Everything the child needs is built before fork(): after it, only async-signal-safe calls.
struct ExecImage {
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;

  explicit ExecImage(const ChildCommand& command) {
    argv_storage.push_back(command.program);
    argv_storage.insert(argv_storage.end(), command.args.begin(), command.args.end());
    std::map<std::string, std::string> merged;
    for (char** entry = environ; entry && *entry; ++entry) {
      std::string_view text(*entry);
      const auto equals = text.find('=');
      if (equals == std::string_view::npos) continue;
      merged[std::string(text.substr(0, equals))] = std::string(text.substr(equals + 1));
    }
    for (const auto& [key, value] : command.env)
      merged[key] = value;
    for (const auto& [key, value] : merged)
      env_storage.push_back(key + "=" + value);
    for (auto& arg : argv_storage)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    for (auto& entry : env_storage)
      envp.push_back(entry.data());
    envp.push_back(nullptr);
  }
};

// Process groups of the children alive now, for the crash handler: a fixed array of atomics,
// because a signal handler may neither lock nor allocate.
constexpr std::size_t max_tracked_groups = 8192;
std::array<std::atomic<pid_t>, max_tracked_groups> live_groups{};

void track_group(pid_t group) {
  for (auto& slot : live_groups) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, group)) return;
  }
}

void untrack_group(pid_t group) {
  for (auto& slot : live_groups) {
    pid_t expected = group;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

constexpr int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
struct sigaction previous_handlers[std::size(crash_signals)];

void kill_groups_and_chain(int signal_number, siginfo_t* info, void* context) {
  for (auto& slot : live_groups) {
    if (const pid_t group = slot.load(); group > 0) ::kill(-group, SIGKILL);
  }
  for (std::size_t i = 0; i < std::size(crash_signals); ++i) {
    if (crash_signals[i] != signal_number) continue;
    const struct sigaction& previous = previous_handlers[i];
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
      previous.sa_sigaction(signal_number, info, context);
      return;
    }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
        previous.sa_handler != nullptr) {
      previous.sa_handler(signal_number);
      return;
    }
  }
  // Default action: re-raised on return, since SA_RESETHAND restored it.
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

// Every descriptor of the gateway except the child's own three: listening and client sockets,
// other children's pipes, key and audit files, epoll and event fds. Asio opens its sockets
// without close-on-exec, so they are closed here, between fork and exec.
void close_inherited_descriptors(int keep, int highest) {
  const auto close_span = [](unsigned first, unsigned last, int highest_fd) {
    if (first > last) return;
    if (::syscall(SYS_close_range, first, last, 0) == 0) return;
    for (int fd = static_cast<int>(first); fd <= std::min<long>(last, highest_fd); ++fd)
      ::close(fd);
  };
  close_span(3, static_cast<unsigned>(keep) - 1, highest);
  close_span(static_cast<unsigned>(keep) + 1, ~0U, highest);
}

[[noreturn]] void exec_child(const ExecImage& image, const std::string& working_directory,
                             int stdin_fd, int stdout_fd, int stderr_fd, int report_fd,
                             pid_t parent, int highest_fd) {
  // Die with the gateway even if it is killed without a chance to stop us.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  ::setpgid(0, 0);
  // The gateway ignores SIGPIPE and handles SIGTERM/SIGINT/SIGHUP; a server starts with defaults.
  for (int signal_number : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD})
    ::signal(signal_number, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int step = 1;
  if (::dup2(stdin_fd, STDIN_FILENO) >= 0 && ::dup2(stdout_fd, STDOUT_FILENO) >= 0 &&
      ::dup2(stderr_fd, STDERR_FILENO) >= 0) {
    close_inherited_descriptors(report_fd, highest_fd);
    step = 2;
    if (working_directory.empty() || ::chdir(working_directory.c_str()) == 0) {
      ::execvpe(image.argv[0], image.argv.data(), image.envp.data());
      step = 3;
    }
  }
  const int report[2] = {step, errno};
  [[maybe_unused]] auto ignored = ::write(report_fd, report, sizeof report);
  ::_exit(127);
}

}  // namespace

ChildProcess::ChildProcess(Passkey, const asio::any_io_executor& executor, pid_t pid, int input_fd,
                           int output_fd, int errors_fd)
    : pid_(pid),
      input_(executor, input_fd),
      output_(executor, output_fd),
      errors_(executor, errors_fd) {}

std::unique_ptr<ChildProcess> ChildProcess::spawn(const asio::any_io_executor& executor,
                                                  const ChildCommand& command, std::string& error) {
  if (command.program.empty()) {
    error = "no command to run";
    return nullptr;
  }
  Pipe to_child, from_child, child_errors, exec_report;
  if (!to_child.open() || !from_child.open() || !child_errors.open() || !exec_report.open()) {
    error = std::string("cannot create pipes: ") + std::strerror(errno);
    return nullptr;
  }
  const ExecImage image(command);
  // Where the fallback close loop stops when close_range(2) is missing (kernels before 5.9).
  rlimit files{};
  const int highest_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                             ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                             : 1 << 16;
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("fork failed: ") + std::strerror(errno);
    return nullptr;
  }
  if (pid == 0) {
    exec_child(image, command.working_directory, to_child.read_end, from_child.write_end,
               child_errors.write_end, exec_report.write_end, parent, highest_fd);
  }
  // Parent. The report pipe is close-on-exec: reading EOF means exec succeeded.
  ::close(exec_report.take_write());
  int report[2] = {0, 0};
  ssize_t got;
  do {
    got = ::read(exec_report.read_end, report, sizeof report);
  } while (got < 0 && errno == EINTR);
  if (got > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    const char* what = report[0] == 1   ? "cannot set up its standard streams"
                       : report[0] == 2 ? "cannot change to its working directory"
                                        : "cannot execute";
    error = std::string(what) + " '" +
            (report[0] == 2 ? command.working_directory : command.program) +
            "': " + std::strerror(report[1]);
    return nullptr;
  }
  // Avoid a race with the child's own setpgid so signals to the group always reach it.
  ::setpgid(pid, pid);
  track_group(pid);
  const int input_fd = to_child.take_write();
  const int output_fd = from_child.take_read();
  const int errors_fd = child_errors.take_read();
  for (int fd : {input_fd, output_fd, errors_fd})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return std::make_unique<ChildProcess>(Passkey{}, executor, pid, input_fd, output_fd, errors_fd);
}

ChildProcess::~ChildProcess() {
  if (!exit_status_ && !try_reap()) {
    signal_group(SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  untrack_group(pid_);
}

void ChildProcess::kill_children_on_crash() {
  for (std::size_t i = 0; i < std::size(crash_signals); ++i) {
    struct sigaction action {};
    action.sa_sigaction = kill_groups_and_chain;
    action.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    ::sigaction(crash_signals[i], &action, &previous_handlers[i]);
  }
}

void ChildProcess::signal_group(int signal_number) {
  if (exit_status_) return;
  // The group may already be gone (the leader exited): fall back to the process itself.
  if (::kill(-pid_, signal_number) != 0) ::kill(pid_, signal_number);
}

void ChildProcess::close_input() {
  error_code ignored;
  input_.close(ignored);
}

std::optional<int> ChildProcess::try_reap() {
  if (exit_status_) return exit_status_;
  int status = 0;
  const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == pid_)
    exit_status_ = status;
  else if (reaped < 0 && errno == ECHILD)
    exit_status_ = 0;  // reaped elsewhere: nothing left
  return exit_status_;
}

awaitable<std::optional<int>> ChildProcess::wait_for_exit(std::chrono::milliseconds limit) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto pause = std::chrono::milliseconds(5);
  while (!try_reap()) {
    if (std::chrono::steady_clock::now() >= deadline) co_return std::nullopt;
    timer.expires_after(pause);
    co_await timer.async_wait(use_nothrow);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
  co_return exit_status_;
}

awaitable<int> ChildProcess::stop(std::chrono::milliseconds grace) {
  close_input();
  if (auto status = co_await wait_for_exit(grace)) co_return *status;
  signal_group(SIGTERM);
  if (auto status = co_await wait_for_exit(grace)) co_return *status;
  signal_group(SIGKILL);
  auto status = co_await wait_for_exit(std::chrono::seconds(5));
  co_return status.value_or(-1);
}

std::string ChildProcess::describe_status(int wait_status) {
  if (WIFEXITED(wait_status))
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(wait_status)) + " (" +
           ::strsignal(WTERMSIG(wait_status)) + ")";
  }
  return "ended (status " + std::to_string(wait_status) + ")";
}

}  // namespace membrane::upstream
