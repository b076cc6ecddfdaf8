// storage/fuse_disk.cpp — a BlockDevice served as one file, <mountpoint>/disk, through
// libfuse's low-level API, for a loop device to carry.
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include <fuse3/fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/sys.hpp"
#include "storage/frontend.hpp"

namespace bp::storage {

namespace {

constexpr fuse_ino_t kDiskIno = 2;  // FUSE_ROOT_ID (1) is the directory
constexpr const char* kDiskName = "disk";
// The largest request we ask for: 256 pages, which is what the kernel allows by default
// (fs.fuse.max_pages_limit) and what libfuse 3.14's receive buffer holds.
constexpr unsigned kMaxWrite = 1u << 20;
constexpr std::uint32_t kBlockSize = 4096;
constexpr double kAttrTimeout_s = 1.0;
// Attempts to unmount while the kernel lets go of the file (the loop device's last
// reference can be dropped by a kernel worker a little after LOOP_CLR_FD returns).
constexpr auto kUnmountBusyWait = std::chrono::seconds(2);
constexpr auto kWorkersExitWait = std::chrono::seconds(2);
constexpr auto kAbortExitWait = std::chrono::seconds(5);

// libfuse reports through fuse_log; send it to our log rather than stderr.
void fuse_log_to_bp(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string_view msg(buf);
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  Level l = level <= FUSE_LOG_ERR ? Level::error
            : level == FUSE_LOG_WARNING ? Level::warn
            : level == FUSE_LOG_DEBUG   ? Level::debug
                                        : Level::info;
  Logger("storage.fuse").log(l, "libfuse", {{"msg", msg}});
}

// The read buffer of each worker thread: one request at a time per thread, at most
// max_read bytes, so it grows once and is freed when the worker ends.
thread_local std::vector<char> t_read_buf;

class FuseDiskImpl final : public FuseDisk {
 public:
  FuseDiskImpl(BlockDevice& dev, std::string mountpoint)
      : dev_(dev), mountpoint_(std::move(mountpoint)), file_(mountpoint_ + "/" + kDiskName) {
    ::clock_gettime(CLOCK_REALTIME, &started_);
  }
  ~FuseDiskImpl() override {
    if (auto s = stop(); !s) {
      log_.error("stop failed; aborting the FUSE connection", {{"mountpoint", mountpoint_}, {"err", s.error().what}});
      force_stop();
    }
  }
  const std::string& file() const override { return file_; }
  Status start(int threads);
  Status stop() override;

 private:
  static FuseDiskImpl& self(fuse_req_t req) { return *static_cast<FuseDiskImpl*>(fuse_req_userdata(req)); }
  static const fuse_lowlevel_ops& ops();
  static void op_init(void* userdata, fuse_conn_info* conn);
  static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  static void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  static void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  static void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info* fi);
  static void op_statfs(fuse_req_t req, fuse_ino_t ino);

  bool attr(fuse_ino_t ino, struct stat& st) const;
  void reply_status(fuse_req_t req, const char* op, const Status& s);
  void worker(int index);
  bool wait_workers(std::chrono::milliseconds timeout);
  Status unmount();
  void abort_connection();
  void force_stop();
  void join_and_destroy();

