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

#include "api/client_input.hpp"

TEST_CASE("client frames: stdin with its prefix, EOF, resize and signal, junk ignored", "[input]") {
  using namespace std::string_view_literals;
  auto stdin_of = [](const ClientInput& in) {
    auto* s = std::get_if<Stdin>(&in);
    return s ? std::optional<std::string>(std::string(s->data)) : std::nullopt;
  };
  // /exec, non-TTY (API.md 2.1.4): 00 data, 04 EOF; anything else is dropped.
  CHECK(stdin_of(parse_client_frame(false, "\x00" "abc"sv, false, false)) == "abc");
  CHECK(std::holds_alternative<StdinEof>(parse_client_frame(false, "\x04"sv, false, false)));
  CHECK(std::holds_alternative<Ignore>(parse_client_frame(false, "\x09oops"sv, false, false)));
  CHECK(std::holds_alternative<Ignore>(parse_client_frame(false, ""sv, false, false)));
  CHECK(std::holds_alternative<Ignore>(parse_client_frame(false, "\x00"sv, false, false)));
  // TTY: verbatim, a 04 included (the line discipline's business).
  CHECK(stdin_of(parse_client_frame(false, "\x04"sv, true, false)) == "\x04");
  // Text messages.
  auto r = parse_client_frame(true, R"({"type":"resize","cols":100,"rows":30})", true, false);
  REQUIRE(std::holds_alternative<Resize>(r));
  CHECK(std::get<Resize>(r).rows == 30);
  CHECK(std::get<Resize>(r).cols == 100);
  CHECK(std::get<Resize>(parse_client_frame(true, R"({"type":"resize","cols":"80","rows":"24"})", true, false)).rows == 24);
  CHECK(std::get<Signal>(parse_client_frame(true, R"({"type":"signal","signal":"TERM"})", false, false)).sig == 15);
  for (auto junk : {"not json", "{}", "[1]", R"({"type":"resize","rows":0,"cols":5})", R"({"type":"signal","signal":"BOGUS"})",
                    R"({"type":"resize","rows":70000,"cols":5})", R"({"type":9})"})
    CHECK(std::holds_alternative<Ignore>(parse_client_frame(true, junk, true, false)));
  // /control: binary JSON resize/signal (JS), raw stdin (Go), 04 alone is EOF.
  CHECK(std::holds_alternative<Signal>(parse_client_frame(false, R"({"type":"signal","signal":"KILL"})", false, true)));
  CHECK(std::holds_alternative<Resize>(parse_client_frame(false, R"({"type":"resize","cols":1,"rows":1})", true, true)));
  CHECK(stdin_of(parse_client_frame(false, "raw"sv, false, true)) == "raw");
  CHECK(stdin_of(parse_client_frame(false, "\x04more"sv, false, true)) == "\x04more");
  CHECK(std::holds_alternative<StdinEof>(parse_client_frame(false, "\x04"sv, false, true)));
  CHECK(stdin_of(parse_client_frame(false, "{not json"sv, false, true)) == "{not json");
}

TEST_CASE("control envelopes: prefixed, bare, or data", "[control]") {
  auto e = parse_envelope(R"(control:{"type":"op.start","id":"7","op":"exec","args":{"cmd":["true"]}})");
  REQUIRE(e);
  CHECK(e->prefixed);
  CHECK(e->type == "op.start");
  CHECK(e->id == "7");
  CHECK(e->op == "exec");
  CHECK(e->args["cmd"][0] == "true");
  auto bare = parse_envelope(R"({"type":"release"})");
  REQUIRE(bare);
  CHECK(!bare->prefixed);
  CHECK(bare->type == "release");
  CHECK(parse_envelope(R"({"id":5,"type":"op.start","op":"fs.read","args":"path=%2Fx"})")->id == "5");
  // Not envelopes: the running operation's messages, or junk for it to ignore.
  CHECK(!parse_envelope(R"({"type":"resize","rows":1,"cols":1})"));
  CHECK(!parse_envelope("hello"));
  // A malformed prefixed envelope is one, with no type: ignored, not data.
  auto bad = parse_envelope("control:{oops");
  REQUIRE(bad);
  CHECK(bad->type.empty());
}

#include "api/ports.hpp"

TEST_CASE("/proc/net/tcp: listening sockets with their address, port and inode", "[ports]") {
  const char* v4 =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n"
      "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n"
      "   2: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 20 4 30 10 -1\n"
      "   3: garbage\n";
  auto l = parse_proc_net_tcp(v4, false);
  REQUIRE(l.size() == 2);  // the established one (01) and the garbage are not listeners
  CHECK(l[0].port == 3000);
  CHECK(l[0].address == "0.0.0.0");
  CHECK(l[0].inode == 4242);
  CHECK(l[1].port == 8080);
  CHECK(l[1].address == "127.0.0.1");
  const char* v6 =
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
      "tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 "
      "00:00000000 00000000     0        0 777 1 0 100 0 0 10 0\n"
      "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 "
      "00:00000000 00000000     0        0 778 1 0 100 0 0 10 0\n";
  auto l6 = parse_proc_net_tcp(v6, true);
  REQUIRE(l6.size() == 2);
  CHECK(l6[0].address == "::");
  CHECK(l6[1].address == "::1");
  CHECK(l6[1].port == 80);
  CHECK(parse_proc_net_tcp("", false).empty());
  CHECK(parse_proc_net_tcp("header only", false).empty());
}
