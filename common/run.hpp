// common/run.hpp — runs a helper program (mkfs.ext4, cp) to completion from any thread
// of PID 1, collecting what it printed.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"

namespace bp {

// Runs argv (argv[0] found on a fixed PATH: /usr/sbin, /usr/bin, /sbin, /bin) with
// stdin from /dev/null; its stdout and stderr together are the result. Exit status
// other than 0 is an error naming the program, the status and the end of its output.
//
// PID 1's reaper waits for any child on SIGCHLD, so the program is not our child: it is
// the child of a helper cloned with no exit signal (which waitpid(-1) skips, and which
// never execs: exec would reset its exit signal to SIGCHLD). The helper waits for the
// program and exits with its status; we wait for the helper through its pidfd.
Result<std::string> run_program(const std::vector<std::string>& argv);

}  // namespace bp
