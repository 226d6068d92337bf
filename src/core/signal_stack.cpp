#include "membrane/core/signal_stack.hpp"

#include <signal.h>

#include <memory>

namespace membrane::signal_stack {

void use_on_this_thread() {
  // Freed when the thread ends; by then no handler of this thread can run.
  thread_local std::unique_ptr<char[]> memory;
  if (memory) return;
  constexpr std::size_t size = 64 * 1024;
  memory = std::make_unique<char[]>(size);
  stack_t stack{};
  stack.ss_sp = memory.get();
  stack.ss_size = size;
  ::sigaltstack(&stack, nullptr);
}

}  // namespace membrane::signal_stack
