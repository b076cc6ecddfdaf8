// init/container/container_init.cpp — the container's PID 1: set up, then reap and forward signals.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/sys.hpp"
#include "init/container/container.hpp"
#include "init/container/rootfs.hpp"
#include "netproxy/rtnl.hpp"

namespace bp::container {

namespace {

struct InitArgs {
  RootfsSpec rootfs;
  rlim_t nofile = 65536;
  int report_fd = -1;
  bool no_new_privs = false;
};

Result<InitArgs> parse(int argc, char** argv) {
  InitArgs a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (f == "--container-init") continue;
    if (f == "--no-new-privs") {
      a.no_new_privs = true;
      continue;
    }
    if (!(v = next())) return make_error(f + ": needs a value");
    if (f == "--rootfs") a.rootfs.rootfs = v;
    else if (f == "--hostname") a.rootfs.hostname = v;
    else if (f == "--resolv-conf") a.rootfs.resolv_conf = v;
    else if (f == "--nofile") a.nofile = std::strtoull(v, nullptr, 10);
    else if (f == "--report-fd") a.report_fd = std::atoi(v);
    else return make_error("unknown argument " + f);
  }
  if (a.rootfs.rootfs.empty() || a.rootfs.rootfs.front() != '/') return make_error("--rootfs must be absolute");
  if (a.rootfs.hostname.empty()) return make_error("--hostname is required");
  return a;
}

// True when no process but us is left in our pid namespace. Zombies do not count:
// the entered processes are PID 1's children outside, reaped only when it gets to it.
bool alone() {
  DIR* d = ::opendir("/proc");
  if (!d) return false;
  bool only_us = true;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9' || std::strcmp(e->d_name, "1") == 0) continue;
    auto st = read_file(std::string("/proc/") + e->d_name + "/stat");
    if (!st) continue;  // gone meanwhile
    auto paren = st->rfind(')');
    if (paren != std::string::npos && paren + 2 < st->size() && (*st)[paren + 2] == 'Z') continue;
    only_us = false;
    break;
  }
  ::closedir(d);
  return only_us;
}

Status drop_privileges(const InitArgs& a) {
  rlimit rl{a.nofile, a.nofile};
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return sys_error("setrlimit(RLIMIT_NOFILE)");
  // Nobody inside may read our memory or reach the host through /proc/1/{exe,fd,root}.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return sys_error("prctl(PR_SET_DUMPABLE)");
  // The reaper never executes anything: no_new_privs costs it nothing.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return sys_error("prctl(PR_SET_NO_NEW_PRIVS)");
  auto prog = build_default_filter();
  if (!prog) return std::move(prog.error());
  if (int rc = install_filter(*prog); rc < 0) return sys_error("seccomp", -rc);
  CapPlan plan = make_cap_plan(default_caps());
  if (int rc = drop_bounding(plan); rc < 0) return sys_error("prctl(PR_CAPBSET_DROP)", -rc);
  if (int rc = set_caps(plan); rc < 0) return sys_error("capset", -rc);
  return {};
}

void report(int fd, const std::string& line) {
  if (fd < 0) return;
  [[maybe_unused]] auto s = write_all(fd, line);
}

}  // namespace

int container_init_main(int argc, char** argv) {
  // Signals are read with sigwaitinfo below, so they must be blocked; ballpoint's PID 1
  // hands them over blocked already, another caller may not.
  sigset_t set;
  sigfillset(&set);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS}) sigdelset(&set, sig);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  auto args = parse(argc, argv);
  int report_fd = 3;
  if (!args) {
    report(report_fd, "error: container-init: " + args.error().what + "\n");
    return 2;
  }
  report_fd = args->report_fd;
  Status s = setup_rootfs(args->rootfs);
  if (s) s = netproxy::link_set_up("lo");
  if (s) s = drop_privileges(*args);
  if (!s) {
    report(report_fd, "error: " + s.error().what + "\n");
    return 1;
  }
  report(report_fd, "ok\n");
  ::close(report_fd);
  // Nothing to say from here on: let go of ballpoint's console (or the launcher's terminal).
  if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
    for (int fd = 0; fd <= 2; ++fd) ::dup2(null, fd);
    ::close(null);
  }

  bool stopping = false;
  for (;;) {
    siginfo_t si{};
    timespec tick{0, 100 * 1000 * 1000};
    // While stopping, look every 100 ms: the processes ballpoint entered are not our
    // children, so their exits send us no SIGCHLD.
    int sig = stopping ? ::sigtimedwait(&set, &si, &tick) : ::sigwaitinfo(&set, &si);
    if (sig == SIGCHLD || sig < 0) {
      while (::waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT || sig == SIGUSR1 ||
               sig == SIGUSR2 || sig == SIGPWR) {
      // kill(-1) from a namespace's init reaches every other process in it.
      ::kill(-1, sig);
      if (sig == SIGTERM || sig == SIGPWR) stopping = true;
    }
    if (stopping && alone()) return 0;
  }
}

}  // namespace bp::container
