// init/container/seccomp.hpp — the syscall filter of every container process, built once in the parent.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "common/result.hpp"

namespace bp::container {

// A compiled BPF program, ready for seccomp(SECCOMP_SET_MODE_FILTER) in a child.
struct SeccompProgram {
  std::vector<sock_filter> insns;
};

// Modelled on Docker's default profile for a container without CAP_SYS_ADMIN: kernel
// modules, kexec, bpf, perf_event_open, keyrings, reboot, swap, accounting, clock
// setting, raw I/O, mount and namespace creation (clone/unshare with CLONE_NEW*,
// setns) and the other host-wide calls fail with EPERM; clone3 fails with ENOSYS so
// libc falls back to clone, whose flags the filter can see.
Result<SeccompProgram> build_default_filter();

// Async-signal-safe: installs prog on the calling thread. 0 or -errno.
int install_filter(const SeccompProgram& prog);

}  // namespace bp::container
