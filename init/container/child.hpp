// init/container/child.hpp — how a child between clone and exec reports failure: {step, errno} on a pipe.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.hpp"

namespace bp::container {

enum class Step : std::int32_t {
  none = 0, setns, ptmx, clone, sendmsg, setsid, ctty, dup2, rlimit, seccomp, caps_bounding,
  setgroups, setgid, setuid, caps, no_new_privs, chdir, exec,
};
const char* step_name(Step s);

struct ChildFailure {
  Step step = Step::none;
  std::int32_t err = 0;
};

// Async-signal-safe: writes the failure to fd (one write, below PIPE_BUF), then _exit(code).
[[noreturn]] void child_fail(int fd, Step step, int err, int code = 127);

// Reads a report pipe until EOF, bounded. ok(none) when the child exec'd (the pipe,
// close-on-exec, closed without a word); the failure otherwise.
Result<ChildFailure> read_child_report(int fd, int timeout_ms);

}  // namespace bp::container
