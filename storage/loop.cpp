// storage/loop.cpp — loop devices over a file, and attach_fuse_loop(): the FUSE disk
// file carried by a loop device.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/sys.hpp"
#include "storage/frontend.hpp"

namespace bp::storage {

namespace {

constexpr std::uint32_t kBlockSize = 4096;
// LOOP_CTL_GET_FREE and LOOP_CONFIGURE are two calls: another process may configure
// the same free device in between, and we then try the next one.
constexpr int kConfigureAttempts = 16;
// A filesystem unmounted a moment ago may still hold the device briefly.
constexpr auto kBusyWait = std::chrono::seconds(1);
// The kernel lets go of the file at the device's last close, which someone else (a
// blkid, udev) may be the one to do.
constexpr auto kFreeWait = std::chrono::seconds(5);
constexpr auto kPoll = std::chrono::milliseconds(10);

std::string sysfs_attr(const std::string& device, const char* attr) {
  return "/sys/block/" + device.substr(device.rfind('/') + 1) + "/loop/" + attr;
}

// A sysfs attribute without its newline; "" when absent (the device is not bound).
std::string read_attr(const std::string& device, const char* attr) {
  auto s = read_file(sysfs_attr(device, attr));
  if (!s) return "";
  while (!s->empty() && s->back() == '\n') s->pop_back();
  return std::move(*s);
}

// LOOP_CLR_FD on device if it is still bound to the file (file_dev, file_ino).
// exclusive: open the device O_EXCL, which fails with EBUSY while a filesystem is
// mounted on it and keeps anyone from mounting it meanwhile. Without it, a device still
// in use is cleared by the kernel at its last close.
Status clear(const std::string& device, std::uint64_t file_dev, std::uint64_t file_ino, bool exclusive) {
  UniqueFd fd;
  auto deadline = std::chrono::steady_clock::now() + kBusyWait;
  for (;;) {
    fd.reset(retry_eintr([&] { return ::open(device.c_str(), O_RDONLY | O_CLOEXEC | (exclusive ? O_EXCL : 0)); }));
    if (fd || errno != EBUSY || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPoll);
  }
  if (!fd && errno == ENXIO) return {};  // being cleared already
  if (!fd && errno == EBUSY)
    return sys_error("open(" + device + ", O_EXCL)", EBUSY).wrap("still in use (is its filesystem mounted?)");
  if (!fd) return sys_error("open(" + device + ")");

  loop_info64 info{};
  if (::ioctl(fd.get(), LOOP_GET_STATUS64, &info) != 0) {
    if (errno == ENXIO) return {};  // not bound to anything
    return sys_error("ioctl(" + device + ", LOOP_GET_STATUS64)");
  }
  if (info.lo_device != file_dev || info.lo_inode != file_ino) {
    // Someone else detached our file and reused the device: it is not ours to clear.
    Logger("storage.loop").warn("loop device was rebound by someone else", {{"device", device}});
    return {};
  }
  deadline = std::chrono::steady_clock::now() + kBusyWait;
  while (::ioctl(fd.get(), LOOP_CLR_FD, 0) != 0) {
    if (errno == ENXIO) return {};
    if (errno != EBUSY || std::chrono::steady_clock::now() >= deadline)
      return sys_error("ioctl(" + device + ", LOOP_CLR_FD)");
    std::this_thread::sleep_for(kPoll);
  }
  return {};  // closing fd, our last reference, has the kernel release the file
}

}  // namespace

Result<LoopDevice> LoopDevice::attach(const std::string& file) {
  UniqueFd f(retry_eintr([&] { return ::open(file.c_str(), O_RDWR | O_CLOEXEC); }));
  if (!f) return sys_error("open(" + file + ")");
  struct stat st;
  if (::fstat(f.get(), &st) != 0) return sys_error("fstat(" + file + ")");
  UniqueFd ctl(retry_eintr([] { return ::open("/dev/loop-control", O_RDWR | O_CLOEXEC); }));
  if (!ctl) return sys_error("open(/dev/loop-control)");

  loop_config cfg{};
  cfg.fd = static_cast<std::uint32_t>(f.get());
  cfg.block_size = kBlockSize;
  // Direct I/O: the page cache is ext4's, above the device; without it every block
  // would be cached a second time for the backing file. LO_FLAGS_AUTOCLEAR with a
  // descriptor we hold until the filesystem is mounted (release_hold()): the device then
  // lives as long as its mount, and if we are killed, the kernel clears it when the mount
  // goes, instead of leaving it bound to a dead FUSE file.
  cfg.info.lo_flags = LO_FLAGS_DIRECT_IO | LO_FLAGS_AUTOCLEAR;
  std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), file.c_str(), LO_NAME_SIZE - 1);

  for (int attempt = 0; attempt < kConfigureAttempts; ++attempt) {
    int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return sys_error("ioctl(/dev/loop-control, LOOP_CTL_GET_FREE)");
    std::string device = "/dev/loop" + std::to_string(n);
    UniqueFd d(retry_eintr([&] { return ::open(device.c_str(), O_RDWR | O_CLOEXEC); }));
    if (!d) return sys_error("open(" + device + ")");
    if (::ioctl(d.get(), LOOP_CONFIGURE, &cfg) != 0) {
      if (errno == EBUSY) continue;  // taken between our two calls
      return sys_error("ioctl(" + device + ", LOOP_CONFIGURE)");
    }
    LoopDevice loop;
    loop.fd_ = std::move(d);
    loop.device_ = device;
    loop.file_dev_ = st.st_dev;
    loop.file_ino_ = st.st_ino;
    loop.backing_ = read_attr(device, "backing_file");
    // The kernel quietly falls back to buffered I/O when the file cannot do direct I/O.
    bool dio = read_attr(device, "dio") == "1";
    Logger log("storage.loop");
    if (!dio) log.warn("loop device without direct I/O: its data is cached twice", {{"device", device}});
    log.info("loop device attached", {{"device", device}, {"file", file}, {"dio", dio}});
    return loop;
  }
  return make_error("no free loop device after " + std::to_string(kConfigureAttempts) +
                        " attempts (other processes took each one first)",
                    EBUSY);
}

