// init/crash.hpp — the last resort: terminate and fatal signals end in sync and power-off.
#pragma once

namespace bp::init {

// vm_mode: power off after the message; host mode: exit with 128 + signal (the
// kernel then tears the pid namespace down). Allocates nothing when it fires.
void install_crash_handlers(bool vm_mode);

}  // namespace bp::init
