// init/container/rootfs.cpp — pivot_root, /proc, /sys, /dev, masked paths, /etc files.
#include "init/container/rootfs.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "common/fd.hpp"
#include "common/sys.hpp"

namespace bp::container {

namespace {

Status mkdir_p(const std::string& path, mode_t mode = 0755) {
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    std::string part = path.substr(0, i);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return sys_error("mkdir(" + part + ")");
  }
  return {};
}

Status do_mount(const char* src, const std::string& target, const char* type, unsigned long flags,
                const char* data = nullptr) {
  if (::mount(src, target.c_str(), type, flags, data) != 0)
    return sys_error(std::string("mount(") + (type ? type : src ? src : "remount") + ", " + target + ")");
  return {};
}

struct DevNode {
  const char* name;
  unsigned major, minor;
  mode_t mode;
};
constexpr DevNode kDevices[] = {
    {"null", 1, 3, 0666},   {"zero", 1, 5, 0666}, {"full", 1, 7, 0666},    {"random", 1, 8, 0666},
    {"urandom", 1, 9, 0666}, {"tty", 5, 0, 0666},  {"fuse", 10, 229, 0666}, {"net/tun", 10, 200, 0666},
};

Status setup_dev() {
  if (auto s = mkdir_p("/dev"); !s) return s;
  if (auto s = do_mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k"); !s) return s;
  if (auto s = mkdir_p("/dev/net"); !s) return s;
  mode_t old = ::umask(0);
  for (const auto& d : kDevices) {
    std::string p = std::string("/dev/") + d.name;
    if (::mknod(p.c_str(), S_IFCHR | d.mode, makedev(d.major, d.minor)) != 0) {
      ::umask(old);
      return sys_error("mknod(" + p + ")");
    }
  }
  ::umask(old);
  for (const char* d : {"/dev/pts", "/dev/shm", "/dev/mqueue"})
    if (auto s = mkdir_p(d); !s) return s;
  if (auto s = do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                        "newinstance,ptmxmode=0666,mode=0620,gid=5");
      !s)
    return s;
  if (auto s = do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k"); !s) return s;
  if (auto s = do_mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC); !s) return s;
  struct Link {
    const char* target;
    const char* path;
  };
  for (const auto& l : {Link{"pts/ptmx", "/dev/ptmx"}, Link{"/proc/self/fd", "/dev/fd"},
                        Link{"/proc/self/fd/0", "/dev/stdin"}, Link{"/proc/self/fd/1", "/dev/stdout"},
                        Link{"/proc/self/fd/2", "/dev/stderr"}, Link{"/proc/kcore", "/dev/core"}})
    if (::symlink(l.target, l.path) != 0) return sys_error(std::string("symlink(") + l.path + ")");
  // Nothing new can appear in /dev: a process with CAP_MKNOD could otherwise make a
  // node for the VM's disk. Every other mount is nodev, so nodes made there don't open.
  return do_mount(nullptr, "/dev", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k");
}

// As OCI runtimes do: hide what discloses or changes the host, make the rest read-only.
constexpr const char* kMaskedFiles[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                                        "/proc/latency_stats", "/proc/sysrq-trigger"};
constexpr const char* kMaskedDirs[] = {"/proc/acpi", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"};
constexpr const char* kReadOnly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"};

Status mask_paths() {
  for (const char* f : kMaskedFiles) {
    if (::access(f, F_OK) != 0) continue;
    if (auto s = do_mount("/dev/null", f, nullptr, MS_BIND); !s) return s;
  }
  for (const char* d : kMaskedDirs) {
    if (::access(d, F_OK) != 0) continue;
    if (auto s = do_mount("tmpfs", d, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0"); !s) return s;
  }
  for (const char* d : kReadOnly) {
    if (::access(d, F_OK) != 0) continue;
    if (auto s = do_mount(d, d, nullptr, MS_BIND | MS_REC); !s) return s;
    if (auto s = do_mount(nullptr, d, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
        !s)
      return s;
  }
  return {};
}

Status write_etc(const RootfsSpec& spec) {
  if (auto s = mkdir_p("/etc"); !s) return s;
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" +
                      spec.hostname + "\n";
  // Inside the new root: a symlink here can only point at the container's own files.
  for (auto [path, body] : {std::pair<const char*, const std::string*>{"/etc/hosts", &hosts},
                            {"/etc/resolv.conf", &spec.resolv_conf}}) {
    ::unlink(path);
    if (auto s = write_file(path, *body, 0644); !s) return s;
  }
  ::unlink("/etc/hostname");
  return write_file("/etc/hostname", spec.hostname + "\n", 0644);
}

}  // namespace

Status setup_rootfs(const RootfsSpec& spec) {
  // Nothing we mount from here on may propagate back to the host (slave: events go one
  // way only, host to container; the host shares just what it means to add later, the
  // read-only checkpoints under /.sprite/checkpoints).
  if (auto s = do_mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE); !s) return s;
  // pivot_root needs the new root to be a mount point; nodev keeps device nodes made
  // in the image unusable.
  if (auto s = do_mount(spec.rootfs.c_str(), spec.rootfs, nullptr, MS_BIND | MS_REC); !s) return s;
  if (auto s = do_mount(nullptr, spec.rootfs, nullptr, MS_BIND | MS_REMOUNT | MS_NODEV); !s) return s;
  if (::chdir(spec.rootfs.c_str()) != 0) return sys_error("chdir(" + spec.rootfs + ")");
  // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
  // no path to the host's filesystem (runc does the same).
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return sys_error("pivot_root(" + spec.rootfs + ")");
  if (::umount2(".", MNT_DETACH) != 0) return sys_error("umount2(old root)");
  if (::chdir("/") != 0) return sys_error("chdir(/)");

  for (const char* d : {"/proc", "/sys", "/tmp"})
    if (auto s = mkdir_p(d); !s) return s;
  if (auto s = do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC); !s) return s;
  if (auto s = do_mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC); !s) return s;
  // The container's own cgroup (its cgroup namespace root), read-only, for tools that look.
  if (::access("/sys/fs/cgroup", F_OK) == 0)
    (void)do_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
  if (auto s = setup_dev(); !s) return s;
  if (auto s = mask_paths(); !s) return s;
  if (::chmod("/tmp", 01777) != 0) return sys_error("chmod(/tmp)");
  if (::sethostname(spec.hostname.data(), spec.hostname.size()) != 0) return sys_error("sethostname");
  return write_etc(spec);
}

}  // namespace bp::container
