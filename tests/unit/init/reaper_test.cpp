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

TEST_CASE("each owner gets its own child's exit code, and the rest are reaped too", "[reaper]") {
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

TEST_CASE("a child cloned off the loop: registering with a ticket still gets the code", "[reaper]") {
  Reaper r;
  auto t = r.ticket();
  pid_t p = spawn_exit(7);
  wait_zombie(p);
  CHECK(r.reap() == 1);  // reaped before its owner registered
  int got = -1;
  r.watch(p, [&](int c) { got = c; }, t);
  CHECK(got == 7);
}

TEST_CASE("an exit reaped before the ticket is never handed to a new owner of that pid", "[reaper]") {
  Reaper r;
  pid_t p = spawn_exit(9);
  wait_zombie(p);
  CHECK(r.reap() == 1);  // an orphan, say, whose number is reused later
  auto t = r.ticket();
  int got = -1;
  r.watch(p, [&](int c) { got = c; }, t);
  CHECK(got == -1);  // waits for its own exit instead
  r.watch(p, [&](int c) { got = c; });  // same without a ticket
  CHECK(got == -1);
}
