// tests/integration/disk_frontend_test.cpp — the FUSE + loop frontend carrying ext4,
// over an in-memory BlockDevice: data across detach and attach, fsync, trim, errors,
// and nothing left behind. Needs root, /dev/fuse and loop devices.
#define CATCH_CONFIG_RUNNER
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "common/fd.hpp"
#include "common/run.hpp"
#include "common/sys.hpp"
#include "storage/frontend.hpp"

using namespace bp;
using namespace bp::storage;

namespace {

// A failed Status shows its error text.
#define REQUIRE_OK(expr)                                    \
  do {                                                      \
    const auto& s_ = (expr);                                    \
    INFO((s_ ? std::string() : s_.error().what));           \
    REQUIRE(s_.ok());                                       \
  } while (0)
#define CHECK_OK(expr)                                      \
  do {                                                      \
    const auto& s_ = (expr);                                    \
    INFO((s_ ? std::string() : s_.error().what));           \
    CHECK(s_.ok());                                         \
  } while (0)

constexpr std::uint64_t kBlock = 4096;
constexpr std::uint64_t kMiB = 1 << 20;

// A sparse disk in memory, counting what the frontend asks of it.
class MemDisk final : public BlockDevice {
 public:
  explicit MemDisk(std::uint64_t size) : size_(size) {}
  std::uint64_t size() const override { return size_; }

  Status read(std::uint64_t off, std::span<char> buf) override {
    if (fail_reads) return sys_error("memdisk read", EIO);
    if (off > size_ || buf.size() > size_ - off) return make_error("read past the end", EINVAL);
    std::lock_guard lk(mu_);
    for (std::size_t done = 0; done < buf.size();) {
      std::uint64_t b = (off + done) / kBlock, in = (off + done) % kBlock;
      std::size_t n = std::min<std::size_t>(buf.size() - done, kBlock - in);
      auto it = blocks_.find(b);
      if (it == blocks_.end()) std::memset(buf.data() + done, 0, n);
      else std::memcpy(buf.data() + done, it->second.get() + in, n);
      done += n;
    }
    return {};
  }

  Status write(std::uint64_t off, std::span<const char> data) override {
    if (off > size_ || data.size() > size_ - off) return make_error("write past the end", EINVAL);
    ++writes;
    std::uint64_t seen = max_write_bytes.load();
    while (data.size() > seen && !max_write_bytes.compare_exchange_weak(seen, data.size())) {
    }
    std::lock_guard lk(mu_);
    for (std::size_t done = 0; done < data.size();) {
      std::uint64_t b = (off + done) / kBlock, in = (off + done) % kBlock;
      std::size_t n = std::min<std::size_t>(data.size() - done, kBlock - in);
      auto& blk = blocks_[b];
      if (!blk) blk = std::make_unique<char[]>(kBlock);  // zeroed
      std::memcpy(blk.get() + in, data.data() + done, n);
      done += n;
    }
    return {};
  }

  Status trim(std::uint64_t off, std::uint64_t len) override {
    if (off > size_ || len > size_ - off) return make_error("trim past the end", EINVAL);
    trimmed_bytes += len;
    std::lock_guard lk(mu_);
    for (std::uint64_t done = 0; done < len;) {
      std::uint64_t b = (off + done) / kBlock, in = (off + done) % kBlock;
      std::uint64_t n = std::min<std::uint64_t>(len - done, kBlock - in);
      auto it = blocks_.find(b);
      if (it != blocks_.end()) {
        if (n == kBlock) blocks_.erase(it);
        else std::memset(it->second.get() + in, 0, n);
      }
      done += n;
    }
    return {};
  }

  Status flush() override {
    ++flushes;
    return {};
  }

  std::size_t blocks_stored() {
    std::lock_guard lk(mu_);
    return blocks_.size();
  }

  std::atomic<bool> fail_reads{false};
  std::atomic<std::uint64_t> writes{0}, flushes{0}, trimmed_bytes{0}, max_write_bytes{0};

 private:
  const std::uint64_t size_;
  std::mutex mu_;
  std::unordered_map<std::uint64_t, std::unique_ptr<char[]>> blocks_;
};

bool can_run() {
  if (::geteuid() == 0 && ::access("/dev/fuse", R_OK | W_OK) == 0 && ::access("/dev/loop-control", R_OK | W_OK) == 0)
    return true;
  WARN("not run: needs root, /dev/fuse and /dev/loop-control");
  return false;
}

std::size_t count_entries(const char* dir) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}
std::size_t open_fds() { return count_entries("/proc/self/fd"); }
std::size_t threads() { return count_entries("/proc/self/task"); }

