// init/main.cpp — the composition root: pick the mode, never die.
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "init/args.hpp"
#include "init/boot.hpp"
#include "init/console.hpp"
#include "init/container/container.hpp"
#include "init/crash.hpp"
#include "init/host.hpp"
#include "init/signals.hpp"

int main(int argc, char** argv) {
  using namespace bp::init;
  // The container's PID 1 is this binary too, re-executed by Container::start.
  if (argc > 1 && std::strcmp(argv[1], "--container-init") == 0) return bp::container::container_init_main(argc, argv);
  ensure_stdio();
  // Our memory holds the API token: no process of a container, not even one of ours
  // between clone and exec, may read it through ptrace or /proc/PID/mem.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  bp::Logger log("init");
  bool is_pid1 = ::getpid() == 1;
  bool host_pid1 = argc > 1 && std::strcmp(argv[1], "--host-pid1") == 0;
  install_crash_handlers(is_pid1 && !host_pid1);
  // Before any thread exists, so every thread inherits the mask.
  if (auto s = block_async_signals(); !s) log.error("signal set-up failed", {{"err", s.error().what}});

  if (is_pid1 && !host_pid1) {
    // VM mode. The kernel hands init the boot words it does not know ("single",
    // "splash", ...): they are not ours to reject. run_pid1 never returns here.
    Args vm;
    vm.mode = Mode::vm;
    return run_pid1(vm);
  }
  auto args = parse_args(std::vector<std::string>(argv, argv + argc));
  if (!args) {
    log.error("bad command line", {{"err", args.error().what}});
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
      if (!is_pid1) {
        log.error("--host-pid1 is internal: it runs only as PID 1 of the namespaces `ballpoint-init --host` makes");
        return 2;
      }
      return run_pid1(*args);
    case Mode::vm:
      log.error("not PID 1: run as a VM's /sbin/init, or on a host with --host --state DIR");
      std::fputs(usage().c_str(), stderr);
      return 2;
  }
  return 2;
}
