// init/boot.hpp — PID 1's life: ordered boot steps, the event loop, ordered shutdown.
#pragma once

#include "init/args.hpp"

namespace bp::init {

// Runs PID 1 (VM mode, or host mode's re-executed PID 1) until shutdown. In VM mode
// it never returns (it powers the machine off); in host mode it returns the exit code.
int run_pid1(const Args& args);

}  // namespace bp::init
