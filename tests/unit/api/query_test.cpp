// tests/unit/api/query_test.cpp — query strings as URLSearchParams writes them; exec parameters.
#include <catch2/catch.hpp>

#include "api/exec_params.hpp"
#include "api/query.hpp"

#include <algorithm>

using namespace bp::api;

TEST_CASE("query values: + is a space, %XX decoded, repeated keys kept in order", "[query]") {
  auto q = parse_query("/exec?cmd=echo&cmd=a+b&cmd=c%2Bd&env=K%3DV&tty=true#frag");
  REQUIRE(q);
  CHECK(query_all(*q, "cmd") == std::vector<std::string>{"echo", "a b", "c+d"});
  CHECK(query_get(*q, "env") == "K=V");
  CHECK(query_bool(*q, "tty", false));
  CHECK_FALSE(query_bool(*q, "stdin", false));
  CHECK_FALSE(parse_query("/x?a=%zz"));
  CHECK_FALSE(parse_query("/x?a=%4"));
  CHECK(parse_query("/x")->empty());
  CHECK(percent_decode("a+b%2F", false) == "a+b/");
}

TEST_CASE("exec parameters with their defaults", "[query]") {
  auto p = parse_exec_params(*parse_query("/exec?cmd=sh&cmd=-c&cmd=exit+3&path=sh&stdin=true"));
  REQUIRE(p);
  CHECK(p->argv == std::vector<std::string>{"sh", "-c", "exit 3"});
  CHECK(p->path == "sh");
  CHECK_FALSE(p->tty);
  CHECK(p->stdin);
  CHECK(p->dir == "/home/sprite");
  CHECK(p->max_run_after_disconnect_ms == -1);
  auto t = parse_exec_params(*parse_query("/exec?cmd=bash&tty=true&rows=40&cols=120&max_run_after_disconnect=5m"));
  REQUIRE(t);
  CHECK(t->stdin);  // a terminal has input unless told otherwise
  CHECK((t->rows == 40 && t->cols == 120));
  CHECK(t->max_run_after_disconnect_ms == 300000);
  auto env = exec_environment(*t);
  CHECK(std::find(env.begin(), env.end(), "TERM=xterm-256color") != env.end());
}

TEST_CASE("bad exec parameters are refused with a reason", "[query]") {
  for (const char* target : {"/exec", "/exec?tty=true", "/exec?cmd=ls&rows=0", "/exec?cmd=ls&cols=99999",
                             "/exec?cmd=ls&env=NOEQUALS", "/exec?cmd=ls&dir=relative",
                             "/exec?cmd=ls&max_run_after_disconnect=soon"}) {
    INFO(target);
    auto p = parse_exec_params(*parse_query(target));
    REQUIRE_FALSE(p);
    CHECK_FALSE(p.error().what.empty());
  }
}

TEST_CASE("Go durations and signal names", "[query]") {
  CHECK(parse_go_duration_ms("0") == 0);
  CHECK(parse_go_duration_ms("10s") == 10000);
  CHECK(parse_go_duration_ms("1h30m") == 5400000);
  CHECK(parse_go_duration_ms("6666666666666666666h") == -1);  // found by tests/fuzz: overflowed
  CHECK(parse_go_duration_ms("250ms") == 250);
  CHECK(parse_go_duration_ms("5") == -1);
  CHECK(parse_go_duration_ms("") == -1);
  CHECK(parse_signal("SIGTERM") == 15);
  CHECK(parse_signal("term") == 15);
  CHECK(parse_signal("KILL") == 9);
  CHECK(parse_signal("9") == 9);
  CHECK(parse_signal("BOGUS") == 0);
  CHECK(parse_signal("0") == 0);
  CHECK(parse_signal("40") == 0);  // real-time signals have no name to report
  CHECK(parse_signal("RTMIN") == 0);
}
