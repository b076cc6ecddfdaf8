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
  // With SIGCHLD ignored the kernel would reap for us and owners would lose exit codes.
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  if (sigaction(SIGCHLD, &sa, nullptr) != 0) return sys_error("sigaction(SIGCHLD, SIG_DFL)");
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

void reset_signals_in_child() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace bp::init
