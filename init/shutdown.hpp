// init/shutdown.hpp — how PID 1 ends: flush the log, sync, power off (VM) or exit (host).
#pragma once

namespace bp::init {

// VM mode: sync() and reboot(RB_POWER_OFF); never returns. Host mode: _exit(code).
[[noreturn]] void finish(bool vm_mode, int code);

}  // namespace bp::init
