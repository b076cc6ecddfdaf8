// init/mounts.hpp — the filesystems PID 1 mounts at boot, and cgroup2.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/log.hpp"
#include "common/result.hpp"

namespace bp::init {

// VM mode: /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /run. One already
// mounted (EBUSY) counts as done.
Status mount_api_filesystems(const Logger& log);

// Mounts cgroup2 at path (if not yet) and enables every available controller for
// children. Returns the enabled controllers, space-separated as cgroup.subtree_control
// shows them; refused ones go to *refused.
Result<std::string> mount_cgroup2(const std::string& path, std::vector<std::string>* refused);

// VM mode, before anything is mounted: when the root is the initramfs, give it a parent
// mount (what switch_root does, minus the switch): bind it onto a directory of itself,
// move that mount onto /, chroot into it. pivot_root(2), which every container start
// needs, refuses a root without a parent. Sets moved when it did so.
Status leave_initramfs(bool& moved);

// Host mode: our mounts stay ours (the root made rprivate) and /proc shows our pid
// namespace.
Status private_mounts_and_proc();


}  // namespace bp::init
