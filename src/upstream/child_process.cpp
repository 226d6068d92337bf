#include "upstream/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
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

[[noreturn]] void exec_child(const ExecImage& image, const std::string& working_directory,
                             int stdin_fd, int stdout_fd, int stderr_fd, int report_fd,
                             pid_t parent) {
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
  int step = 0;
  if (::dup2(stdin_fd, STDIN_FILENO) < 0 || ::dup2(stdout_fd, STDOUT_FILENO) < 0 ||
      ::dup2(stderr_fd, STDERR_FILENO) < 0) {
    step = 1;
  } else if (!working_directory.empty() && ::chdir(working_directory.c_str()) != 0) {
    step = 2;
  } else {
    ::execvpe(image.argv[0], image.argv.data(), image.envp.data());
    step = 3;
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
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("fork failed: ") + std::strerror(errno);
    return nullptr;
  }
  if (pid == 0) {
    exec_child(image, command.working_directory, to_child.read_end, from_child.write_end,
               child_errors.write_end, exec_report.write_end, parent);
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
  const int input_fd = to_child.take_write();
  const int output_fd = from_child.take_read();
  const int errors_fd = child_errors.take_read();
  for (int fd : {input_fd, output_fd, errors_fd})
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return std::make_unique<ChildProcess>(Passkey{}, executor, pid, input_fd, output_fd, errors_fd);
}

ChildProcess::~ChildProcess() {
  if (exit_status_) return;
  if (try_reap()) return;
  signal_group(SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
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
