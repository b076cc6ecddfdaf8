// tests/unit/api/sessions_test.cpp — the session table: ids never reused, retention
// bounded; control-channel args as an exec query.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "api/control_args.hpp"
#include "api/exec_params.hpp"
#include "api/sessions.hpp"

using namespace bp::api;
using nlohmann::json;

TEST_CASE("session ids are not reused after a restart when a file records them", "[sessions]") {
  char tmpl[] = "/tmp/bp-sessions-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  std::string path = std::string(tmpl) + "/session-ids";
  std::uint64_t last = 0;
  {
    SessionTable t;
    t.persist_ids(path);
    for (int i = 0; i < 3000; ++i) last = t.next_id();  // crosses several reserved blocks
  }
  SessionTable again;  // a restart: the old ids were handed out, and may be attached to
  again.persist_ids(path);
  CHECK(again.next_id() > last);
  SessionTable plain;  // without a file: from 1
  CHECK(plain.next_id() == 1);
  std::filesystem::remove_all(tmpl);
}

TEST_CASE("ended sessions are kept a while, bounded in number", "[sessions]") {
  SessionTable t;
  for (std::size_t i = 0; i < SessionTable::kMaxRetained + 50; ++i) {
    auto id = t.next_id();
    t.add({id, "box", "true", "/", 1767609000, 0, 0, false, 1, false, -1});
    t.exited(id, 0);
    t.ended(id, nullptr);
  }
  auto id = t.next_id();
  t.add({id, "box", "sleep 5", "/", 1767609000, 0, 0, false, 1, false, -1});
  CHECK(t.list("box").size() == 1);     // exited ones are not listed
  CHECK(!t.get("box", 1));               // the oldest were dropped past the cap
  auto kept = t.get("box", id - 1);      // the newest are still there, exited
  REQUIRE(kept);
  CHECK(kept->exited);
  CHECK(!t.get("other", id));            // sessions belong to their sprite
}

TEST_CASE("control args: strings, arrays, booleans, numbers, or a query string", "[control]") {
  // JS: strings and arrays of strings.
  auto q = control_args_query(json::parse(R"({"cmd":["sh","-c","exit 3"],"env":["A=1"],"dir":"/tmp","tty":"true",
                                              "rows":"24","cols":"80","stdin":"true"})"));
  REQUIRE(q);
  auto p = parse_exec_params(*q);
  REQUIRE(p);
  CHECK(p->argv == std::vector<std::string>{"sh", "-c", "exit 3"});
  CHECK(p->env == std::vector<std::string>{"A=1"});
  CHECK(p->dir == "/tmp");
  CHECK(p->tty);
  CHECK(p->rows == 24);
  // Python: real booleans and numbers behave like their string forms.
  auto typed = control_args_query(json::parse(R"({"cmd":["stty","size"],"tty":true,"rows":30,"cols":100,"stdin":false,
                                                  "path":null})"));
  REQUIRE(typed);
  auto tp = parse_exec_params(*typed);
  REQUIRE(tp);
  CHECK(tp->tty);
  CHECK(!tp->stdin);
  CHECK(tp->rows == 30);
  CHECK(tp->cols == 100);
  // Go fs ops: a query string.
  auto qs = control_args_query(json("cmd=echo&cmd=a+b&dir=%2Ftmp"));
  REQUIRE(qs);
  auto qp = parse_exec_params(*qs);
  REQUIRE(qp);
  CHECK(qp->argv == std::vector<std::string>{"echo", "a b"});
  CHECK(qp->dir == "/tmp");
  // Absent: no args; then exec itself says what is missing.
  REQUIRE(control_args_query(json()));
  CHECK(!parse_exec_params(*control_args_query(json())));
  // Shapes that mean nothing here are refused, not guessed at.
  CHECK(!control_args_query(json::parse(R"({"cmd":{"a":1}})")));
  CHECK(!control_args_query(json::parse(R"({"cmd":[["x"]]})")));
  CHECK(!control_args_query(json::parse(R"([1,2])")));
  CHECK(!control_args_query(json(42)));
  CHECK(!control_args_query(json("cmd=%zz")));
}
