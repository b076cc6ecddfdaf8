// init/reaper.hpp — the only caller of wait*: reaps every child and hands exits to their owners.
#pragma once

#include <sys/types.h>

#include <atomic>
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

  // Reaping happens only on the loop, so a child cloned on the loop thread and
  // registered in the same turn cannot have been reaped yet. A child cloned on another
  // thread can: take a ticket before the clone and pass it when registering (on the
  // loop); an exit of that pid reaped after the ticket then reaches cb at once.
  using Ticket = std::uint64_t;
  Ticket ticket() const { return reaped_total_.load(std::memory_order_acquire); }
  // Registers the owner of pid. Call on the loop.
  void watch(pid_t pid, OnExit cb);
  void watch(pid_t pid, OnExit cb, Ticket since);
  // waitpid(-1, WNOHANG) until nothing is left to reap: one SIGCHLD can stand for
  // many exits, since signals coalesce. Returns how many it reaped.
  int reap();

  std::uint64_t reaped_total() const { return reaped_total_.load(); }
  std::uint64_t orphans_total() const { return orphans_total_; }

  static int exit_code(int wstatus);

 private:
  struct Unclaimed {
    pid_t pid;
    int code;
    Ticket seq;  // reaped_total_ after this reap
  };
  static constexpr std::size_t kUnclaimedMax = 1024;
  std::unordered_map<pid_t, OnExit> owners_;
  std::deque<Unclaimed> unclaimed_;  // newest last, bounded
  std::atomic<std::uint64_t> reaped_total_{0};
  std::uint64_t orphans_total_ = 0;
};

}  // namespace bp::init
