// init/reaper.cpp — reaping and exit delivery.
#include "init/reaper.hpp"

#include <sys/wait.h>

#include <cerrno>

#include "common/sys.hpp"

namespace bp::init {

int Reaper::exit_code(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 255;
}

void Reaper::watch(pid_t pid, OnExit cb) { owners_[pid] = std::move(cb); }

void Reaper::watch(pid_t pid, OnExit cb, Ticket since) {
  // Only an exit reaped after the ticket can be this child's: an older entry for the
  // same number belongs to an earlier process that had it.
  for (auto it = unclaimed_.begin(); it != unclaimed_.end(); ++it) {
    if (it->pid == pid && it->seq > since) {
      int code = it->code;
      unclaimed_.erase(it);
      cb(code);
      return;
    }
  }
  owners_[pid] = std::move(cb);
}

int Reaper::reap() {
  int n = 0;
  for (;;) {
    int status = 0;
    pid_t pid = retry_eintr([&] { return ::waitpid(-1, &status, WNOHANG); });
    if (pid <= 0) break;  // 0: children remain but none has exited; -1/ECHILD: none left
    ++n;
    Ticket seq = reaped_total_.fetch_add(1, std::memory_order_acq_rel) + 1;
    int code = exit_code(status);
    auto it = owners_.find(pid);
    if (it == owners_.end()) {
      // An orphan reparented to us, or a child whose owner has not registered yet.
      ++orphans_total_;
      unclaimed_.push_back({pid, code, seq});
      if (unclaimed_.size() > kUnclaimedMax) unclaimed_.pop_front();
      continue;
    }
    OnExit cb = std::move(it->second);
    owners_.erase(it);
    cb(code);
  }
  return n;
}

}  // namespace bp::init
