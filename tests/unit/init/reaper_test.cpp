// tests/unit/init/reaper_test.cpp — exit delivery to owners, orphans, exit codes.
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "init/reaper.hpp"

using bp::init::Reaper;

namespace {
pid_t spawn_exit(int code) {
  pid_t p = fork();
  if (p == 0) _exit(code);
  return p;
}
// Waits until pid is a zombie, without reaping it.
void wait_zombie(pid_t pid) {
  siginfo_t si{};
  waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOWAIT);
}
}  // namespace

TEST_CASE("exit codes: status, or 128 + signal", "[reaper]") {
  CHECK(Reaper::exit_code(42 << 8) == 42);
  CHECK(Reaper::exit_code(SIGKILL) == 128 + SIGKILL);
}

TEST_CASE("each owner gets its own child's exit code; the rest are reaped too", "[reaper]") {
  Reaper r;
  pid_t a = spawn_exit(3), b = spawn_exit(42), stray = spawn_exit(0);
  int got_a = -1, got_b = -1;
  r.watch(a, [&](int c) { got_a = c; });
  r.watch(b, [&](int c) { got_b = c; });
  for (pid_t p : {a, b, stray}) wait_zombie(p);
  CHECK(r.reap() == 3);
  CHECK(got_a == 3);
  CHECK(got_b == 42);
  CHECK(r.orphans_total() == 1);
  CHECK(r.reap() == 0);
  CHECK(waitpid(-1, nullptr, WNOHANG) == -1);  // ECHILD: no zombie left
}

TEST_CASE("an owner that registers after the exit still gets the code", "[reaper]") {
  Reaper r;
  pid_t p = spawn_exit(7);
  wait_zombie(p);
  CHECK(r.reap() == 1);
  int got = -1;
  r.watch(p, [&](int c) { got = c; });
  CHECK(got == 7);
}