// Whether any loop device is bound to file, as sysfs names it.
bool loop_bound_to(const std::string& file) {
  DIR* d = ::opendir("/sys/block");
  if (!d) return false;
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "loop", 4) != 0) continue;
    auto b = read_file(std::string("/sys/block/") + e->d_name + "/loop/backing_file");
    if (b && b->substr(0, b->find('\n')) == file) found = true;
  }
  ::closedir(d);
  return found;
}

// Whether anything is mounted at or below dir (field 5 of mountinfo).
bool mounted_under(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, target;
    f >> id >> parent >> devno >> root >> target;
    if (target == dir || target.rfind(dir + "/", 0) == 0) return true;
  }
  return false;
}

template <class F>
bool eventually(F cond, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string content(std::uint64_t seed, std::size_t bytes) {
  std::mt19937_64 rng(seed);
  std::string s(bytes, '\0');
  for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(s.data() + i, &v, 8);
  }
  return s;
}

// A private directory under /tmp; removed (empty directories only) at the end, so a
// failure never deletes through a mount left behind.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/bp-disk-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    for (const char* sub : {"/mnt", "/frontend/fuse", "/frontend"}) ::rmdir((path + sub).c_str());
    ::rmdir(path.c_str());
  }
};

// An ext4 mount, unmounted when the scope ends (declare it after the disk it sits on).
struct Ext4Mount {
  std::string target;
  Status unmount() {
    if (target.empty()) return {};
    if (::umount2(target.c_str(), 0) != 0) return sys_error("umount2(" + target + ")");
    target.clear();
    return {};
  }
  ~Ext4Mount() { (void)unmount(); }
};

void write_whole(const std::string& path, const std::string& data, bool do_fsync = false) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  REQUIRE(fd);
  REQUIRE_OK(write_all(fd.get(), data));
  if (do_fsync) REQUIRE(::fsync(fd.get()) == 0);
}

void syncfs_at(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(fd);
  REQUIRE(::syncfs(fd.get()) == 0);
}

constexpr int kFiles = 6;
std::size_t file_bytes(int i) { return (i + 1) * kMiB + 123 * i; }  // 1 to 6 MiB, odd sizes

}  // namespace

TEST_CASE("ext4 on the FUSE + loop frontend keeps its data across detach and attach", "[root]") {
  if (!can_run()) return;
  TempDir tmp;
  const std::string work = tmp.path + "/frontend", mnt = tmp.path + "/mnt";
  const std::string disk_file = work + "/fuse/disk";
  REQUIRE(::mkdir(mnt.c_str(), 0700) == 0);
  MemDisk dev(1ull << 30);
  const std::size_t fds0 = open_fds(), threads0 = threads();

  {
    auto disk = attach_fuse_loop(dev, work, 4);
    REQUIRE_OK(disk);
    const std::string device = (*disk)->device();
    INFO("device " << device);
    CHECK(threads() == threads0 + 4);
    CHECK(loop_bound_to(disk_file));
    std::string loop_name = device.substr(device.rfind('/') + 1);
    auto dio = read_file("/sys/block/" + loop_name + "/loop/dio");
    CHECK((dio && dio->substr(0, 1) == "1"));

    REQUIRE_OK(ensure_ext4(device));
    CHECK(dev.blocks_stored() > 0);  // mkfs wrote through FUSE

    Ext4Mount m;
    REQUIRE_OK(mount_ext4(device, mnt));
    m.target = mnt;
    for (int i = 0; i < kFiles; ++i) write_whole(mnt + "/f" + std::to_string(i), content(i, file_bytes(i)));

    // fsync of a file reaches the volume as a flush.
    std::uint64_t flushes = dev.flushes;
    write_whole(mnt + "/synced", content(100, 3 * kMiB), true);
    CHECK(dev.flushes > flushes);

    // A deleted file's blocks leave the volume (discard at commit, then fstrim).
    write_whole(mnt + "/big", content(200, 32 * kMiB));
    syncfs_at(mnt);
    std::size_t stored = dev.blocks_stored();
    std::uint64_t trimmed = dev.trimmed_bytes;
    REQUIRE(::unlink((mnt + "/big").c_str()) == 0);
    syncfs_at(mnt);
    auto fstrim = run_program({"fstrim", mnt});
    if (!fstrim) FAIL_CHECK(fstrim.error().what);
    CHECK(dev.trimmed_bytes > trimmed);
    CHECK(dev.blocks_stored() + 32 * kMiB / kBlock * 9 / 10 <= stored);
    INFO("largest write reaching the volume: " << dev.max_write_bytes << " bytes");
    CHECK(dev.max_write_bytes >= 128 * 1024);

    REQUIRE_OK(m.unmount());
    REQUIRE_OK((*disk)->detach());
    CHECK_OK((*disk)->detach());  // idempotent
    CHECK(!loop_bound_to(disk_file));
    CHECK(!mounted_under(tmp.path));
  }
  CHECK(open_fds() == fds0);
  CHECK(threads() == threads0);

  {
    auto disk = attach_fuse_loop(dev, work);
    REQUIRE_OK(disk);
    const std::string device = (*disk)->device();
    std::uint64_t writes = dev.writes;
    REQUIRE_OK(ensure_ext4(device));  // finds the filesystem: nothing written
    CHECK(dev.writes == writes);

    Ext4Mount m;
    REQUIRE_OK(mount_ext4(device, mnt));
    m.target = mnt;
    for (int i = 0; i < kFiles; ++i) {
      auto got = read_file(mnt + "/f" + std::to_string(i));
      REQUIRE(got);
      CHECK((*got == content(i, file_bytes(i))));
    }
    auto synced = read_file(mnt + "/synced");
    CHECK((synced && *synced == content(100, 3 * kMiB)));
    CHECK(::access((mnt + "/big").c_str(), F_OK) != 0);

    // Still mounted: detach refuses and leaves everything working.
    Status busy = (*disk)->detach();
    REQUIRE(!busy);
    CHECK(busy.error().code == EBUSY);
    INFO(busy.error().what);
    CHECK(busy.error().what.find("mounted") != std::string::npos);
    CHECK(loop_bound_to(disk_file));
    write_whole(mnt + "/after-busy", "still here", true);

    REQUIRE_OK(m.unmount());
    auto fsck = run_program({"e2fsck", "-fn", device});
    if (!fsck) FAIL_CHECK(fsck.error().what);
    REQUIRE_OK((*disk)->detach());
    CHECK(!loop_bound_to(disk_file));
    CHECK(!mounted_under(tmp.path));
  }
  CHECK(open_fds() == fds0);
  CHECK(threads() == threads0);
}

