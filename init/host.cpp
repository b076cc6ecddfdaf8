// init/host.cpp — the host-mode launcher: clone3 into namespaces, exec, forward signals, wait.
#include "init/host.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <memory>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "init/reaper.hpp"
#include "init/signals.hpp"
#include "init/state.hpp"

namespace bp::init {

namespace {

// Only async-signal-safe calls between clone and exec: argv/envp are built before.
[[noreturn]] void child_exec(int exe_fd, char* const* argv, char* const* envp) {
  // The signal mask stays blocked across exec on purpose: the new PID 1 reads its
  // signals from a signalfd, and a SIGTERM arriving before it has set that up must
  // wait for it rather than kill it.
  // If the launcher dies, PID 1 is asked to stop cleanly (SIGTERM reaches it via signalfd).
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  // Whatever the invoking shell left open is not PID 1's to keep.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::syscall(SYS_execveat, exe_fd, "", argv, envp, AT_EMPTY_PATH);
  static const char msg[] = "ballpoint: exec of host PID 1 failed\n";
  [[maybe_unused]] auto r = ::write(2, msg, sizeof msg - 1);
  ::_exit(127);
}

}  // namespace

int run_host_launcher(const Args& args) {
  Logger log("init.host");
  if (::geteuid() != 0) {
    log.error("host mode needs root (it creates pid and mount namespaces); run it with sudo");
    return 1;
  }
  if (auto s = make_state_dir(args.state_dir); !s) {
    log.error("cannot create the state directory", {{"err", s.error().what}});
    return 1;
  }
  char abs[PATH_MAX];
  if (!::realpath(args.state_dir.c_str(), abs)) {
    log.error("cannot resolve the state directory", {{"dir", args.state_dir}, {"err", std::strerror(errno)}});
    return 1;
  }
  UniqueFd exe(::open("/proc/self/exe", O_PATH | O_CLOEXEC));
  if (!exe) {
    log.error("open(/proc/self/exe)", {{"err", std::strerror(errno)}});
    return 1;
  }

  std::vector<std::string> words = {"ballpoint-init", "--host-pid1", "--state", abs};
  if (!args.config_path.empty()) {
    char cabs[PATH_MAX];
    if (!::realpath(args.config_path.c_str(), cabs)) {
      log.error("cannot resolve the config file", {{"path", args.config_path}, {"err", std::strerror(errno)}});
      return 1;
    }
    words.insert(words.end(), {"--config", cabs});
  }
  for (const auto& [k, v] : args.overrides) words.insert(words.end(), {"--set", k + "=" + v});
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);


  // PID 1 gets a clean environment, not the invoking shell's: a PATH, and the object
  // store's keys if the shell has them (PID 1 never passes them on to a sprite).
  std::vector<std::string> env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  for (const char* k : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"})
    if (const char* v = ::getenv(k)) env.push_back(std::string(k) + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int pidfd = -1;
  clone_args ca{};
  ca.flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_PIDFD;
  ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  ca.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0) {
    log.error("clone3(CLONE_NEWPID|CLONE_NEWNS)", {{"err", std::strerror(errno)}});
    return 1;
  }
  if (pid == 0) child_exec(exe.get(), argv.data(), envp.data());
  UniqueFd child(pidfd);
  log.debug("started host PID 1", {{"pid", pid}, {"state", abs}});
  // PID 1 serves its sprites' disks over FUSE and mounts ext4 on them in its mount
  // namespace. If PID 1 died holding the last reference to that namespace, its teardown
  // (in PID 1's exit, before its /dev/fuse is released) would flush into its own FUSE
  // files and wait forever. Holding a reference here until PID 1 is gone makes the
  // teardown ours, after the FUSE connections have been aborted: a kill -9 of PID 1
  // leaves no stuck process.
  UniqueFd mnt_ns(::open(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC));
  if (!mnt_ns) log.warn("cannot hold PID 1's mount namespace", {{"err", std::strerror(errno)}});

  // Signals stay blocked (main did that); read them synchronously: this process has
  // nothing else to do until its child ends.
  sigset_t set = handled_signals();
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGQUIT);
  for (;;) {
    siginfo_t si{};
    int sig = ::sigwaitinfo(&set, &si);
    if (sig < 0) continue;  // EINTR
    if (sig == SIGCHLD) {
      int status = 0;
      pid_t r = ::waitpid(static_cast<pid_t>(pid), &status, WNOHANG);
      if (r == pid) return Reaper::exit_code(status);
      continue;
    }
    // Ctrl-C reaches the whole process group, PID 1 included; forwarding is harmless.
    ::syscall(SYS_pidfd_send_signal, child.get(), SIGTERM, nullptr, 0);
  }
}

}  // namespace bp::init
