// storage/ext4.cpp — ext4 on a frontend's block device: made on first use, mounted
// with discard.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/run.hpp"
#include "common/sys.hpp"
#include "storage/frontend.hpp"

namespace bp::storage {

namespace {

// s_magic: the superblock starts at byte 1024, the magic 56 bytes into it, little-endian.
constexpr off_t kMagicOffset = 1024 + 56;
constexpr unsigned char kMagic[2] = {0x53, 0xEF};

Result<bool> has_ext4(const std::string& device) {
  UniqueFd fd(retry_eintr([&] { return ::open(device.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (!fd) return sys_error("open(" + device + ")");
  unsigned char magic[2];
  ssize_t n = retry_eintr([&] { return ::pread(fd.get(), magic, sizeof magic, kMagicOffset); });
  if (n < 0) return sys_error("pread(" + device + ")");
  return n == sizeof magic && magic[0] == kMagic[0] && magic[1] == kMagic[1];
}

}  // namespace

Status ensure_ext4(const std::string& device) {
  auto has = has_ext4(device);
  if (!has) return std::move(has.error()).wrap("ext4 on " + device);
  if (*has) return {};
  // Lazy inode tables and journal: mkfs writes metadata only, and the kernel zeroes
  // inode tables later (as trims, which cost the volume nothing). No discard: the
  // device reads as zeros already.
  auto out = run_program({"mkfs.ext4", "-q", "-F", "-b", "4096", "-E",
                          "lazy_itable_init=1,lazy_journal_init=1,nodiscard", device});
  if (!out) return std::move(out.error()).wrap("ext4 on " + device);
  Logger("storage.ext4").info("ext4 created", {{"device", device}});
  return {};
}

Status mount_ext4(const std::string& device, const std::string& target) {
  // discard: freed blocks are trimmed at each journal commit, so the volume stops
  // storing what the user deleted.
  if (::mount(device.c_str(), target.c_str(), "ext4", 0, "discard") != 0)
    return sys_error("mount(" + device + ", " + target + ", ext4, discard)");
  return {};
}

Status mount_ext4_read_only(const std::string& device, const std::string& target) {
  if (::mount(device.c_str(), target.c_str(), "ext4", MS_RDONLY | MS_NOSUID | MS_NODEV, "") != 0)
    return sys_error("mount(" + device + ", " + target + ", ext4, ro)");
  return {};
}

}  // namespace bp::storage