  BlockDevice& dev_;
  const std::string mountpoint_, file_;
  Logger log_{"storage.fuse"};
  timespec started_{};
  fuse_session* se_ = nullptr;
  bool mounted_ = false;
  std::uint32_t conn_id_ = 0;  // the connection's name under /sys/fs/fuse/connections
  std::atomic<std::uint64_t> errors_{0};

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable exited_cv_;
  int running_ = 0;  // workers still in their loop; guarded by mu_
};

const fuse_lowlevel_ops& FuseDiskImpl::ops() {
  // No write_buf: with it libfuse would splice requests into a pipe, and dev wants
  // plain memory anyway. No setattr: the file's size is the disk's.
  static const fuse_lowlevel_ops o = [] {
    fuse_lowlevel_ops x{};
    x.init = op_init;
    x.lookup = op_lookup;
    x.getattr = op_getattr;
    x.open = op_open;
    x.read = op_read;
    x.write = op_write;
    x.flush = op_flush;
    x.fsync = op_fsync;
    x.fallocate = op_fallocate;
    x.statfs = op_statfs;
    return x;
  }();
  return o;
}

void FuseDiskImpl::op_init(void* userdata, fuse_conn_info* conn) {
  auto& d = *static_cast<FuseDiskImpl*>(userdata);
  // Writes reach dev before the loop device completes them, so a flush means what
  // BlockDevice::flush says; and ext4 above keeps its own page cache already.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // libfuse derives max_pages from max_write and lowers max_write to what its buffer
  // holds; the kernel then caps max_pages at its own limit.
  conn->max_write = kMaxWrite;
  // The loop device's direct I/O arrives as asynchronous (background) requests; the
  // default of 12 in flight would throttle a queue that is 128 deep.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  d.log_.info("fuse connection", {{"proto", std::to_string(conn->proto_major) + "." + std::to_string(conn->proto_minor)},
                                  {"max_write", conn->max_write},
                                  {"async_dio", (conn->want & FUSE_CAP_ASYNC_DIO) != 0}});
}

bool FuseDiskImpl::attr(fuse_ino_t ino, struct stat& st) const {
  st = {};
  st.st_uid = ::getuid();
  st.st_gid = ::getgid();
  st.st_mtim = st.st_ctim = st.st_atim = started_;
  st.st_blksize = kBlockSize;
  if (ino == FUSE_ROOT_ID) {
    st.st_ino = ino;
    st.st_mode = S_IFDIR | 0700;
    st.st_nlink = 2;
    return true;
  }
  if (ino == kDiskIno) {
    st.st_ino = ino;
    st.st_mode = S_IFREG | 0600;
    st.st_nlink = 1;
    st.st_size = static_cast<off_t>(dev_.size());
    st.st_blocks = st.st_size / 512;
    return true;
  }
  return false;
}

void FuseDiskImpl::reply_status(fuse_req_t req, const char* op, const Status& s) {
  if (s) {
    fuse_reply_err(req, 0);
    return;
  }
  // The 1st, 2nd, 4th, 8th... failure: a dead volume must not flood the log.
  std::uint64_t n = ++errors_;
  if ((n & (n - 1)) == 0) log_.warn("volume call failed", {{"op", op}, {"err", s.error().what}, {"errors", n}});
  fuse_reply_err(req, s.error().code != 0 ? s.error().code : EIO);
}

// libfuse is C: nothing may unwind through it. What can throw here (allocation, or
// dev) answers EIO; every throw happens before the reply.
template <class F>
void guarded(fuse_req_t req, F&& fn) {
  try {
    fn();
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

void FuseDiskImpl::op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e{};
  if (parent != FUSE_ROOT_ID || std::strcmp(name, kDiskName) != 0 || !self(req).attr(kDiskIno, e.attr)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  e.ino = kDiskIno;
  e.generation = 1;
  e.attr_timeout = kAttrTimeout_s;
  e.entry_timeout = kAttrTimeout_s;
  fuse_reply_entry(req, &e);
}

void FuseDiskImpl::op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st;
  if (!self(req).attr(ino, st)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_reply_attr(req, &st, kAttrTimeout_s);
}

void FuseDiskImpl::op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino != kDiskIno) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  // Every read and write goes to dev as it comes: no page cache in this layer, so
  // nothing is cached twice and nothing is acknowledged that dev has not seen.
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fuse_reply_open(req, fi);
}