TEST_CASE("a volume that fails reads gives EIO, not a hang", "[root]") {
  if (!can_run()) return;
  TempDir tmp;
  MemDisk dev(64 * kMiB);
  dev.fail_reads = true;
  const std::size_t fds0 = open_fds();
  auto disk = attach_fuse_loop(dev, tmp.path + "/frontend", 2);
  REQUIRE_OK(disk);

  Status s = ensure_ext4((*disk)->device());  // reads the superblock through the loop device
  REQUIRE(!s);
  CHECK(s.error().code == EIO);
  INFO(s.error().what);

  UniqueFd fd(::open((tmp.path + "/frontend/fuse/disk").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  char buf[4096];
  CHECK(::pread(fd.get(), buf, sizeof buf, 0) == -1);
  CHECK(errno == EIO);
  fd.reset();

  CHECK_OK((*disk)->detach());
  CHECK(!mounted_under(tmp.path));
  CHECK(open_fds() == fds0);
}

TEST_CASE("dropping a disk whose filesystem is still mounted ends in bounded time", "[root]") {
  if (!can_run()) return;
  TempDir tmp;
  const std::string mnt = tmp.path + "/mnt", disk_file = tmp.path + "/frontend/fuse/disk";
  REQUIRE(::mkdir(mnt.c_str(), 0700) == 0);
  MemDisk dev(256 * kMiB);
  const std::size_t fds0 = open_fds(), threads0 = threads();
  auto disk = attach_fuse_loop(dev, tmp.path + "/frontend", 2);
  REQUIRE_OK(disk);
  const std::string device = (*disk)->device();
  REQUIRE_OK(ensure_ext4(device));
  Ext4Mount m;
  REQUIRE_OK(mount_ext4(device, mnt));
  m.target = mnt;

  // The destructor cannot detach: it leaves the loop device to clear itself at its
  // last close, and aborts the FUSE connection so its workers end.
  auto t0 = std::chrono::steady_clock::now();
  disk->reset();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20));
  CHECK(threads() == threads0);

  // The filesystem now gets errors; unmounting it frees the loop device.
  REQUIRE_OK(m.unmount());
  CHECK(eventually([&] { return !loop_bound_to(disk_file); }));
  CHECK(!mounted_under(tmp.path));
  CHECK(open_fds() == fds0);
}

// The test mounts in a private mount namespace of its own. In the host's, a namespace
// another process creates meanwhile (ctest runs tests side by side) would get a copy of
// our ext4 mount and keep the loop device busy after we unmount it.
int main(int argc, char** argv) {
  if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    std::perror("disk_frontend_test: private mount namespace");
    return 2;
  }
  return Catch::Session().run(argc, argv);
}
