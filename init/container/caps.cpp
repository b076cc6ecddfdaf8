// init/container/caps.cpp — capability dropping with raw syscalls (no libcap allocation after clone).
#include "init/container/caps.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/sys.hpp"

namespace bp::container {

std::uint64_t default_caps() {
  std::uint64_t m = 0;
  for (int c : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_MKNOD, CAP_NET_RAW, CAP_SETGID, CAP_SETUID,
                CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE})
    m |= std::uint64_t{1} << c;
  return m;
}

CapPlan make_cap_plan(std::uint64_t keep) {
  CapPlan p;
  p.keep = keep;
  if (auto t = read_file("/proc/sys/kernel/cap_last_cap"); t) p.last_cap = std::atoi(t->c_str());
  return p;
}

int drop_bounding(const CapPlan& plan) {
  for (int c = 0; c <= plan.last_cap; ++c) {
    if (plan.keep & (std::uint64_t{1} << c)) continue;
    if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
  return 0;
}

int set_caps(const CapPlan& plan) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    auto word = static_cast<std::uint32_t>(plan.keep >> (32 * i));
    data[i].effective = word;
    data[i].permitted = word;
    // Inheritable stays empty: a file with inheritable caps must not gain them on exec
    // (CVE-2022-24769; runc and moby changed the same way).
    data[i].inheritable = 0;
  }
  if (::syscall(SYS_capset, &hdr, data) != 0) return -errno;
  return 0;
}

}  // namespace bp::container
