// init/signals.hpp — PID 1's signal set-up: block everything asynchronous, read it from a signalfd.
#pragma once

#include <signal.h>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace bp::init {

// Blocks every asynchronous signal in the calling thread (call from main before any
// thread exists, so threads inherit the mask) and resets ignored dispositions and
// SIGCHLD to SIG_DFL. The
// synchronous ones (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS) stay
// unblocked for the crash handler.
Status block_async_signals();

// The signals PID 1 acts on: SIGCHLD (reap) and the shutdown requests.
sigset_t handled_signals();
bool is_shutdown_signal(int sig);

// A non-blocking, close-on-exec signalfd for handled_signals().
Result<UniqueFd> open_signalfd();


}  // namespace bp::init
