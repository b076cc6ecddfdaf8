// init/container/cgroup.hpp — one cgroup v2 directory: limits, freeze, kill, removal.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"

namespace bp::container {

struct Limits {
  std::optional<std::uint64_t> memory_max;       // bytes
  std::optional<std::uint64_t> memory_swap_max;  // bytes
  std::optional<std::uint64_t> pids_max;
  std::optional<std::string> cpu_max;            // "QUOTA PERIOD" in µs, or "max PERIOD"
};

class CgroupDir {
 public:
  CgroupDir() = default;
  // Creates path (its parent must exist and be a cgroup2 directory). A leftover
  // directory of the same name from a crash is emptied and reused.
  static Result<CgroupDir> create(std::string path);
  CgroupDir(CgroupDir&& o) noexcept = default;
  CgroupDir& operator=(CgroupDir&& o) noexcept;
  ~CgroupDir();

  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  // Writes the limits that are set. A limit whose controller this hierarchy does
  // not offer is not an error: its file name goes to `unsupported`.
  Status apply(const Limits& limits, std::vector<std::string>& unsupported) const;

  Result<std::vector<pid_t>> procs() const;
  Result<bool> populated() const;
  // cgroup.freeze, then waits (bounded) until the kernel reports every task frozen.
  Status freeze(bool frozen, int timeout_ms) const;
  // cgroup.kill, then waits (bounded) until the cgroup is empty.
  Status kill_all(int timeout_ms) const;
  // Waits until the cgroup is empty; false on timeout.
  Result<bool> wait_empty(int timeout_ms) const;
  // Kills what is left, then rmdir. Idempotent.
  Status remove(int timeout_ms = 5000);

  Status write(const char* file, std::string_view value) const;
  Result<std::string> read(const char* file) const;

 private:
  CgroupDir(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
};

// Enables, for children of dir, every controller dir offers; returns the enabled list
// (space-separated, as cgroup.subtree_control shows it). Controllers the kernel refuses
// are skipped and, with their error, added to *refused.
Result<std::string> enable_subtree_controllers(const std::string& dir, std::vector<std::string>* refused = nullptr);

// Where a cgroup2 hierarchy is mounted, from mountinfo text; "" when none is.
std::string find_cgroup2_mount(std::string_view mountinfo);

// Where containers' cgroups go: a directory directly under the cgroup2 root (the
// root is exempt from the no-internal-processes rule, so controllers can be enabled
// for it whatever cgroup we run in). When no cgroup2 hierarchy is mounted (a host
// whose controllers sit on cgroup v1), one is mounted on a tmpfs at mount_dir: the
// caller must be in a mount namespace of its own. A leftover of a crashed run with
// the same name is emptied and reused.
struct CgroupParent {
  CgroupDir dir;
  std::string controllers;  // enabled for the containers' cgroups
  std::vector<std::string> refused;
};
Result<CgroupParent> prepare_cgroup_parent(const std::string& mount_dir, const std::string& name);

}  // namespace bp::container
