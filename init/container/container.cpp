// init/container/container.cpp — start (clone3 into namespaces and cgroup), stop, bounce.
#include "init/container/container.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <sys/resource.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <poll.h>

#include "common/log.hpp"
#include "init/container/child.hpp"

namespace bp::container {

namespace {

constexpr std::uint64_t kNamespaces =
    CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;

// What the container's init writes on its report fd: "ok\n", or "error: ...\n".
Result<std::string> read_init_report(int fd, int timeout_ms) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error("no report within " + std::to_string(timeout_ms) + " ms", ETIMEDOUT);
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("poll(init report)");
    if (n == 0) continue;
    char buf[512];
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error("read(init report)");
    if (r == 0) return out;
    out.append(buf, static_cast<std::size_t>(r));
    if (!out.empty() && out.back() == '\n') return out;
  }
}

bool has_sys_resource() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return false;
  return data[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32));
}

}  // namespace

std::vector<std::string> default_env(bool tty, const std::string& home) {
  return {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home,
          std::string("TERM=") + (tty ? "xterm-256color" : "dumb"), "LANG=C.UTF-8"};
}

Container::Container(ContainerConfig cfg) : cfg_(std::move(cfg)), caps_(make_cap_plan(default_caps())) {
  auto prog = build_default_filter();
  if (prog)
    seccomp_ = std::move(*prog);
  else
    prepared_ = std::move(prog.error()).wrap("seccomp filter");
}

Container::~Container() { [[maybe_unused]] auto s = stop(0); }

bool Container::running() const {
  std::shared_lock lk(mu_);
  return init_pidfd_.valid();
}

Status Container::start() {
  Logger log("container");
  std::unique_lock lk(mu_);
  if (init_pidfd_.valid()) return make_error("container " + cfg_.name + ": already running", EBUSY);
  if (!prepared_) return prepared_;
  auto cg = CgroupDir::create(cfg_.cgroup_parent + "/" + cfg_.name);
  if (!cg) return std::move(cg.error()).wrap("container " + cfg_.name + ": cgroup");
  unsupported_.clear();
  if (auto s = cg->apply(cfg_.limits, unsupported_); !s) return std::move(s.error()).wrap("container: limits");
  for (const auto& u : unsupported_)
    log.warn("limit cannot be applied: this cgroup2 hierarchy has no such controller",
             {{"sprite", cfg_.name}, {"limit", u}, {"cgroup", cg->path()}});

  // Raising the hard limit needs CAP_SYS_RESOURCE, which some hosts withhold even from root.
  rlimit cur{};
  if (::getrlimit(RLIMIT_NOFILE, &cur) == 0 && cfg_.nofile > cur.rlim_max && !has_sys_resource()) {
    log.warn("RLIMIT_NOFILE cannot be raised past the host's hard limit here (no CAP_SYS_RESOURCE)",
             {{"sprite", cfg_.name}, {"wanted", cfg_.nofile}, {"using", static_cast<std::uint64_t>(cur.rlim_max)}});
    cfg_.nofile = cur.rlim_max;
  }

  UniqueFd exe(::open("/proc/self/exe", O_PATH | O_CLOEXEC));
  if (!exe) return sys_error("open(/proc/self/exe)");
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return sys_error("open(/dev/null)");
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return sys_error("pipe2");
  UniqueFd report_r(pipefd[0]), report_w(pipefd[1]);

  // Everything the child needs is built here: after clone it may not allocate.
  std::vector<std::string> words = {"ballpoint-init", "--container-init", "--rootfs", cfg_.rootfs, "--hostname",
                                    cfg_.name, "--resolv-conf", cfg_.resolv_conf, "--nofile",
                                    std::to_string(cfg_.nofile), "--report-fd", "3"};
  if (cfg_.no_new_privs) words.push_back("--no-new-privs");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};

  int pidfd = -1;
  clone_args ca{};
  ca.flags = kNamespaces | CLONE_PIDFD | CLONE_INTO_CGROUP;
  ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  ca.cgroup = static_cast<std::uint64_t>(cg->fd());
  ca.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0) return sys_error("container " + cfg_.name + ": clone3(namespaces, CLONE_INTO_CGROUP)");
  if (pid == 0) {
    // The init keeps PID 1's blocked signal mask on purpose: it reads signals with
    // sigwaitinfo. It keeps stdout/stderr for errors until it has reported, then
    // points all of its stdio at /dev/null.
    // dup2 onto itself would keep close-on-exec: move the pipe to fd 3 explicitly.
    int rep = report_w.get();
    if (rep == 3 ? ::fcntl(3, F_SETFD, 0) < 0 : ::dup2(rep, 3) < 0) ::_exit(126);
    if (::dup2(devnull.get(), 0) < 0) ::_exit(126);
    // Without this nothing else is closed at exec: better no container than a leaky one.
    if (::syscall(SYS_close_range, 4, ~0U, CLOSE_RANGE_CLOEXEC) != 0) ::_exit(126);
    ::syscall(SYS_execveat, exe.get(), "", argv.data(), envp, AT_EMPTY_PATH);
    static const char msg[] = "error: execveat(ballpoint-init --container-init) failed\n";
    [[maybe_unused]] auto w = ::write(3, msg, sizeof msg - 1);
    ::_exit(127);
  }
  UniqueFd init_pidfd(pidfd);
  report_w.reset();
  auto report = read_init_report(report_r.get(), cfg_.start_timeout_ms);
  if (!report || *report != "ok\n") {
    std::string why = report ? (report->empty() ? "init exited before it was ready" : *report) : report.error().what;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    ::syscall(SYS_pidfd_send_signal, init_pidfd.get(), SIGKILL, nullptr, 0);
    return make_error("container " + cfg_.name + ": start: " + why);  // cg's destructor empties and removes it
  }
  cgroup_ = std::move(*cg);
  init_pidfd_ = std::move(init_pidfd);
  init_pid_ = static_cast<pid_t>(pid);
  log.info("container started", {{"sprite", cfg_.name}, {"init_pid", init_pid_}, {"cgroup", cgroup_.path()}});
  return {};
}

Status Container::stop(int grace_ms) {
  std::unique_lock lk(mu_);
  if (!init_pidfd_.valid()) return {};
  Logger log("container");
  // The init forwards SIGTERM to everything in the pid namespace and exits when it is empty.
  ::syscall(SYS_pidfd_send_signal, init_pidfd_.get(), SIGTERM, nullptr, 0);
  auto empty = cgroup_.wait_empty(grace_ms);
  bool forced = !empty || !*empty;
  if (forced) {
    // Freeze first so nothing forks while the kill is delivered.
    if (auto s = cgroup_.freeze(true, 1000); !s) log.warn("freeze before kill failed", {{"err", s.error().what}});
    if (auto s = cgroup_.kill_all(5000); !s) return std::move(s.error()).wrap("container " + cfg_.name + ": stop");
  }
  init_pidfd_.reset();
  init_pid_ = -1;
  if (auto s = cgroup_.remove(); !s) return std::move(s.error()).wrap("container " + cfg_.name + ": stop");
  log.info("container stopped", {{"sprite", cfg_.name}, {"forced", forced}});
  return {};
}

Status Container::freeze(bool frozen) {
  std::shared_lock lk(mu_);
  if (!init_pidfd_) return make_error("container " + cfg_.name + " is not running", ESRCH);
  return cgroup_.freeze(frozen, 5000);
}

Status Container::bounce(int grace_ms) {
  if (auto s = stop(grace_ms); !s) return s;
  return start();
}

}  // namespace bp::container
