// init/console.hpp — PID 1's stdio: always fds 0-2, and the console once /dev has it.
#pragma once

namespace bp::init {

// Makes sure fds 0, 1 and 2 are open before anything else opens a file: a kernel that
// found no /dev/console starts init without them, and the signalfd or Asio's epoll fd
// would otherwise become "stderr". Uses /dev/console, else /dev/null, else a
// placeholder that swallows writes.
void ensure_stdio();

// After /dev is mounted: replaces placeholders from ensure_stdio() with the console.
void reopen_console();

}  // namespace bp::init
