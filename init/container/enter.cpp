// init/container/enter.cpp — run a process inside a running container.
//
// setns into a mount namespace needs a single-threaded caller, and PID 1 has threads,
// so a short-lived intermediate child joins the namespaces and clones the real process
// with CLONE_PARENT: it becomes our child (our reaper gets its exit) while living in
// the container's pid namespace and in its cgroup (the intermediate is cloned into it). The
// intermediate sends the new process's pidfd (and a PTY master) back over a socket.
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "init/container/child.hpp"
#include "init/container/container.hpp"

namespace bp::container {

namespace {

constexpr int kNamespaces = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;

struct Payload {
  pid_t pid;
};

// Everything the two children need, built before the first clone.
struct Plan {
  int container_pidfd;
  int sock;       // the intermediate's end of the socketpair
  int report;     // write end of the report pipe (close-on-exec)
  int devnull;
  int in, out, err;
  bool tty;
  winsize ws;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<std::string> candidates_store;
  std::vector<const char*> candidates;  // paths to try for argv[0], in order
  const char* cwd;
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
  rlim_t nofile;
  bool no_new_privs;
  const CapPlan* caps;
  const SeccompProgram* seccomp;
};

[[noreturn]] void run_process(const Plan& p, int slave) {
  int rep = p.report;
  if (::setsid() < 0) child_fail(rep, Step::setsid, errno);
  if (p.tty) {
    if (::ioctl(slave, TIOCSCTTY, 0) != 0) child_fail(rep, Step::ctty, errno);
    for (int fd = 0; fd <= 2; ++fd)
      if (::dup2(slave, fd) < 0) child_fail(rep, Step::dup2, errno);
  } else {
    int fds[3] = {p.in >= 0 ? p.in : p.devnull, p.out >= 0 ? p.out : p.devnull, p.err >= 0 ? p.err : p.devnull};
    // Through fresh descriptors first: one target may be another's source.
    int tmp[3];
    for (int i = 0; i < 3; ++i)
      if ((tmp[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 10)) < 0) child_fail(rep, Step::dup2, errno);
    for (int i = 0; i < 3; ++i)
      if (::dup2(tmp[i], i) < 0) child_fail(rep, Step::dup2, errno);
  }
  // PID 1 blocks every signal and the child must start clean.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);

  rlimit rl{p.nofile, p.nofile};
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) child_fail(rep, Step::rlimit, errno);
  // Installed while still privileged (seccomp needs CAP_SYS_ADMIN without no_new_privs).
  if (int rc = install_filter(*p.seccomp); rc < 0) child_fail(rep, Step::seccomp, -rc);
  if (int rc = drop_bounding(*p.caps); rc < 0) child_fail(rep, Step::caps_bounding, -rc);
  // Raw syscalls: glibc's wrappers would try to change the credentials of every thread
  // it believes exists (the "setxid" broadcast), and after clone3 it still believes in
  // PID 1's threads, which are not in this process: it would wait for them for ever.
  if (::syscall(SYS_setgroups, p.groups.size(), p.groups.data()) != 0) child_fail(rep, Step::setgroups, errno);
  if (::syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) child_fail(rep, Step::setgid, errno);
  if (::syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) child_fail(rep, Step::setuid, errno);
  if (p.uid == 0)
    if (int rc = set_caps(*p.caps); rc < 0) child_fail(rep, Step::caps, -rc);
  if (p.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(rep, Step::no_new_privs, errno);
  if (::chdir(p.cwd) != 0) child_fail(rep, Step::chdir, errno);
  // Whatever PID 1 (or another thread of it) had open without CLOEXEC stays out.
  if (::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) child_fail(rep, Step::exec, errno, 126);
  int err = ENOENT;
  for (const char* path : p.candidates) {
    ::execve(path, p.argv.data(), p.envp.data());
    if (errno != ENOENT && errno != ENOTDIR) err = errno;  // keep EACCES over a later ENOENT
  }
  child_fail(rep, Step::exec, err, err == ENOENT ? 127 : 126);
}

[[noreturn]] void run_intermediate(const Plan& p) {
  int rep = p.report;
  if (::setns(p.container_pidfd, kNamespaces) != 0) child_fail(rep, Step::setns, errno);
  int master = -1, slave = -1;
  if (p.tty) {
    // Now /dev/ptmx is the container's: the terminal belongs to its devpts.
    master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) child_fail(rep, Step::ptmx, errno);
    int unlock = 0;
    if (::ioctl(master, TIOCSPTLCK, &unlock) != 0) child_fail(rep, Step::ptmx, errno);
    slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) child_fail(rep, Step::ptmx, errno);
    ::ioctl(master, TIOCSWINSZ, &p.ws);  // sized before the program starts
  }
  // The intermediate already sits in the container's cgroup (it was cloned into it):
  // with nsdelegate, a move into a cgroup namespace's tree must start inside it too,
  // so CLONE_INTO_CGROUP from outside would fail with ENOENT after the setns above.
  int pidfd = -1;
  clone_args ca{};
  ca.flags = CLONE_PARENT | CLONE_PIDFD;
  ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0) child_fail(rep, Step::clone, errno);
  if (pid == 0) run_process(p, slave);

  Payload pl{static_cast<pid_t>(pid)};
  iovec iov{&pl, sizeof pl};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  int nfds = master >= 0 ? 2 : 1;
  msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
  int fds[2] = {pidfd, master};
  std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  if (::sendmsg(p.sock, &msg, MSG_NOSIGNAL) < 0) {
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    child_fail(rep, Step::sendmsg, errno);
  }
  ::_exit(0);
}

