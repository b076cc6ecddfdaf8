// api/spawn.hpp — starting an exec's process in a sprite's container, shared by the
// WebSocket and the HTTP exec. Private to api/ (it pulls in Asio).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <string>

#include "api/exec_params.hpp"
#include "api/exec_session.hpp"
#include "common/fd.hpp"
#include "init/container/container.hpp"

namespace bp::api {

struct Spawned {
  Result<container::Process> proc;  // the process (and its PTY master in TTY mode), or why not
  UniqueFd in_w, out_r, err_r;      // non-TTY: our ends of its pipes (stdin only when asked for)
  std::uint64_t ticket = 0;         // for deps.watch_exit()
};

// Enters the sprite's container off the loop (API.md 2.1.2). p and sprite must be
// named objects that outlive the call.
boost::asio::awaitable<Spawned> spawn_exec(const ExecParams& p, const std::string& sprite, const ExecDeps& deps,
                                          boost::asio::thread_pool& blocking);

// The exit code a spawn failure reports: 127 for no such program, 126 for anything else.
int spawn_failure_code(const Error& e);

}  // namespace bp::api
