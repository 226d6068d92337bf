// Threads that serve the event loops (the audit writer, the span exporter, signing) run under
// SCHED_BATCH. Waking one then does not preempt the worker that woke it: it runs when the worker
// waits, or on another CPU, so it takes in one go all the work handed to it meanwhile (a larger
// group commit, a fuller batch) instead of one item per context switch. Their share of the CPU
// under load is unchanged: SCHED_BATCH keeps the thread's nice value.
#pragma once

namespace membrane::core {

// For the calling thread. Best effort: where the policy cannot be set, the thread runs as before.
void run_as_background_thread();

}  // namespace membrane::core
