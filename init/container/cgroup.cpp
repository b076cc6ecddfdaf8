// init/container/cgroup.cpp — cgroup v2 files, read and written relative to the directory fd.
#include "init/container/cgroup.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <sstream>
#include <thread>

#include "common/sys.hpp"

namespace bp::container {

namespace {

using Clock = std::chrono::steady_clock;

Result<std::string> read_at(int dirfd, const char* file) {
  UniqueFd fd(retry_eintr([&] { return ::openat(dirfd, file, O_RDONLY | O_CLOEXEC); }));
  if (!fd) return sys_error(std::string("open(") + file + ")");
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
    if (n < 0) return sys_error(std::string("read(") + file + ")");
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// The value of "key N" in a flat-keyed file such as cgroup.events.
Result<long> keyed_value(int dirfd, const char* file, std::string_view key) {
  auto text = read_at(dirfd, file);
  if (!text) return std::move(text.error());
  std::istringstream in(*text);
  std::string k;
  long v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return make_error(std::string(file) + ": no '" + std::string(key) + "'", ENOENT);
}

// Waits until cgroup.events shows key == want. The kernel signals changes to that
// file with POLLPRI, so this sleeps in poll() rather than spinning.
Result<bool> wait_event(int dirfd, std::string_view key, long want, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  UniqueFd ev(::openat(dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC));
  if (!ev) return sys_error("open(cgroup.events)");
  for (;;) {
    auto v = keyed_value(dirfd, "cgroup.events", key);
    if (!v) return std::move(v.error());
    if (*v == want) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    char drain[256];
    ::lseek(ev.get(), 0, SEEK_SET);
    [[maybe_unused]] auto r = ::read(ev.get(), drain, sizeof drain);
    pollfd p{ev.get(), POLLPRI, 0};
    // Bounded slices: a change between our read and poll() is caught on the next turn.
    ::poll(&p, 1, static_cast<int>(left < 50 ? left : 50));
  }
}

}  // namespace

Result<CgroupDir> CgroupDir::create(std::string path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("mkdir(" + path + ")");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return sys_error("open(" + path + ")");
  CgroupDir cg(std::move(path), std::move(fd));
  // A directory left by a crash may still hold processes of an earlier run.
  auto pop = cg.populated();
  if (!pop) return std::move(pop.error()).wrap(cg.path_);
  if (*pop)
    if (auto s = cg.kill_all(5000); !s) return std::move(s.error()).wrap(cg.path_);
  return cg;
}

CgroupDir& CgroupDir::operator=(CgroupDir&& o) noexcept {
  if (this != &o) {
    [[maybe_unused]] auto s = remove();
    path_ = std::move(o.path_);
    fd_ = std::move(o.fd_);
  }
  return *this;
}

CgroupDir::~CgroupDir() { [[maybe_unused]] auto s = remove(); }

Status CgroupDir::write(const char* file, std::string_view value) const {
  UniqueFd fd(retry_eintr([&] { return ::openat(fd_.get(), file, O_WRONLY | O_CLOEXEC); }));
  if (!fd) return sys_error(path_ + ": open(" + file + ")");
  if (auto s = write_all(fd.get(), value); !s) return std::move(s.error()).wrap(path_ + "/" + file);
  return {};
}

Result<std::string> CgroupDir::read(const char* file) const {
  auto r = read_at(fd_.get(), file);
  if (!r) return std::move(r.error()).wrap(path_);
  return r;
}

Status CgroupDir::apply(const Limits& l, std::vector<std::string>& unsupported) const {
  auto set = [&](const char* file, const std::string& v) -> Status {
    if (::faccessat(fd_.get(), file, F_OK, 0) != 0) {
      unsupported.emplace_back(file);
      return {};
    }
    return write(file, v);
  };
  if (l.memory_max)
    if (auto s = set("memory.max", std::to_string(*l.memory_max)); !s) return s;
  if (l.memory_swap_max)
    if (auto s = set("memory.swap.max", std::to_string(*l.memory_swap_max)); !s) return s;
  if (l.pids_max)
    if (auto s = set("pids.max", std::to_string(*l.pids_max)); !s) return s;
  if (l.cpu_max)
    if (auto s = set("cpu.max", *l.cpu_max); !s) return s;
  return {};
}

Result<std::vector<pid_t>> CgroupDir::procs() const {
  auto text = read("cgroup.procs");
  if (!text) return std::move(text.error());
  std::vector<pid_t> out;
  std::istringstream in(*text);
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

Result<bool> CgroupDir::populated() const {
  auto v = keyed_value(fd_.get(), "cgroup.events", "populated");
  if (!v) return std::move(v.error()).wrap(path_);
  return *v != 0;
}

Result<bool> CgroupDir::wait_empty(int timeout_ms) const {
  auto r = wait_event(fd_.get(), "populated", 0, timeout_ms);
  if (!r) return std::move(r.error()).wrap(path_);
  return r;
}

Status CgroupDir::freeze(bool frozen, int timeout_ms) const {
  if (auto s = write("cgroup.freeze", frozen ? "1" : "0"); !s) return s;
  auto r = wait_event(fd_.get(), "frozen", frozen ? 1 : 0, timeout_ms);
  if (!r) return std::move(r.error()).wrap(path_);
  if (!*r) return make_error(path_ + ": not " + (frozen ? "frozen" : "thawed") + " after " +
                             std::to_string(timeout_ms) + " ms", ETIMEDOUT);
  return {};
}

Status CgroupDir::kill_all(int timeout_ms) const {
  if (auto s = write("cgroup.kill", "1"); !s) return s;
  auto r = wait_empty(timeout_ms);
  if (!r) return std::move(r.error());
  if (!*r) return make_error(path_ + ": still populated " + std::to_string(timeout_ms) + " ms after cgroup.kill",
                             ETIMEDOUT);
  return {};
}

Status CgroupDir::remove(int timeout_ms) {
  if (!fd_) return {};
  auto pop = populated();
  if (pop && *pop)
    if (auto s = kill_all(timeout_ms); !s) return s;
  fd_.reset();
  // An empty cgroup can stay busy for a moment after its last task is gone.
  for (int i = 0; i < 100; ++i) {
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return {};
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return sys_error("rmdir(" + path_ + ")");
}

Result<std::string> enable_subtree_controllers(const std::string& dir, std::vector<std::string>* refused) {
  auto avail = read_file(dir + "/cgroup.controllers");
  if (!avail) return std::move(avail.error());
  std::istringstream in(*avail);
  std::string name;
  // One controller per write, so one the kernel refuses does not hide the others.
  while (in >> name)
    if (auto s = write_file(dir + "/cgroup.subtree_control", "+" + name); !s && refused)
      refused->push_back(name + ": " + s.error().what);
  auto enabled = read_file(dir + "/cgroup.subtree_control");
  if (!enabled) return std::move(enabled.error());
  std::string e = *enabled;
  while (!e.empty() && e.back() == '\n') e.pop_back();
  return e;
}

Result<CgroupParent> prepare_cgroup_parent(const std::string& mount_dir, const std::string& name) {
  auto mountinfo = read_file("/proc/self/mountinfo");
  if (!mountinfo) return std::move(mountinfo.error());
  std::string root = find_cgroup2_mount(*mountinfo);
  if (root.empty()) {
    if (::mkdir(mount_dir.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("mkdir(" + mount_dir + ")");
    if (::mount("tmpfs", mount_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=700") != 0)
      return sys_error("mount(tmpfs, " + mount_dir + ")");
    root = mount_dir + "/cgroup2";
    if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("mkdir(" + root + ")");
    if (::mount("cgroup2", root.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
      return sys_error("mount(cgroup2, " + root + ")");
  }
  CgroupParent p;
  auto on_root = enable_subtree_controllers(root, &p.refused);
  if (!on_root) return std::move(on_root.error());
  auto dir = CgroupDir::create(root + "/" + name);
  if (!dir) return std::move(dir.error());
  p.dir = std::move(*dir);
  auto enabled = enable_subtree_controllers(p.dir.path(), &p.refused);
  if (!enabled) return std::move(enabled.error());
  p.controllers = std::move(*enabled);
  return p;
}

std::string find_cgroup2_mount(std::string_view mountinfo) {
  std::istringstream in{std::string(mountinfo)};
  std::string line;
  while (std::getline(in, line)) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
    std::istringstream f(line);
    std::string id, parent, dev, root, mountpoint, w;
    if (!(f >> id >> parent >> dev >> root >> mountpoint)) continue;
    while (f >> w && w != "-") {
    }
    std::string fstype;
    if (f >> fstype && fstype == "cgroup2") return mountpoint;
  }
  return {};
}

}  // namespace bp::container
