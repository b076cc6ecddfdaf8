// init/container/rootfs.hpp — the container's filesystem view, set up by its init before anything runs.
#pragma once

#include <string>

#include "common/result.hpp"

namespace bp::container {

struct RootfsSpec {
  std::string rootfs;       // absolute path of the root directory (later: the ext4 mount)
  std::string hostname;
  std::string resolv_conf;  // contents of /etc/resolv.conf
};

// Runs in the container's init, in its fresh mount, pid, uts and net namespaces:
// pivot_root into rootfs (the old root detached, so nothing of the host stays
// reachable), fresh /proc, read-only /sys, a minimal /dev, masked and read-only
// paths as OCI runtimes do, the hostname, /etc/hosts, /etc/hostname, /etc/resolv.conf.
// Every mount after the pivot resolves inside the new root, so a symlink planted in
// the image cannot redirect a mount onto the host.
Status setup_rootfs(const RootfsSpec& spec);

}  // namespace bp::container
