// init/main.cpp — the composition root: parse arguments, pick the mode, never die.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/log.hpp"
#include <sys/prctl.h>

#include <cstring>

#include "init/args.hpp"
#include "init/container/container.hpp"
#include "init/boot.hpp"
#include "init/crash.hpp"
#include "init/host.hpp"
#include "init/shutdown.hpp"
#include "init/signals.hpp"

int main(int argc, char** argv) {
  using namespace bp::init;
  // The container's PID 1 is this binary too, re-executed by Container::start.
  if (argc > 1 && std::strcmp(argv[1], "--container-init") == 0) return bp::container::container_init_main(argc, argv);
  // Our memory holds the API token: no process of a container, even one of ours between
  // clone and exec, may read it through ptrace or /proc/PID/mem.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  std::vector<std::string> words(argv, argv + argc);
  bool is_pid1 = ::getpid() == 1;
  bp::Logger log("init");

  // Before any thread exists, so every thread inherits the mask.
  if (auto s = block_async_signals(); !s) log.error("signal set-up failed", {{"err", s.error().what}});

  auto args = parse_args(words);
  if (!args) {
    log.error("bad command line", {{"err", args.error().what}});
    if (is_pid1) finish(true, 2);  // a VM whose init cannot start still powers off cleanly
    std::fputs(usage().c_str(), stderr);
    return 2;
  }
  switch (args->mode) {
    case Mode::help:
      std::fputs(usage().c_str(), stdout);
      return 0;
    case Mode::version:
      std::puts("ballpoint-init 0.1.0");
      return 0;
    case Mode::host:
      return run_host_launcher(*args);
    case Mode::host_pid1:
      install_crash_handlers(false);
      return run_pid1(*args);
    case Mode::vm:
      if (!is_pid1) {
        log.error("not PID 1: run as a VM's /sbin/init, or on a host with --host --state DIR");
        std::fputs(usage().c_str(), stderr);
        return 2;
      }
      install_crash_handlers(true);
      return run_pid1(*args);
  }
  return 2;
}
