// init/container/caps.hpp — the capability set a container's processes keep (Docker's default).
#pragma once

#include <cstdint>

namespace bp::container {

// Docker's default set: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID,
// SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.
std::uint64_t default_caps();

// Prepared in the parent so the child between clone and exec only makes syscalls.
struct CapPlan {
  std::uint64_t keep = 0;  // bounding, permitted and effective set (inheritable: empty)
  int last_cap = 40;       // /proc/sys/kernel/cap_last_cap
};
CapPlan make_cap_plan(std::uint64_t keep);

// Async-signal-safe. Drops every capability outside plan.keep from the bounding set
// and clears the ambient set. Returns 0 or -errno.
int drop_bounding(const CapPlan& plan);
// Async-signal-safe. Sets permitted and effective to plan.keep and inheritable to
// nothing (call after any setuid). Returns 0 or -errno.
int set_caps(const CapPlan& plan);

}  // namespace bp::container