// Receives {pid} with the pidfd and maybe a PTY master; 0 bytes: the intermediate failed.
Result<Process> receive_process(int sock, bool tty, int timeout_ms) {
  pollfd pfd{sock, POLLIN, 0};
  int n;
  do n = ::poll(&pfd, 1, timeout_ms);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return make_error("enter: no answer from the intermediate process", n == 0 ? ETIMEDOUT : errno);
  Payload pl{};
  iovec iov{&pl, sizeof pl};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof ctrl;
  ssize_t r;
  do r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0) return sys_error("enter: recvmsg");
  Process proc;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int fds[2] = {-1, -1};
    std::memcpy(fds, CMSG_DATA(c), (count > 2 ? 2 : count) * sizeof(int));
    proc.pidfd.reset(fds[0]);
    if (count > 1) proc.pty_master.reset(fds[1]);
  }
  if (r == 0) return proc;  // the intermediate failed; the report pipe says why
  if (static_cast<std::size_t>(r) != sizeof pl || !proc.pidfd || (tty && !proc.pty_master))
    return make_error("enter: malformed answer from the intermediate process", EPROTO);
  proc.pid = pl.pid;
  return proc;
}

}  // namespace

Result<Process> Container::enter(const EnterSpec& spec) {
  std::shared_lock lk(mu_);
  if (!init_pidfd_.valid()) return make_error("container " + cfg_.name + ": not running", ESRCH);
  if (spec.argv.empty() || spec.argv[0].empty()) return make_error("enter: empty command", EINVAL);

  Plan p{};
  p.container_pidfd = init_pidfd_.get();
  p.tty = spec.tty;
  p.ws = winsize{spec.rows, spec.cols, 0, 0};
  p.in = spec.stdin_fd;
  p.out = spec.stdout_fd;
  p.err = spec.stderr_fd;
  p.cwd = spec.cwd.c_str();
  p.uid = spec.uid;
  p.gid = spec.gid;
  p.groups = spec.groups;
  p.nofile = cfg_.nofile;
  p.no_new_privs = cfg_.no_new_privs;
  p.caps = &caps_;
  p.seccomp = &seccomp_;
  for (const auto& a : spec.argv) p.argv.push_back(const_cast<char*>(a.c_str()));
  p.argv.push_back(nullptr);
  for (const auto& e : spec.env) p.envp.push_back(const_cast<char*>(e.c_str()));
  p.envp.push_back(nullptr);
  // PATH lookup, as execvp does, but with the paths made here: the child can't allocate.
  const std::string& prog = spec.path.empty() ? spec.argv[0] : spec.path;
  if (prog.find('/') != std::string::npos) {
    p.candidates_store.push_back(prog);
  } else {
    std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const auto& e : spec.env)
      if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
    std::size_t start = 0;
    while (start <= path.size()) {
      auto colon = path.find(':', start);
      if (colon == std::string::npos) colon = path.size();
      std::string dir = colon > start ? path.substr(start, colon - start) : ".";
      p.candidates_store.push_back(dir + "/" + prog);
      start = colon + 1;
    }
  }
  for (const auto& c : p.candidates_store) p.candidates.push_back(c.c_str());

  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return sys_error("enter: open(/dev/null)");
  p.devnull = devnull.get();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return sys_error("enter: socketpair");
  UniqueFd sock_parent(sv[0]), sock_child(sv[1]);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return sys_error("enter: pipe2");
  UniqueFd report_r(pipefd[0]), report_w(pipefd[1]);
  p.sock = sock_child.get();
  p.report = report_w.get();

  // Straight into the container's cgroup: the process it clones stays there, and so it
  // counts against the container's pids.max like everything inside.
  clone_args ca{};
  ca.flags = CLONE_INTO_CGROUP;
  ca.cgroup = static_cast<std::uint64_t>(cgroup_.fd());
  ca.exit_signal = SIGCHLD;  // reaped by the caller's reaper like any stray child
  long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0) return sys_error("enter " + cfg_.name + ": clone3(CLONE_INTO_CGROUP)");
  if (pid == 0) run_intermediate(p);
  sock_child.reset();
  report_w.reset();

  auto proc = receive_process(sock_parent.get(), spec.tty, 10000);
  if (!proc) return std::move(proc.error());
  auto report = read_child_report(report_r.get(), 10000);
  if (!report) {
    // Stopped before exec (SIGSTOP from inside, say): it must not run on unwatched.
    if (proc->pidfd) ::syscall(SYS_pidfd_send_signal, proc->pidfd.get(), SIGKILL, nullptr, 0);
    return std::move(report.error()).wrap("enter");
  }
  if (report->step == Step::none && proc->pid < 0)
    return make_error("enter " + cfg_.name + ": the intermediate process died before it reported", ECHILD);
  if (report->step != Step::none) {
    std::string what = std::string(step_name(report->step)) + (report->step == Step::exec ? "(" + prog + ")" : "");
    return std::move(sys_error(what, report->err)).wrap("enter " + cfg_.name);
  }
  return proc;
}

}  // namespace bp::container
