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

void Reaper::watch(pid_t pid, OnExit cb) {
  for (auto it = unclaimed_.begin(); it != unclaimed_.end(); ++it) {
    if (it->first == pid) {
      int code = it->second;
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
    ++reaped_total_;
    int code = exit_code(status);
    auto it = owners_.find(pid);
    if (it == owners_.end()) {
      // An orphan reparented to us, or a child whose owner has not registered yet.
      ++orphans_total_;
      unclaimed_.emplace_back(pid, code);
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
