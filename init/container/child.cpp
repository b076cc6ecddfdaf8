// init/container/child.cpp — the failure report of a child that never reached exec.
#include "init/container/child.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace bp::container {

const char* step_name(Step s) {
  switch (s) {
    case Step::none: return "none";
    case Step::setns: return "setns";
    case Step::ptmx: return "open(/dev/ptmx)";
    case Step::clone: return "clone3";
    case Step::sendmsg: return "sendmsg";
    case Step::setsid: return "setsid";
    case Step::ctty: return "ioctl(TIOCSCTTY)";
    case Step::dup2: return "dup2";
    case Step::rlimit: return "setrlimit";
    case Step::seccomp: return "seccomp";
    case Step::caps_bounding: return "prctl(PR_CAPBSET_DROP)";
    case Step::setgroups: return "setgroups";
    case Step::setgid: return "setresgid";
    case Step::setuid: return "setresuid";
    case Step::caps: return "capset";
    case Step::no_new_privs: return "prctl(PR_SET_NO_NEW_PRIVS)";
    case Step::chdir: return "chdir";
    case Step::exec: return "execve";
  }
  return "?";
}

void child_fail(int fd, Step step, int err, int code) {
  ChildFailure f{step, err};
  [[maybe_unused]] auto r = ::write(fd, &f, sizeof f);
  ::_exit(code);
}

Result<ChildFailure> read_child_report(int fd, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  ChildFailure f;
  std::size_t got = 0;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error("child did not reach exec within " + std::to_string(timeout_ms) + " ms",
                                             ETIMEDOUT);
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("poll(child report)");
    if (n == 0) continue;
    ssize_t r = ::read(fd, reinterpret_cast<char*>(&f) + got, sizeof f - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error("read(child report)");
    if (r == 0) return got == sizeof f ? f : ChildFailure{};
    got += static_cast<std::size_t>(r);
    if (got == sizeof f) return f;
  }
}

}  // namespace bp::container
