// init/reaper.hpp — the only caller of wait*: reaps every child and hands exits to their owners.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <utility>

namespace bp::init {

class Reaper {
 public:
  // Receives the exit code, or 128 + the signal that ended the process.
  using OnExit = std::function<void(int code)>;

  // Registers the owner of pid. Register in the same loop turn as the clone; if the
  // pid was already reaped (spawned off the loop and fast to die), cb runs now.
  void watch(pid_t pid, OnExit cb);
  // waitpid(-1, WNOHANG) until nothing is left to reap: one SIGCHLD can stand for
  // many exits, since signals coalesce. Returns how many it reaped.
  int reap();

  std::uint64_t reaped_total() const { return reaped_total_; }
  std::uint64_t orphans_total() const { return orphans_total_; }

  static int exit_code(int wstatus);

 private:
  static constexpr std::size_t kUnclaimedMax = 64;
  std::unordered_map<pid_t, OnExit> owners_;
  std::deque<std::pair<pid_t, int>> unclaimed_;  // newest last, bounded
  std::uint64_t reaped_total_ = 0;
  std::uint64_t orphans_total_ = 0;
};

}  // namespace bp::init