void FuseDiskImpl::op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
  guarded(req, [&] {
    auto& d = self(req);
    std::uint64_t disk = d.dev_.size();
    if (off < 0) return (void)fuse_reply_err(req, EINVAL);
    if (static_cast<std::uint64_t>(off) >= disk) return (void)fuse_reply_buf(req, nullptr, 0);  // EOF
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, disk - static_cast<std::uint64_t>(off)));
    if (t_read_buf.size() < n) t_read_buf.resize(n);
    Status s = d.dev_.read(static_cast<std::uint64_t>(off), std::span<char>(t_read_buf.data(), n));
    if (!s) return d.reply_status(req, "read", s);
    fuse_reply_buf(req, t_read_buf.data(), n);
  });
}

void FuseDiskImpl::op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info*) {
  guarded(req, [&] {
    auto& d = self(req);
    std::uint64_t disk = d.dev_.size();
    if (off < 0) return (void)fuse_reply_err(req, EINVAL);
    // The file cannot grow: it is a disk of fixed size.
    if (static_cast<std::uint64_t>(off) >= disk) return (void)fuse_reply_err(req, ENOSPC);
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, disk - static_cast<std::uint64_t>(off)));
    Status s = d.dev_.write(static_cast<std::uint64_t>(off), std::span<const char>(buf, n));
    if (!s) return d.reply_status(req, "write", s);
    fuse_reply_write(req, n);
  });
}

// Both map to dev.flush(): the loop device turns a flush request into fsync of this
// file, which is what makes ext4's fsync (and its journal commits) durable.
void FuseDiskImpl::op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  guarded(req, [&] { self(req).reply_status(req, "flush", self(req).dev_.flush()); });
}

void FuseDiskImpl::op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  guarded(req, [&] { self(req).reply_status(req, "fsync", self(req).dev_.flush()); });
}

void FuseDiskImpl::op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info*) {
  guarded(req, [&] {
    auto& d = self(req);
    // The loop device turns a discard into a punched hole, and a write-zeroes into a
    // punched hole or a zeroed range. Both are a trim here: a trimmed range reads as
    // zeros, and a thin volume has nothing to keep allocated.
    if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) && mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
      return (void)fuse_reply_err(req, EOPNOTSUPP);
    if (off < 0 || len <= 0) return (void)fuse_reply_err(req, EINVAL);
    std::uint64_t disk = d.dev_.size();
    auto start = static_cast<std::uint64_t>(off);
    if (start >= disk) return (void)fuse_reply_err(req, 0);
    std::uint64_t n = std::min<std::uint64_t>(static_cast<std::uint64_t>(len), disk - start);
    d.reply_status(req, "trim", d.dev_.trim(start, n));
  });
}

