// tests/integration/container_driver.cpp — drives one Container from JSON lines on stdin, for tests and benchmarks.
//
// It runs as root on a host (or in the test VM): in a private mount namespace it finds
// or mounts a cgroup2 hierarchy, then answers one JSON object per command line:
//   {"op":"start","name":N,"rootfs":DIR,"limits":{...},"no_new_privs":B}
//   {"op":"exec","argv":[...],"env":[...],"cwd":"/","uid":0,"gid":0,"stdin":"...","tty":B}
//   {"op":"spawn","argv":[...]}          start without waiting (stdio /dev/null)
//   {"op":"exec",...,"tty":true,"rows":R,"cols":C,"stdin":"..."}   through a PTY: "stdout" is the terminal
//   {"op":"time_host","argv":[...],"n":N}   baseline: fork+exec+wait of a host command N times, µs each
//   {"op":"procs"}  {"op":"bounce","grace_ms":N}  {"op":"stop","grace_ms":N}  {"op":"quit"}
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "common/sys.hpp"
#include "init/container/container.hpp"
#include "init/reaper.hpp"

using nlohmann::json;
namespace ctr = bp::container;
using Clock = std::chrono::steady_clock;

namespace {

bp::Result<ctr::CgroupParent> cgroup_parent() {
  if (::unshare(CLONE_NEWNS) != 0) return bp::sys_error("unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return bp::sys_error("mount(/, private)");
  return ctr::prepare_cgroup_parent("/run/bp-driver-cgroup", "bp-driver-" + std::to_string(::getpid()));
}

int wait_exit(bp::init::Reaper& reaper, pid_t pid) {
  int code = -1;
  bool done = false;
  reaper.watch(pid, [&](int c) {
    code = c;
    done = true;
  });
  while (!done) {
    reaper.reap();
    if (!done) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return code;
}

// Reads both pipes to EOF.
void drain(int out, int err, std::string& o, std::string& e) {
  pollfd p[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
  int open = 2;
  char buf[65536];
  while (open > 0) {
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? o : e).append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        p[i].fd = -1;
        --open;
      }
    }
  }
}

json do_exec(ctr::Container& c, bp::init::Reaper& reaper, const json& cmd, bool wait) {
  ctr::EnterSpec spec;
  spec.argv = cmd.at("argv").get<std::vector<std::string>>();
  spec.env = cmd.contains("env") ? cmd["env"].get<std::vector<std::string>>()
                                 : ctr::default_env(cmd.value("tty", false));
  spec.cwd = cmd.value("cwd", "/");
  spec.uid = cmd.value("uid", 0u);
  spec.gid = cmd.value("gid", 0u);
  if (cmd.value("tty", false)) {
    spec.tty = true;
    spec.rows = cmd.value("rows", 24);
    spec.cols = cmd.value("cols", 80);
    auto p = c.enter(spec);
    if (!p) return {{"ok", false}, {"error", p.error().what}, {"errno", p.error().code}};
    std::string input = cmd.value("stdin", "");
    if (!input.empty()) (void)bp::write_all(p->pty_master.get(), input);
    std::string o;
    char buf[65536];
    for (;;) {  // EIO once the last holder of the terminal's other side is gone
      ssize_t n = ::read(p->pty_master.get(), buf, sizeof buf);
      if (n > 0) o.append(buf, static_cast<std::size_t>(n));
      else if (n < 0 && errno == EINTR) continue;
      else break;
    }
    int code = wait_exit(reaper, p->pid);
    return {{"ok", true}, {"code", code}, {"stdout", o}, {"pid", p->pid}};
  }
  if (!wait) {
    auto p = c.enter(spec);
    if (!p) return {{"ok", false}, {"error", p.error().what}};
    reaper.watch(p->pid, [](int) {});
    return {{"ok", true}, {"pid", p->pid}};
  }
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
    return {{"ok", false}, {"error", "pipe2"}};
  bp::UniqueFd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
  spec.stdin_fd = in_r.get();
  spec.stdout_fd = out_w.get();
  spec.stderr_fd = err_w.get();
  auto t0 = Clock::now();
  auto p = c.enter(spec);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  if (!p) return {{"ok", false}, {"error", p.error().what}, {"errno", p.error().code}};
  std::string input = cmd.value("stdin", "");
  if (!input.empty()) (void)bp::write_all(in_w.get(), input);
  in_w.reset();
  std::string o, e;
  drain(out_r.get(), err_r.get(), o, e);
  int code = wait_exit(reaper, p->pid);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
  return {{"ok", true}, {"code", code}, {"stdout", o}, {"stderr", e}, {"pid", p->pid}, {"us", us}};
}

ctr::Limits parse_limits(const json& j) {
  ctr::Limits l;
  if (j.contains("memory_max")) l.memory_max = j["memory_max"].get<std::uint64_t>();
  if (j.contains("memory_swap_max")) l.memory_swap_max = j["memory_swap_max"].get<std::uint64_t>();
  if (j.contains("pids_max")) l.pids_max = j["pids_max"].get<std::uint64_t>();
  if (j.contains("cpu_max")) l.cpu_max = j["cpu_max"].get<std::string>();
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  // Container::start re-executes this binary as the container's init.
  if (argc > 1 && std::string(argv[1]) == "--container-init") return ctr::container_init_main(argc, argv);
  auto parent = cgroup_parent();
  if (!parent) {
    std::cout << json{{"ok", false}, {"error", parent.error().what}}.dump() << std::endl;
    return 1;
  }
  bp::init::Reaper reaper;
  std::unique_ptr<ctr::Container> c;
  std::string line;
  while (std::getline(std::cin, line)) {
    json out;
    try {
      json cmd = json::parse(line);
      std::string op = cmd.at("op");
      auto t0 = Clock::now();
      if (op == "start") {
        ctr::ContainerConfig cfg;
        cfg.name = cmd.at("name");
        cfg.rootfs = cmd.at("rootfs");
        cfg.cgroup_parent = parent->dir.path();
        cfg.limits = parse_limits(cmd.value("limits", json::object()));
        cfg.no_new_privs = cmd.value("no_new_privs", false);
        c = std::make_unique<ctr::Container>(cfg);
        auto s = c->start();
        out = s ? json{{"ok", true}, {"init_pid", c->init_pid()}, {"cgroup", c->cgroup_path()},
                       {"unsupported", c->unsupported_limits()}}
                : json{{"ok", false}, {"error", s.error().what}};
      } else if (op != "time_host" && op != "quit" && !c) {
        out = {{"ok", false}, {"error", "no container: start one first"}};
      } else if (op == "exec" || op == "spawn") {
        out = do_exec(*c, reaper, cmd, op == "exec");
      } else if (op == "time_host") {
        auto argv_s = cmd.at("argv").get<std::vector<std::string>>();
        std::vector<char*> args;
        for (auto& a : argv_s) args.push_back(a.data());
        args.push_back(nullptr);
        std::vector<long> us;
        int n = cmd.value("n", 100);
        for (int i = 0; i < n; ++i) {
          auto t0 = Clock::now();
          pid_t pid = ::fork();
          if (pid == 0) {
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::execvp(args[0], args.data());
            ::_exit(127);
          }
          int code = wait_exit(reaper, pid);
          if (code != 0) throw std::runtime_error("time_host: " + argv_s[0] + " exited " + std::to_string(code));
          us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
        }
        out = {{"ok", true}, {"us", us}};
      } else if (op == "procs") {
        auto text = bp::read_file(c->cgroup_path() + "/cgroup.procs");
        std::vector<long> pids;
        if (text) {
          std::istringstream in(*text);
          long pid;
          while (in >> pid) pids.push_back(pid);
        }
        out = {{"ok", bool(text)}, {"procs", pids}};
      } else if (op == "bounce" || op == "stop") {
        int grace = cmd.value("grace_ms", 2000);
        auto s = op == "bounce" ? c->bounce(grace) : c->stop(grace);
        reaper.reap();
        out = s ? json{{"ok", true}, {"init_pid", c->init_pid()}} : json{{"ok", false}, {"error", s.error().what}};
      } else if (op == "quit") {
        break;
      } else {
        out = {{"ok", false}, {"error", "unknown op " + op}};
      }
      out["ms"] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    } catch (const std::exception& e) {
      out = {{"ok", false}, {"error", e.what()}};
    }
    reaper.reap();
    std::cout << out.dump() << std::endl;
  }
  if (c) (void)c->stop(1000);
  reaper.reap();
  (void)parent->dir.remove();
  return 0;
}
