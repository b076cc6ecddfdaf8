// tests/unit/api/router_test.cpp — auth first, path decoding, the sprite list, JSON errors.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agent/registry.hpp"
#include "api/auth.hpp"
#include "api/router.hpp"
#include "api/sessions.hpp"

using namespace bp::api;
using nlohmann::json;

namespace {
const std::string kToken = "0123456789abcdef0123456789abcdef";
Request req(std::string method, std::string target, std::string auth = "Bearer " + kToken) {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.authorization = std::move(auth);
  return r;
}
}  // namespace

TEST_CASE("paths split and percent-decode per segment", "[router]") {
  CHECK(*split_path("/v1/sprites") == std::vector<std::string>{"v1", "sprites"});
  CHECK(*split_path("/v1/sprites/") == std::vector<std::string>{"v1", "sprites"});
  CHECK(*split_path("/v1/sprites/my%2Dbox/exec?cmd=a%2Fb") ==
        std::vector<std::string>{"v1", "sprites", "my-box", "exec"});
  CHECK_FALSE(split_path("/v1/sprites/a%2Fb"));  // an encoded '/' never becomes a separator
  CHECK_FALSE(split_path("/v1/sprites/a%00"));
  CHECK_FALSE(split_path("/v1/%zz"));
  CHECK_FALSE(split_path("/v1/%2"));
  CHECK_FALSE(split_path("v1/sprites"));
}

TEST_CASE("sprite names are DNS labels", "[router]") {
  CHECK(valid_sprite_name("my-sprite-1"));
  CHECK_FALSE(valid_sprite_name(""));
  CHECK_FALSE(valid_sprite_name("-a"));
  CHECK_FALSE(valid_sprite_name("a-"));
  CHECK_FALSE(valid_sprite_name("Upper"));
  CHECK_FALSE(valid_sprite_name(std::string(64, 'a')));
  CHECK_FALSE(valid_sprite_name(".."));
}

TEST_CASE("tokens: Bearer or Basic bearer:TOKEN, compared whole", "[auth]") {
  CHECK(authorized("Bearer " + kToken, kToken));
  CHECK(authorized("bearer " + kToken, kToken));
  CHECK_FALSE(authorized("Bearer " + kToken + "x", kToken));
  CHECK_FALSE(authorized("Bearer " + kToken.substr(1), kToken));
  CHECK_FALSE(authorized("Bearer ", kToken));
  CHECK_FALSE(authorized("", kToken));
  CHECK_FALSE(authorized("Bearer ", ""));
  // base64("bearer:0123456789abcdef0123456789abcdef")
  CHECK(authorized("Basic YmVhcmVyOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm", kToken));
  CHECK_FALSE(authorized("Basic !!!", kToken));
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "ab"));
}

TEST_CASE("the router answers 401 before anything else", "[router]") {
  bp::agent::Registry reg;
  Router r({kToken, "local", "0.1.0", "http://127.0.0.1:1"}, reg, nullptr);
  for (const char* target : {"/v1/sprites", "/nope", "/v1/sprites/x/exec", "/v1/%zz"}) {
    INFO(target);
    auto res = r.handle(req("GET", target, "Bearer wrong"));
    CHECK(res.status == 401);
    auto j = json::parse(res.body);
    CHECK(j["error"] == "unauthorized");
    CHECK(j["message"].is_string());
  }
}

TEST_CASE("GET /v1/sprites lists the registry with both counter shapes", "[router]") {
  bp::agent::Registry reg;
  Router r({kToken, "local", "0.1.0", "http://127.0.0.1:1"}, reg, nullptr);
  auto empty = r.handle(req("GET", "/v1/sprites"));
  CHECK(empty.status == 200);
  auto j = json::parse(empty.body);
  CHECK(j["sprites"] == json::array());
  CHECK(j["has_more"] == false);
  CHECK(j["org"]["running"] == 0);

  REQUIRE(reg.add({"id-1", "box", "running", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}));
  CHECK_FALSE(reg.add({"id-2", "box", "cold", "", ""}));  // names are unique
  j = json::parse(r.handle(req("GET", "/v1/sprites?max_results=50")).body);
  REQUIRE(j["sprites"].size() == 1);
  CHECK(j["sprites"][0]["name"] == "box");
  CHECK(j["sprites"][0]["id"] == "id-1");
  CHECK(j["running"] == 1);
  CHECK(j["org"]["running"] == 1);
  auto one = r.handle(req("GET", "/v1/sprites/box"));
  CHECK(one.status == 200);
  CHECK(json::parse(one.body)["status"] == "running");
}

