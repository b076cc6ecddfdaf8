// tests/unit/common/run_test.cpp — run_program: output, exit status, and a missing program.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include "common/run.hpp"

TEST_CASE("run_program: collects stdout and stderr, reports the exit status", "[common]") {
  auto ok = bp::run_program({"sh", "-c", "echo out; echo err >&2"});
  REQUIRE(ok);
  REQUIRE(*ok == "out\nerr\n");
  auto bad = bp::run_program({"sh", "-c", "echo why >&2; exit 3"});
  REQUIRE_FALSE(bad);
  REQUIRE(bad.error().what == "sh exited with 3: why");
  auto missing = bp::run_program({"no-such-program-here"});
  REQUIRE_FALSE(missing);
  REQUIRE(missing.error().code == ENOENT);
  // The child was waited for through its pidfd: no zombie is left for waitpid(-1).
  REQUIRE(::waitpid(-1, nullptr, WNOHANG) == -1);
}
