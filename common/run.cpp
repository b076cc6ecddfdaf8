// common/run.cpp — run_program (see run.hpp).
#include "common/run.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "common/fd.hpp"

namespace bp {

namespace {

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

}  // namespace

Result<std::string> run_program(const std::vector<std::string>& argv) {
  if (argv.empty()) return make_error("run: no program", EINVAL);
  std::string path = find_program(argv[0]);
  if (path.empty()) return make_error("run: " + argv[0] + ": not found", ENOENT);
  // Everything the child needs is made before the clone: it only dup2s and execs,
  // because it is a copy of a threaded process in which another thread may hold a lock.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static char kPath[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  static char kLang[] = "LC_ALL=C";
  char* envp[] = {kPath, kLang, nullptr};
  UniqueFd r, w;
  if (!make_pipe(r, w)) return sys_error("run: pipe");
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return sys_error("run: open(/dev/null)");

  int pidfd = -1;
  clone_args ca{};
  ca.flags = CLONE_PIDFD;
  ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  ca.exit_signal = 0;  // no SIGCHLD: the reaper's waitpid(-1) does not see the helper
  long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0) return sys_error("run: clone3");
  if (pid == 0) {
    // The helper: raw syscalls only (a copy of a threaded process).
    clone_args pa{};
    pa.exit_signal = SIGCHLD;
    long prog = ::syscall(SYS_clone3, &pa, sizeof pa);
    if (prog == 0) {
      ::dup2(devnull.get(), 0);
      ::dup2(w.get(), 1);
      ::dup2(w.get(), 2);
      ::execve(path.c_str(), args.data(), envp);
      ::syscall(SYS_exit_group, 127);
    }
    int status = 0;
    if (prog < 0 || ::syscall(SYS_wait4, prog, &status, 0, nullptr) != prog) ::syscall(SYS_exit_group, 126);
    ::syscall(SYS_exit_group, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  UniqueFd pfd(pidfd);
  w.reset();
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  siginfo_t si{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pfd.get()), &si, WEXITED | __WCLONE) != 0)
    if (errno != EINTR) return sys_error("run: waitid(" + argv[0] + ")");
  int code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
  if (code == 0) return out;
  std::string how = code > 128 ? "was killed by " + std::string(::strsignal(code - 128)) : "exited with " + std::to_string(code);
  std::string tail = out.size() > 600 ? out.substr(out.size() - 600) : out;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  return make_error(argv[0] + " " + how + (tail.empty() ? "" : ": " + tail), code == 127 ? ENOENT : EIO);
}

}  // namespace bp