TEST_CASE("unknown paths, names and methods get JSON errors", "[router]") {
  bp::agent::Registry reg;
  Router r({kToken, "local", "0.1.0", "http://127.0.0.1:1"}, reg, nullptr);
  auto nf = r.handle(req("GET", "/v1/nothing"));
  CHECK(nf.status == 404);
  CHECK(json::parse(nf.body)["error"] == "not_found");
  auto ns = r.handle(req("GET", "/v1/sprites/ghost"));
  CHECK(ns.status == 404);
  CHECK(json::parse(ns.body)["message"] == "sprite 'ghost' not found");
  CHECK(r.handle(req("GET", "/v1/sprites/Bad_Name")).status == 400);
  CHECK(r.handle(req("GET", "/v1/sprites/..%2F..")).status == 400);
  auto m = r.handle(req("DELETE", "/v1/sprites"));
  CHECK(m.status == 405);
  REQUIRE(m.headers.size() == 1);
  CHECK(m.headers[0].first == "Allow");
  auto post = r.handle(req("POST", "/v1/sprites"));
  CHECK(post.status == 501);
  CHECK(json::parse(post.body)["error"] == "not_supported");
}

namespace {
// Creates into the registry, as the real SpriteManager does; fails on request.
struct FakeControl : bp::agent::SpriteControl {
  bp::agent::Registry& reg;
  int fail_errno = 0;
  explicit FakeControl(bp::agent::Registry& r) : reg(r) {}
  bp::Result<bp::agent::SpriteRecord> create(const std::string& name) override {
    if (fail_errno) return bp::make_error("failed", fail_errno);
    bp::agent::SpriteRecord rec{"uuid-" + name, name, "running", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"};
    reg.add(rec);
    return rec;
  }
  bp::Status destroy(const std::string& name) override {
    if (!reg.remove(name)) return bp::make_error("no", ENOENT);
    return {};
  }
  bp::Result<bp::agent::SpriteRecord> update(const std::string& name,
                                             const std::optional<std::vector<std::string>>& labels,
                                             const std::optional<std::string>& auth) override {
    auto rec = reg.get(name);
    if (!rec) return bp::make_error("no", ENOENT);
    if (labels) rec->labels = *labels;
    if (auth) rec->url_auth = *auth;
    reg.replace(*rec);
    return *rec;
  }
  bp::Status restart(const std::string&) override {
    ++restarts;
    return {};
  }
  bp::Result<std::int64_t> check(const std::string&) override {
    if (fail_errno) return bp::make_error("container gone", fail_errno);
    return std::int64_t{7};
  }
  bool single_sprite() const override { return single; }
  std::optional<std::uint64_t> disk_used(const std::string& name) override {
    return name == "t1" ? std::optional<std::uint64_t>(12288) : std::nullopt;
  }
  // Checkpoints: v0 exists; the comment of the last create is kept.
  bp::Result<bp::agent::CheckpointRecord> checkpoint(const std::string&, const std::string& comment,
                                                     const Progress& progress) override {
    progress("Creating checkpoint...");
    if (fail_errno) return bp::make_error("disk said no", fail_errno);
    last_comment = comment;
    return bp::agent::CheckpointRecord{"v1", "2026-01-01T00:00:00Z", comment, "v0", {"v0"}};
  }
  bp::Result<bp::agent::CheckpointRecord> restore(const std::string&, const std::string& id,
                                                  const Progress&) override {
    restored = id;
    return bp::agent::CheckpointRecord{"v2", "2026-01-01T00:00:00Z", "before restoring " + id, "v0", {"v0"}};
  }
  bp::Result<std::vector<bp::agent::CheckpointRecord>> checkpoints(const std::string&) override {
    return std::vector<bp::agent::CheckpointRecord>{{"Current", "2026-01-01T00:00:00Z", "", "v0", {"v0"}},
                                                    {"v0", "2026-01-01T00:00:00Z", "first", "", {}}};
  }
  bp::Status delete_checkpoint(const std::string&, const std::string& id) override {
    if (id == "Current") return bp::make_error("current", EBUSY);
    if (id != "v0") return bp::make_error("no", ENOENT);
    return {};
  }
  int restarts = 0;
  bool single = false;
  std::string last_comment, restored;
};
}  // namespace

TEST_CASE("create, get and delete a sprite through the control", "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  Router r({kToken, "local", "0.1.0", "http://127.0.0.1:1"}, reg, &ctl);
  auto post = req("POST", "/v1/sprites");
  post.body = R"({"name":"t1","config":{"ram_mb":512}})";
  auto routed = r.route(post);
  REQUIRE(routed.blocking);  // the work runs off the event loop
  auto created = routed.blocking();
  CHECK(created.status == 201);
  auto j = json::parse(created.body);
  CHECK(j["name"] == "t1");
  CHECK(j["id"] == "uuid-t1");
  CHECK(j["url_settings"]["auth"] == "sprite");
  CHECK(r.handle(post).status == 409);  // the name is taken
  CHECK(r.handle(req("GET", "/v1/sprites/t%2D1")).status == 404);
  auto got = r.handle(req("GET", "/v1/sprites/t1"));
  CHECK(got.status == 200);
  CHECK(json::parse(got.body)["storage"]["used_bytes"] == 12288);  // what its disk holds
  CHECK(r.handle(req("DELETE", "/v1/sprites/t1")).status == 204);
  CHECK(r.handle(req("GET", "/v1/sprites/t1")).status == 404);
  CHECK(r.handle(req("DELETE", "/v1/sprites/t1")).status == 404);
}

TEST_CASE("bad create requests change nothing, and control failures map to statuses", "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  Router r({kToken, "local", "0.1.0", ""}, reg, &ctl);
  for (const char* body : {"", "{", "[]", R"({"name":5})", R"({"nam":"x"})"}) {
    auto p = req("POST", "/v1/sprites");
    p.body = body;
    INFO(body);
    auto res = r.handle(p);
    CHECK(res.status == 400);
    CHECK(json::parse(res.body)["error"] == "bad_request");
  }
  auto p = req("POST", "/v1/sprites");
  p.body = R"({"name":"Bad_Name"})";
  CHECK(r.handle(p).status == 400);
  CHECK(reg.size() == 0);
  p.body = R"({"name":"ok"})";
  ctl.fail_errno = EAGAIN;
  CHECK(r.handle(p).status == 429);
  ctl.fail_errno = EUNATCH;
  CHECK(r.handle(p).status == 503);
  ctl.fail_errno = EIO;
  CHECK(r.handle(p).status == 500);
  CHECK(reg.size() == 0);
}

TEST_CASE("restart and check go through the control, and a single-sprite machine refuses create and delete",
          "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  Router r({kToken, "local", "0.1.0", ""}, reg, &ctl);
  auto post = req("POST", "/v1/sprites");
  post.body = R"({"name":"box"})";
  REQUIRE(r.handle(post).status == 201);
  auto restarted = r.handle(req("POST", "/v1/sprites/box/restart"));
  CHECK(restarted.status == 200);
  CHECK(json::parse(restarted.body)["sprite_name"] == "box");
  CHECK(ctl.restarts == 1);
  CHECK(r.handle(req("GET", "/v1/sprites/box/restart")).status == 405);
  auto checked = json::parse(r.handle(req("GET", "/v1/sprites/box/check")).body);
  CHECK(checked["status"] == "healthy");
  CHECK(checked["elapsed"] == 7);
  CHECK(checked["reason"].is_null());
  ctl.fail_errno = EIO;
  checked = json::parse(r.handle(req("GET", "/v1/sprites/box/check")).body);
  CHECK(checked["status"] == "unhealthy");
  CHECK(checked["reason"] == "container gone");
  ctl.fail_errno = 0;
  ctl.single = true;
  post.body = R"({"name":"other"})";
  CHECK(r.handle(post).status == 501);
  CHECK(r.handle(req("DELETE", "/v1/sprites/box")).status == 501);
  CHECK(r.handle(req("GET", "/v1/sprites/box")).status == 200);
}

TEST_CASE("exec sessions: listed while running, kill of unknown is 404 and of exited is 410", "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  bp::api::SessionTable sessions;
  Router r({kToken, "local", "0.1.0", ""}, reg, &ctl, &sessions);
  auto post = req("POST", "/v1/sprites");
  post.body = R"({"name":"box"})";
  REQUIRE(r.handle(post).status == 201);
  auto empty = json::parse(r.handle(req("GET", "/v1/sprites/box/exec")).body);
  CHECK(empty["sessions"] == json::array());
  CHECK(empty["count"] == 0);
  std::uint64_t id = sessions.next_id();
  sessions.add({id, "box", "sleep 5", "/home/sprite", 1767609000, 0, 0, false, 999999, false, -1});
  auto list = json::parse(r.handle(req("GET", "/v1/sprites/box/exec")).body);
  REQUIRE(list["count"] == 1);
  CHECK(list["sessions"][0]["id"] == std::to_string(id));
  CHECK(list["sessions"][0]["created"] == "2026-01-05T10:30:00Z");
  CHECK(list["sessions"][0]["command"] == "sleep 5");
  CHECK(r.handle(req("GET", "/v1/sprites/box/exec?cmd=ls")).status == 400);
  auto kill = [&](const std::string& target, std::string body = "") {
    auto q = req("POST", target);
    q.body = std::move(body);
    CHECK(Router::is_kill(q));
    return r.kill_request(q);
  };
  auto status = [](const std::variant<bp::api::Response, bp::api::KillRequest>& v) {
    return std::holds_alternative<bp::api::KillRequest>(v) ? 200 : std::get<bp::api::Response>(v).status;
  };
  std::string base = "/v1/sprites/box/exec/" + std::to_string(id);
  CHECK(status(kill("/v1/sprites/box/exec/777/kill")) == 404);
  CHECK(status(kill("/v1/sprites/box/exec/abc/kill")) == 404);
  CHECK(status(kill("/v1/sprites/nope/exec/1/kill")) == 404);
  CHECK(status(kill(base + "/kill?signal=BOGUS")) == 400);
  CHECK(status(kill(base + "/kill?signal=40")) == 400);
  CHECK(status(kill(base + "/kill?timeout=soon")) == 400);
  auto bad_token = req("POST", base + "/kill");
  bad_token.authorization = "Bearer nope";
  CHECK(std::get<bp::api::Response>(r.kill_request(bad_token)).status == 401);
  // The defaults, the query (JS, Go) and the JSON body (Python).
  auto k = std::get<bp::api::KillRequest>(kill(base + "/kill"));
  CHECK(k.id == id);
  CHECK(k.signal == SIGTERM);
  CHECK(k.timeout_ms == 10000);
  k = std::get<bp::api::KillRequest>(kill(base + "/kill?signal=KILL&timeout=0s"));
  CHECK(k.signal == SIGKILL);
  CHECK(k.timeout_ms == 0);
  k = std::get<bp::api::KillRequest>(kill(base + "/kill", R"({"signal":"SIGINT","timeout":3})"));
  CHECK(k.signal == SIGINT);
  CHECK(k.timeout_ms == 3000);
  CHECK(r.handle(req("GET", base + "/kill")).status == 405);
  sessions.exited(id, 143);
  CHECK(status(kill(base + "/kill")) == 410);
  CHECK(json::parse(r.handle(req("GET", "/v1/sprites/box/exec")).body)["count"] == 0);
}

TEST_CASE("WebSocket routes: exec, attach by path or by id, control", "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  bp::api::SessionTable sessions;
  Router r({kToken, "local", "0.1.0", ""}, reg, &ctl, &sessions);
  auto post = req("POST", "/v1/sprites");
  post.body = R"({"name":"box"})";
  REQUIRE(r.handle(post).status == 201);
  using bp::api::WsRoute;
  auto route = [&](const std::string& target) { return r.route_upgrade(req("GET", target)); };
  auto status = [](const std::variant<bp::api::Response, WsRoute>& v) {
    return std::holds_alternative<WsRoute>(v) ? 101 : std::get<bp::api::Response>(v).status;
  };
  CHECK(std::get<WsRoute>(route("/v1/sprites/box/exec?cmd=ls")).kind == WsRoute::exec);
  CHECK(std::get<WsRoute>(route("/v1/sprites/box/control")).kind == WsRoute::control);
  // Unknown sessions are refused before the upgrade (API.md 2.2), in both forms.
  CHECK(status(route("/v1/sprites/box/exec/5")) == 404);
  CHECK(status(route("/v1/sprites/box/exec?id=5")) == 404);
  CHECK(status(route("/v1/sprites/box/exec/x1")) == 404);
  CHECK(status(route("/v1/sprites/box/exec/5/more")) == 404);
  CHECK(status(route("/v1/sprites/box/nothing")) == 404);
  CHECK(status(route("/v1/sprites/box")) == 404);  // found by tests/fuzz: no segment after the name
  CHECK(status(route("/v1/sprites/box/")) == 404);
  // A session without a live object (an HTTP exec) cannot be attached to.
  std::uint64_t id = sessions.next_id();
  sessions.add({id, "box", "sleep 5", "/home/sprite", 1767609000, 0, 0, false, 999999, false, -1});
  CHECK(status(route("/v1/sprites/box/exec/" + std::to_string(id))) == 404);
  auto no_token = req("GET", "/v1/sprites/box/control");
  no_token.authorization.clear();
  CHECK(std::get<bp::api::Response>(r.route_upgrade(no_token)).status == 401);
}

TEST_CASE("PUT updates labels and url_settings, and refuses bad bodies", "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  Router r({kToken, "local", "0.1.0", ""}, reg, &ctl);
  auto post = req("POST", "/v1/sprites");
  post.body = R"({"name":"box"})";
  REQUIRE(r.handle(post).status == 201);
  auto put = req("PUT", "/v1/sprites/box");
  put.body = R"({"url_settings":{"auth":"public"},"labels":["a","b"]})";
  auto res = r.handle(put);
  REQUIRE(res.status == 200);
  auto j = json::parse(res.body);
  CHECK(j["url_settings"]["auth"] == "public");
  CHECK(j["labels"] == json::array({"a", "b"}));
  put.body = R"({"clear_labels":true})";
  CHECK(json::parse(r.handle(put).body)["labels"] == json::array());
  for (const char* body : {"", "[]", "{}", R"({"labels":"x"})", R"({"labels":[1]})",
                           R"({"url_settings":{"auth":"everyone"}})", R"({"url_settings":5})"}) {
    INFO(body);
    put.body = body;
    CHECK(r.handle(put).status == 400);
  }
  CHECK(json::parse(r.handle(req("GET", "/v1/sprites/box")).body)["url_settings"]["auth"] == "public");
  auto ghost = req("PUT", "/v1/sprites/ghost");
  ghost.body = R"({"labels":[]})";
  CHECK(r.handle(ghost).status == 404);
}

TEST_CASE("the sprite list pages in name order; the organization counts everything", "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  Router r({kToken, "local", "0.1.0", "", 10, {512, 2}}, reg, &ctl);
  for (const char* n : {"b2", "a1", "b1", "c1"}) {
    auto post = req("POST", "/v1/sprites");
    post.body = std::string(R"({"name":")") + n + "\"}";
    REQUIRE(r.handle(post).status == 201);
  }
  auto page = json::parse(r.handle(req("GET", "/v1/sprites?max_results=2")).body);
  CHECK(page["sprites"].size() == 2);
  CHECK(page["sprites"][0]["config"] == json::parse(R"({"region":"local","ram_mb":512,"cpus":2})"));
  CHECK(page["sprites"][0]["name"] == "a1");
  CHECK(page["has_more"] == true);
  auto token = page["next_continuation_token"].get<std::string>();
  auto next = json::parse(r.handle(req("GET", "/v1/sprites?max_results=2&continuation_token=" + token)).body);
  CHECK(next["sprites"][0]["name"] == "b2");
  CHECK(next["sprites"][1]["name"] == "c1");
  CHECK(next["has_more"] == false);
  CHECK(next["next_continuation_token"].is_null());
  auto pre = json::parse(r.handle(req("GET", "/v1/sprites?prefix=b&max_results=0")).body);  // clamped to 1
  CHECK(pre["sprites"].size() == 1);
  CHECK(pre["running"] == 4);  // counters over the whole organization
  CHECK(pre["running_limit"] == 10);
  CHECK(r.handle(req("GET", "/v1/sprites?max_results=lots")).status == 400);
  auto org = json::parse(r.handle(req("GET", "/v1/organization")).body);
  CHECK(org["organization"]["active_sprites"].size() == 4);
  CHECK(org["organization"]["max_sprites"] == 10);
  CHECK(r.handle(req("POST", "/v1/organizations/local/tokens")).status == 501);
  CHECK(r.handle(req("GET", "/v1/organizations/local/tokens")).status == 405);
  auto watch = req("GET", "/v1/sprites?prefix=a");
  watch.accept = "application/x-ndjson";
  CHECK(Router::is_watch(watch));
  CHECK(!r.refuse_watch(watch));
  watch.authorization = "Bearer wrong";
  CHECK(r.refuse_watch(watch)->status == 401);
  CHECK(!Router::is_watch(req("GET", "/v1/sprites")));
}

TEST_CASE("checkpoint routes: NDJSON streams, JSON arrays, 404 before a restore, bad bodies", "[router]") {
  bp::agent::Registry reg;
  FakeControl ctl(reg);
  Router r({kToken, "local", "0.1.0", ""}, reg, &ctl);
  auto post = req("POST", "/v1/sprites");
  post.body = R"({"name":"box"})";
  REQUIRE(r.handle(post).status == 201);

  auto cp = req("POST", "/v1/sprites/box/checkpoint");
  cp.body = R"({"comment":"before migration"})";
  auto created = r.handle(cp);
  CHECK(created.status == 200);
  CHECK(created.content_type == "application/x-ndjson");
  CHECK(ctl.last_comment == "before migration");
  auto last = json::parse(created.body.substr(created.body.rfind('\n', created.body.size() - 2) + 1));
  CHECK(last["type"] == "complete");
  CHECK(last["data"] == "Checkpoint v1 created");
  cp.body = "";  // no body: no comment
  CHECK(r.handle(cp).status == 200);
  for (const char* bad : {"[1]", "{\"comment\":5}", "{nope"}) {
    cp.body = bad;
    CHECK(r.handle(cp).status == 400);
  }
  ctl.fail_errno = EIO;
  cp.body = "{}";
  auto failed = r.handle(cp);
  CHECK(failed.status == 200);  // the stream says it
  CHECK(failed.body.find(R"("type":"error")") != std::string::npos);
  CHECK(failed.body.find("Checkpoint failed: disk said no") != std::string::npos);
  ctl.fail_errno = 0;
  CHECK(r.handle(req("GET", "/v1/sprites/box/checkpoint")).status == 405);

  auto list = r.handle(req("GET", "/v1/sprites/box/checkpoints"));
  CHECK(list.status == 200);
  auto arr = json::parse(list.body);
  REQUIRE(arr.is_array());
  CHECK(arr[0]["id"] == "Current");
  CHECK(arr[1]["comment"] == "first");
  CHECK(arr[1]["is_auto"] == false);
  CHECK(arr[1]["health"] == "");
  CHECK(json::parse(r.handle(req("GET", "/v1/sprites/box/checkpoints?history=v0")).body).size() == 1);
  CHECK(json::parse(r.handle(req("GET", "/v1/sprites/box/checkpoints?history=zz")).body) == json::array());
  CHECK(json::parse(r.handle(req("GET", "/v1/sprites/box/checkpoints/v0")).body)["id"] == "v0");
  CHECK(r.handle(req("GET", "/v1/sprites/box/checkpoints/v9")).status == 404);

  CHECK(r.handle(req("POST", "/v1/sprites/box/checkpoints/v9/restore")).status == 404);
  CHECK(ctl.restored.empty());
  auto restored = r.handle(req("POST", "/v1/sprites/box/checkpoints/v0/restore"));
  CHECK(restored.status == 200);
  CHECK(ctl.restored == "v0");
  CHECK(restored.body.find(R"("data":"Restoring from checkpoint v0...")") != std::string::npos);
  CHECK(restored.body.find(R"("data":"Restore from v0 complete")") != std::string::npos);

  CHECK(r.handle(req("DELETE", "/v1/sprites/box/checkpoints/v0")).status == 204);
  CHECK(r.handle(req("DELETE", "/v1/sprites/box/checkpoints/v7")).status == 404);
  CHECK(r.handle(req("DELETE", "/v1/sprites/box/checkpoints/Current")).status == 409);
  CHECK(r.handle(req("GET", "/v1/sprites/box/checkpoints/v0/nope")).status == 404);
  CHECK(r.handle(req("GET", "/v1/sprites/nope/checkpoints")).status == 404);
}