void FuseDiskImpl::op_statfs(fuse_req_t req, fuse_ino_t) {
  // The loop device takes its discard granularity from f_bsize; nothing can be
  // allocated here beyond the disk itself, hence no free blocks.
  struct statvfs st {};
  st.f_bsize = kBlockSize;
  st.f_frsize = kBlockSize;
  st.f_blocks = self(req).dev_.size() / kBlockSize;
  st.f_files = 1;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

// Our own loop over fuse_session_receive_buf/process_buf rather than
// fuse_session_loop_mt: a worker must mark itself PR_SET_IO_FLUSHER before it serves
// anything (fuse_loop_mt has no hook at thread start and starts threads on demand).
// Without it, reclaim in a worker could wait on writeback through the loop device, or
// the worker be throttled for dirty pages that only the workers can clean: a deadlock. All workers read the one /dev/fuse
// descriptor (the kernel hands each request to one reader); libfuse 3.14's public API
// replies on that descriptor, so per-thread clones of it would buy nothing.
void FuseDiskImpl::worker(int index) {
  std::string name = "bp-fuse-" + std::to_string(index);
  ::pthread_setname_np(::pthread_self(), name.c_str());
  if (::prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      log_.warn("prctl(PR_SET_IO_FLUSHER) failed: FUSE workers may deadlock under memory pressure "
                "(it needs CAP_SYS_RESOURCE)",
                {{"err", std::strerror(errno)}});
  }
  fuse_buf buf{};
  while (!fuse_session_exited(se_)) {
    int n = fuse_session_receive_buf(se_, &buf);
    if (n == -EINTR || n == -EAGAIN) continue;
    if (n < 0) {
      // ECONNABORTED after abort_connection(); anything else ends this session too.
      if (n != -ECONNABORTED) log_.error("reading /dev/fuse", {{"err", std::strerror(-n)}});
      fuse_session_exit(se_);
      break;
    }
    if (n == 0) break;  // ENODEV: unmounted; libfuse marked the session exited
    fuse_session_process_buf(se_, &buf);
  }
  std::free(buf.mem);
  std::lock_guard lk(mu_);
  --running_;
  exited_cv_.notify_all();
}

Status FuseDiskImpl::start(int threads) {
  if (threads < 1) return make_error("fuse: threads must be at least 1", EINVAL);
  if (::mkdir(mountpoint_.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("mkdir(" + mountpoint_ + ")");
  struct stat st;
  if (::stat(mountpoint_.c_str(), &st) != 0 && errno == ENOTCONN) {
    // A FUSE mount whose server died (a crashed earlier run): nothing can be saved
    // through it, and mounting over it would hide it.
    log_.warn("removing a dead FUSE mount", {{"mountpoint", mountpoint_}});
    if (::umount2(mountpoint_.c_str(), MNT_DETACH) != 0) return sys_error("umount2(" + mountpoint_ + ", MNT_DETACH)");
  }

  static std::once_flag log_once;
  std::call_once(log_once, [] { fuse_set_log_func(fuse_log_to_bp); });
  char arg0[] = "ballpoint-disk";
  char arg1[] = "-o";
  char arg2[] = "fsname=ballpoint,subtype=disk,default_permissions";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, argv);
  se_ = fuse_session_new(&args, &ops(), sizeof(fuse_lowlevel_ops), this);
  fuse_opt_free_args(&args);
  if (!se_) return make_error("fuse_session_new failed", EINVAL);
  errno = 0;
  if (fuse_session_mount(se_, mountpoint_.c_str()) != 0) {
    int err = errno != 0 ? errno : EIO;
    fuse_session_destroy(se_);
    se_ = nullptr;
    return sys_error("fuse_session_mount(" + mountpoint_ + ")", err);
  }
  mounted_ = true;

  for (int i = 0; i < threads; ++i) {
    // Held while the thread starts, so it cannot count itself out before it is counted.
    std::lock_guard lk(mu_);
    try {
      workers_.emplace_back([this, i] { worker(i); });
    } catch (const std::system_error& e) {
      return make_error(std::string("fuse: starting a worker: ") + e.what(), e.code().value());
    }
    ++running_;
  }

  // The first request after INIT: proves the mount serves, and names the connection
  // (the kernel's dev_t of the mount, as fusectl spells it) for abort_connection().
  if (::stat(mountpoint_.c_str(), &st) != 0) return sys_error("stat(" + mountpoint_ + ")");
  conn_id_ = (::major(st.st_dev) << 20) | ::minor(st.st_dev);
  log_.info("serving disk", {{"file", file_}, {"bytes", dev_.size()}, {"threads", threads}});
  return {};
}

// A plain (not lazy) unmount: a lazy one would succeed while the loop device still
// has the file open, and the workers would then wait for requests forever.
Status FuseDiskImpl::unmount() {
  auto deadline = std::chrono::steady_clock::now() + kUnmountBusyWait;
  for (;;) {
    if (::umount2(mountpoint_.c_str(), 0) == 0) return {};
    int err = errno;
    if (err == EINVAL || err == ENOENT) return {};  // no longer mounted there
    if (err == EBUSY && std::chrono::steady_clock::now() >= deadline)
      return sys_error("umount2(" + mountpoint_ + ")", err).wrap("the disk file is still open");
    if (err != EBUSY) return sys_error("umount2(" + mountpoint_ + ")", err);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool FuseDiskImpl::wait_workers(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return exited_cv_.wait_for(lk, timeout, [&] { return running_ == 0; });
}

// Ends the connection at once: requests in flight and to come fail, and every worker's
// read returns. Through fusectl: the system's instance if mounted, else one mounted
// beside our mount point for the purpose (a private directory, so two disks aborting at
// once cannot unmount it under each other).
void FuseDiskImpl::abort_connection() {
  const std::string name = "/" + std::to_string(conn_id_) + "/abort";
  std::string path = "/sys/fs/fuse/connections" + name;
  const std::string own_ctl = mountpoint_ + "-ctl";
  bool mounted_ctl = false;
  if (::access(path.c_str(), F_OK) != 0) {
    if (::mkdir(own_ctl.c_str(), 0700) != 0 && errno != EEXIST)
      log_.error("mkdir", {{"dir", own_ctl}, {"err", std::strerror(errno)}});
    else if (::mount("fusectl", own_ctl.c_str(), "fusectl", 0, nullptr) != 0)
      log_.error("mount(fusectl)", {{"dir", own_ctl}, {"err", std::strerror(errno)}});
    else
      mounted_ctl = true;
    path = own_ctl + name;
  }
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  Status s = fd ? write_all(fd.get(), "1") : Status(sys_error("open(" + path + ")"));
  fd.reset();
  if (mounted_ctl) ::umount2(own_ctl.c_str(), 0);
  ::rmdir(own_ctl.c_str());
  if (!s) log_.error("cannot abort the FUSE connection", {{"err", s.error().what}});
}

void FuseDiskImpl::join_and_destroy() {
  for (auto& t : workers_) t.join();
  workers_.clear();
  // The connection is gone, so this only closes /dev/fuse (libfuse would unmount
  // lazily only if the connection were still alive).
  fuse_session_unmount(se_);
  fuse_session_destroy(se_);
  se_ = nullptr;
  ::rmdir(mountpoint_.c_str());  // best effort: the directory is ours, and empty
}

Status FuseDiskImpl::stop() {
  if (!se_) return {};
  if (mounted_) {
    if (auto s = unmount(); !s) return s;
    mounted_ = false;
  }
  // Unmounting ends the connection unless another mount namespace still holds a copy
  // of the mount; then abort it rather than wait.
  if (!wait_workers(kWorkersExitWait)) {
    log_.warn("workers still running after unmount; aborting the connection", {{"mountpoint", mountpoint_}});
    abort_connection();
    if (!wait_workers(kAbortExitWait)) log_.error("workers still running after abort; waiting for them");
  }
  join_and_destroy();
  log_.info("stopped serving disk", {{"file", file_}});
  return {};
}

// Whatever holds the file open gets EIO from now on: dev may be gone after us.
void FuseDiskImpl::force_stop() {
  if (!se_) return;
  abort_connection();
  if (mounted_ && ::umount2(mountpoint_.c_str(), MNT_DETACH) != 0)
    log_.error("umount2(MNT_DETACH)", {{"mountpoint", mountpoint_}, {"err", std::strerror(errno)}});
  mounted_ = false;
  if (!wait_workers(kAbortExitWait)) log_.error("workers still running after abort; waiting for them");
  join_and_destroy();
}

}  // namespace

Result<std::unique_ptr<FuseDisk>> serve_fuse_disk(BlockDevice& dev, const std::string& mountpoint, int threads) {
  // On failure, d's destructor undoes whatever start() did.
  auto d = std::make_unique<FuseDiskImpl>(dev, mountpoint);
  if (auto s = d->start(threads); !s) return std::move(s.error()).wrap("serve disk at " + mountpoint);
  return std::unique_ptr<FuseDisk>(std::move(d));
}

}  // namespace bp::storage
