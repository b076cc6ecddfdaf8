// init/shutdown.cpp — the end of PID 1.
#include "init/shutdown.hpp"

#include <sys/reboot.h>
#include <unistd.h>

#include "common/log.hpp"

namespace bp::init {

void finish(bool vm_mode, int code) {
  Logger log("init.shutdown");
  log.info(vm_mode ? "powering off" : "exiting", {{"code", code}});
  logsink::stop_writer();  // everything queued reaches the console first
  ::sync();
  if (vm_mode) {
    ::reboot(RB_POWER_OFF);
    log.fatal("reboot(RB_POWER_OFF) failed; halting");
    for (;;) ::pause();
  }
  ::_exit(code);
}

}  // namespace bp::init
