#include "membrane/core/signal_stack.hpp"

#include <signal.h>

#include <memory>

namespace membrane::signal_stack {

namespace {

// This thread's own signal stack, taken out of use before its memory is freed at thread exit: a
// signal stack must never point at freed memory, and a runtime that frees the stack it finds
// installed (AddressSanitizer unmaps "its" stack when a thread ends) must not find this one.
struct ThreadStack {
  std::unique_ptr<char[]> memory;
  ThreadStack() = default;
  ThreadStack(const ThreadStack&) = delete;
  ThreadStack& operator=(const ThreadStack&) = delete;
  ~ThreadStack() {
    if (!memory) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    ::sigaltstack(&off, nullptr);
  }
};

}  // namespace

void use_on_this_thread() {
  thread_local ThreadStack own;
  if (own.memory) return;
  // A stack already in place serves the crash handler as well, and stays its owner's (the
  // sanitizers' runtime installs one on every thread and frees it itself).
  stack_t current{};
  if (::sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
  constexpr std::size_t size = 64 * 1024;
  own.memory = std::make_unique<char[]>(size);
  stack_t stack{};
  stack.ss_sp = own.memory.get();
  stack.ss_size = size;
  ::sigaltstack(&stack, nullptr);
}

}  // namespace membrane::signal_stack