LoopDevice& LoopDevice::operator=(LoopDevice&& o) noexcept {
  if (this != &o) {
    drop();
    fd_ = std::move(o.fd_);
    device_ = std::exchange(o.device_, {});
    backing_ = std::exchange(o.backing_, {});
    file_dev_ = o.file_dev_;
    file_ino_ = o.file_ino_;
  }
  return *this;
}

LoopDevice::~LoopDevice() { drop(); }

Status LoopDevice::detach() {
  if (device_.empty()) return {};
  if (auto s = clear(device_, file_dev_, file_ino_, true); !s) return std::move(s.error()).wrap("detach " + device_);
  fd_.reset();  // with the clear above (deferred while we held it), the last close frees it
  // Free once sysfs no longer names our file (someone may have bound the device anew).
  auto deadline = std::chrono::steady_clock::now() + kFreeWait;
  while (!backing_.empty() && read_attr(device_, "backing_file") == backing_) {
    if (std::chrono::steady_clock::now() >= deadline)
      return make_error("detach " + device_ + ": still bound after LOOP_CLR_FD (held open by another process?)",
                        EBUSY);
    std::this_thread::sleep_for(kPoll);
  }
  Logger("storage.loop").info("loop device detached", {{"device", device_}});
  device_.clear();
  return {};
}

void LoopDevice::drop() noexcept {
  if (device_.empty()) return;
  Status s = detach();
  if (s) return;
  Logger log("storage.loop");
  log.error("cannot detach; the kernel clears the device at its last close", {{"device", device_}, {"err", s.error().what}});
  if (auto c = clear(device_, file_dev_, file_ino_, false); !c)
    log.error("cannot clear the loop device", {{"device", device_}, {"err", c.error().what}});
  fd_.reset();
  device_.clear();
}

namespace {

class FuseLoopDisk final : public AttachedDisk {
 public:
  FuseLoopDisk(std::unique_ptr<FuseDisk> fuse, LoopDevice loop)
      : device_(loop.device()), fuse_(std::move(fuse)), loop_(std::move(loop)) {}
  // No detach() of its own: loop_'s destructor detaches (or, with the device still in
  // use, leaves it to be cleared at its last close), then fuse_'s stops serving (or
  // aborts the connection), so nothing calls into dev afterwards.
  ~FuseLoopDisk() override = default;
  const std::string& device() const override { return device_; }
  Status detach() override {
    if (auto s = loop_.detach(); !s) return s;
    return fuse_->stop();
  }
  void release_hold() override { loop_.release_hold(); }

 private:
  std::string device_;
  std::unique_ptr<FuseDisk> fuse_;  // declared first, destroyed last: it serves loop_
  LoopDevice loop_;
};

}  // namespace

Result<std::unique_ptr<AttachedDisk>> attach_fuse_loop(BlockDevice& dev, const std::string& workdir,
                                                      int fuse_threads) {
  if (::mkdir(workdir.c_str(), 0700) != 0 && errno != EEXIST)
    return sys_error("mkdir(" + workdir + ")").wrap("attach disk");
  auto fuse = serve_fuse_disk(dev, workdir + "/fuse", fuse_threads);
  if (!fuse) return std::move(fuse.error()).wrap("attach disk");
  auto loop = LoopDevice::attach((*fuse)->file());
  if (!loop) return std::move(loop.error()).wrap("attach disk: loop device");
  return std::unique_ptr<AttachedDisk>(std::make_unique<FuseLoopDisk>(std::move(*fuse), std::move(*loop)));
}

}  // namespace bp::storage
