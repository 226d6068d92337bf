// A stack of its own for signal handlers on the calling thread. A thread that overflowed its
// stack can still run a crash handler (killing the stdio children before the process dies) only
// when that handler runs elsewhere; sigaltstack(2) is per thread, so each worker calls this.
#pragma once

namespace membrane::signal_stack {

void use_on_this_thread();

}  // namespace membrane::signal_stack
