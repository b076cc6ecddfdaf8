// init/container/seccomp.cpp — libseccomp builds the filter; a memfd carries the BPF out of it.
#include "init/container/seccomp.hpp"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/fd.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace bp::container {

namespace {

// Calls no container process needs and every escape wants.
constexpr const char* kDenied[] = {
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "stime", "iopl", "ioperm", "mount", "umount", "umount2", "pivot_root",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "setns",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "quotactl", "quotactl_fd", "nfsservctl",
    "syslog", "uselib", "userfaultfd", "vm86", "vm86old", "create_module", "get_kernel_syms",
    "query_module", "_sysctl", "sysfs", "ustat", "kcmp", "process_vm_readv", "process_vm_writev",
    "fanotify_init", "vhangup", "pciconfig_read", "pciconfig_write", "pciconfig_iobase", "lsm_set_self_attr",
    // io_uring reaches around seccomp itself (its operations are not syscalls).
    "io_uring_setup", "io_uring_enter", "io_uring_register",
};

constexpr unsigned long kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS,    CLONE_NEWIPC, CLONE_NEWUSER,
                                             CLONE_NEWPID, CLONE_NEWNET,    CLONE_NEWCGROUP, CLONE_NEWTIME};

struct CtxDeleter {
  void operator()(scmp_filter_ctx c) const { seccomp_release(c); }
};

}  // namespace

Result<SeccompProgram> build_default_filter() {
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return make_error("seccomp_init failed");
  auto deny = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDenied) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not a syscall on this architecture
    if (int rc = seccomp_rule_add(ctx.get(), deny, nr, 0); rc < 0)
      return make_error(std::string("seccomp_rule_add(") + name + "): " + std::strerror(-rc), -rc);
  }
  for (unsigned long f : kNamespaceFlags) {
    for (int nr : {SCMP_SYS(clone), SCMP_SYS(unshare)}) {
      if (int rc = seccomp_rule_add(ctx.get(), deny, nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, f, f)); rc < 0)
        return make_error(std::string("seccomp_rule_add(clone/unshare flags): ") + std::strerror(-rc), -rc);
    }
  }
  // vsock talks to the hypervisor's host side: nothing of the container's business.
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                SCMP_A0(SCMP_CMP_EQ, 40 /* AF_VSOCK */));
      rc < 0)
    return make_error(std::string("seccomp_rule_add(socket AF_VSOCK): ") + std::strerror(-rc), -rc);
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc < 0)
    return make_error(std::string("seccomp_rule_add(clone3): ") + std::strerror(-rc), -rc);

  UniqueFd mem(::memfd_create("bp-seccomp", MFD_CLOEXEC));
  if (!mem) return sys_error("memfd_create");
  if (int rc = seccomp_export_bpf(ctx.get(), mem.get()); rc < 0)
    return make_error(std::string("seccomp_export_bpf: ") + std::strerror(-rc), -rc);
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
    return make_error("seccomp_export_bpf: unexpected program size " + std::to_string(size));
  SeccompProgram prog;
  prog.insns.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (::pread(mem.get(), prog.insns.data(), static_cast<std::size_t>(size), 0) != size)
    return sys_error("pread(seccomp memfd)");
  return prog;
}

int install_filter(const SeccompProgram& prog) {
  sock_fprog fprog{static_cast<unsigned short>(prog.insns.size()), const_cast<sock_filter*>(prog.insns.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) return -errno;
  return 0;
}

}  // namespace bp::container
