// init/host.hpp — host mode's launcher: re-executes ballpoint as PID 1 of new pid and mount namespaces.
#pragma once

#include "init/args.hpp"

namespace bp::init {

// Runs the launcher: checks it is root, creates the state directory, clones a
// child into new pid and mount namespaces that re-executes this binary with
// --host-pid1, forwards shutdown signals to it and returns its exit code.
int run_host_launcher(const Args& args);

}  // namespace bp::init
