// init/container/container.hpp — one sprite's inner container: start, enter, stop, bounce.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "init/container/caps.hpp"
#include "init/container/cgroup.hpp"
#include "init/container/seccomp.hpp"

namespace bp::container {

struct ContainerConfig {
  std::string name;           // the sprite's name: hostname and cgroup directory
  std::string rootfs;         // absolute path of its root directory
  std::string cgroup_parent;  // a cgroup2 directory, e.g. /sys/fs/cgroup/ballpoint
  std::string resolv_conf = "nameserver 10.0.2.3\n";
  Limits limits;
  std::uint64_t nofile = 65536;  // RLIMIT_NOFILE of every process inside
  bool no_new_privs = false;     // off by default, so sudo works inside
  int start_timeout_ms = 10000;
};

struct EnterSpec {
  std::vector<std::string> argv;
  std::string path;               // the program; "" = argv[0]. Without '/', looked up in PATH from env
  std::vector<std::string> env;   // the whole environment: nothing of ballpoint's is inherited
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  bool tty = false;
  std::uint16_t rows = 24, cols = 80;
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;  // without tty; -1: /dev/null. Not owned.
};

// A process running inside the container; its exit reaches the caller's reaper.
struct Process {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd pty_master;  // with tty: the terminal's master side
};

// The environment an exec gets when the caller names none: PATH, HOME, TERM, LANG.
std::vector<std::string> default_env(bool tty, const std::string& home = "/root");

class Container {
 public:
  explicit Container(ContainerConfig cfg);
  ~Container();
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  // Creates the cgroup, applies the limits and clones the container's init into new
  // pid, mount, uts, ipc, net and cgroup namespaces straight into that cgroup. Returns
  // once the init has set up the root filesystem. Blocking, bounded.
  Status start();
  // Runs a process inside: every namespace of the container (setns through its init's
  // pidfd), its cgroup, the container's capabilities, seccomp filter and rlimits.
  // The caller (its reaper) becomes the process's parent. Blocking, bounded.
  Result<Process> enter(const EnterSpec& spec);
  // SIGTERM to everything inside, up to grace_ms to exit, then freeze and cgroup.kill;
  // removes the cgroup. Nothing of the container's survives. Idempotent, blocking.
  Status stop(int grace_ms);
  // stop, then start: the VM and PID 1 stay up.
  Status bounce(int grace_ms);
  // Freezes (or thaws) every process inside, waiting until the kernel says so.
  Status freeze(bool frozen);

  bool running() const;
  pid_t init_pid() const { return init_pid_; }
  int init_pidfd() const { return init_pidfd_.get(); }
  const std::string& cgroup_path() const { return cgroup_.path(); }
  // Limits set in the config that this host's cgroup2 cannot apply.
  const std::vector<std::string>& unsupported_limits() const { return unsupported_; }

 private:
  ContainerConfig cfg_;
  CapPlan caps_;
  SeccompProgram seccomp_;
  Status prepared_;  // errors of building caps_ and seccomp_, reported by start()
  // enter() runs on one pool thread while destroy's stop() may run on another: enters
  // share the lock, start and stop take it alone, so no enter uses an fd stop has closed.
  mutable std::shared_mutex mu_;
  std::vector<std::string> unsupported_;
  // Member order is teardown order, bottom-up: the init's pidfd goes before the cgroup.
  CgroupDir cgroup_;
  UniqueFd init_pidfd_;
  pid_t init_pid_ = -1;
};

// The hidden `--container-init` mode: the container's PID 1. Container::start
// re-executes /proc/self/exe with it, so every program that starts containers must
// call this when its argv[1] is "--container-init". Sets up the root
// filesystem, reports on fd report_fd, drops to the container's privileges, then reaps
// and forwards signals until told to stop.
int container_init_main(int argc, char** argv);

}  // namespace bp::container
