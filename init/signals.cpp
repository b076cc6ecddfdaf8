// init/signals.cpp — signal masks and the signalfd.
#include "init/signals.hpp"

#include <sys/signalfd.h>

namespace bp::init {

namespace {
constexpr int kSynchronous[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
constexpr int kShutdown[] = {SIGTERM, SIGINT, SIGPWR};
}  // namespace

Status block_async_signals() {
  sigset_t all;
  sigfillset(&all);
  for (int s : kSynchronous) sigdelset(&all, s);
  if (sigprocmask(SIG_BLOCK, &all, nullptr) != 0) return sys_error("sigprocmask(SIG_BLOCK)");
  // Ignored dispositions survive exec (a background job starts with SIGINT and SIGQUIT
  // ignored): reset them, so children start clean. With SIGCHLD ignored the kernel
  // would also reap for us and owners would lose exit codes.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) != 0) continue;
    if (old.sa_handler == SIG_IGN || sig == SIGCHLD) {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      if (sigaction(sig, &dfl, nullptr) != 0) return sys_error("sigaction(SIG_DFL)");
    }
  }
  return {};
}

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (int s : kShutdown) sigaddset(&set, s);
  return set;
}

bool is_shutdown_signal(int sig) {
  for (int s : kShutdown)
    if (s == sig) return true;
  return false;
}

Result<UniqueFd> open_signalfd() {
  sigset_t set = handled_signals();
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return sys_error("signalfd");
  return UniqueFd(fd);
}

}  // namespace bp::init
