// A spawned MCP server process: stdin/stdout/stderr pipes as Asio descriptors, its own process
// group (so a wrapper such as `npx` and the server it starts are signalled together), and a
// shutdown that follows MCP's stdio lifecycle: close stdin, wait, SIGTERM, wait, SIGKILL — and
// always reap, so no zombie is left behind.
#pragma once

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/asio.hpp"

namespace membrane::upstream {

struct ChildCommand {
  std::string program;  // PATH lookup when it has no '/'
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // overrides on top of the gateway's environment
  std::string working_directory;
};

class ChildProcess {
 public:
  // Spawns the command. On failure returns null and fills `error` (including exec failures such
  // as "No such file or directory", reported back from the child before it exits).
  static std::unique_ptr<ChildProcess> spawn(const asio::any_io_executor& executor,
                                             const ChildCommand& command, std::string& error);
  ~ChildProcess();  // still running: SIGKILL to its group, then reap (never leaves a zombie)

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  asio::posix::stream_descriptor& input() { return input_; }
  asio::posix::stream_descriptor& output() { return output_; }
  asio::posix::stream_descriptor& errors() { return errors_; }

  void close_input();
  // Reaps the child if it has exited; returns its wait status.
  std::optional<int> try_reap();
  // Graceful stop, at most about 2 × grace: returns the wait status.
  awaitable<int> stop(std::chrono::milliseconds grace);
  // Waits (polling) until the child has exited, up to `limit`; nullopt when still running.
  awaitable<std::optional<int>> wait_for_exit(std::chrono::milliseconds limit);

  static std::string describe_status(int wait_status);

  // Makes a crash of the gateway (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) kill every child's
  // process group before the process dies, then lets the previous handler (a sanitizer's
  // report, or the default core dump) run. SIGKILL cannot be caught: there the direct children
  // die by their parent-death signal, and the servers they started see their stdin close.
  static void kill_children_on_crash();

 private:
  // Only spawn() can make one: the passkey keeps the constructor usable by make_unique.
  struct Passkey {};

 public:
  ChildProcess(Passkey, const asio::any_io_executor& executor, pid_t pid, int input_fd,
               int output_fd, int errors_fd);

 private:
  void signal_group(int signal_number);

  pid_t pid_;
  std::optional<int> exit_status_;
  asio::posix::stream_descriptor input_;
  asio::posix::stream_descriptor output_;
  asio::posix::stream_descriptor errors_;
};

}  // namespace membrane::upstream
