// init/mounts.cpp — mount(2) of the API filesystems and cgroup2.
#include "init/mounts.hpp"

#include <sys/mount.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>

#include "common/sys.hpp"
#include "init/container/cgroup.hpp"

namespace bp::init {

namespace {

struct MountSpec {
  const char* source;
  const char* target;
  const char* fstype;
  unsigned long flags;
  const char* data;
};

constexpr MountSpec kApiFilesystems[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
    {"tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
};

Status mount_one(const MountSpec& m) {
  if (::mkdir(m.target, 0755) != 0 && errno != EEXIST)
    return sys_error(std::string("mkdir(") + m.target + ")");
  if (::mount(m.source, m.target, m.fstype, m.flags, m.data) != 0 && errno != EBUSY)
    return sys_error(std::string("mount(") + m.fstype + ", " + m.target + ")");
  return {};
}

}  // namespace

Status mount_api_filesystems(const Logger& log) {
  for (const auto& m : kApiFilesystems) {
    if (auto s = mount_one(m); !s) return s;
    log.debug("mounted", {{"target", m.target}, {"fstype", m.fstype}});
  }
  return {};
}

Result<std::string> mount_cgroup2(const std::string& path, std::vector<std::string>* refused) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("mkdir(" + path + ")");
  if (::mount("cgroup2", path.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate") != 0 &&
      errno != EBUSY)
    return sys_error("mount(cgroup2, " + path + ")");
  return container::enable_subtree_controllers(path, refused);
}

Status leave_initramfs(bool& moved) {
  moved = false;
  struct statfs st {};
  if (::statfs("/", &st) != 0) return sys_error("statfs(/)");
  constexpr long kRamfs = 0x858458f6, kTmpfs = 0x01021994;
  if (st.f_type != kRamfs && st.f_type != kTmpfs) return {};
  const char* dir = "/.bp-root";
  if (::mkdir(dir, 0700) != 0 && errno != EEXIST) return sys_error("mkdir(/.bp-root)");
  if (::mount("/", dir, nullptr, MS_BIND, nullptr) != 0) return sys_error("mount(/, /.bp-root, MS_BIND)");
  if (::chdir(dir) != 0) return sys_error("chdir(/.bp-root)");
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return sys_error("mount(/.bp-root, /, MS_MOVE)");
  if (::chroot(".") != 0) return sys_error("chroot(.)");
  if (::chdir("/") != 0) return sys_error("chdir(/)");
  ::rmdir(dir);  // in the new root it is an empty directory again
  moved = true;
  return {};
}

Status private_mounts_and_proc() {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return sys_error("mount(/, MS_REC|MS_PRIVATE)");
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return sys_error("mount(proc, /proc)");
  return {};
}

}  // namespace bp::init
