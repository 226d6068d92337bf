// Run-time options of the sanitizer build (MEMBRANE_SANITIZE; docs/sanitizers.md), compiled into
// every executable of that tree: a gateway started by ctest, by the integration harness, by a
// spawnSync'ed CLI run or by hand then checks the same things. The runtimes read these before
// ASAN_OPTIONS / UBSAN_OPTIONS, so the environment still adds to or overrides them (the
// integration tests' wrapper, fail-on-reports.sh, adds log_path that way).

extern "C" {

// Leaks are reported at exit (SIGTERM ends the gateway through its normal shutdown); the first
// error ends the process with a non-zero status; static initialisers may not read another file's
// globals before they are initialised; a pointer into a stack frame that has returned (a
// coroutine's reference parameter bound to its caller's temporary) is caught.
__attribute__((visibility("default"), used, no_sanitize("address", "undefined"))) const char*
__asan_default_options() {
  return "detect_leaks=1:halt_on_error=1:abort_on_error=0:check_initialization_order=1:"
         "strict_init_order=1:detect_stack_use_after_return=1:print_summary=1";
}

// The binaries are built not to recover from UB; the stack and the check's name make a report
// actionable.
__attribute__((visibility("default"), used, no_sanitize("address", "undefined"))) const char*
__ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1:report_error_type=1";
}

}  // extern "C"
