// api/exec_session.hpp — what an exec session needs from the rest of ballpoint.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace bp::container {
class Container;
}

namespace bp::api {

struct ExecDeps {
  // The running container of a sprite, or null.
  std::function<std::shared_ptr<container::Container>(const std::string& sprite)> container;
  // Taken before a process is cloned off the loop (Reaper::ticket).
  std::function<std::uint64_t()> ticket;
  // Called on the loop: cb gets the exit code (128 + signal for a signal) once reaped.
  std::function<void(pid_t, std::uint64_t ticket, std::function<void(int)> cb)> watch_exit;
};

}  // namespace bp::api
