// tests/unit/init/config_test.cpp — config.json and overrides: defaults, binding, errors that name the key.
#include <catch2/catch.hpp>

#include "init/config.hpp"

using bp::init::parse_config;

TEST_CASE("no file and no overrides gives the defaults", "[config]") {
  auto c = parse_config("", {});
  REQUIRE(c);
  CHECK(c->hostname == "sprite");
  CHECK(c->api.listen.host == "0.0.0.0");
  CHECK(c->api.listen.port == 7777);
  CHECK(c->modules.empty());
  CHECK(c->log_level == bp::Level::info);
}

TEST_CASE("nested JSON binds by dotted key", "[config]") {
  auto c = parse_config(R"({"hostname":"box","api":{"listen":"127.0.0.1:9000","token":"0123456789abcdef"},
                            "modules":["fuse","virtio_net"],"net":{"interface":"eth0","address":"10.0.2.15/24",
                            "gateway":"10.0.2.2"},"log":{"level":"debug"},"shutdown":{"timeout_ms":500}})",
                        {});
  REQUIRE(c);
  CHECK(c->hostname == "box");
  CHECK(c->api.listen.host == "127.0.0.1");
  CHECK(c->api.listen.port == 9000);
  CHECK(c->api.token == "0123456789abcdef");
  CHECK(c->modules == std::vector<std::string>{"fuse", "virtio_net"});
  CHECK(c->net.address == "10.0.2.15/24");
  CHECK(c->log_level == bp::Level::debug);
  CHECK(c->shutdown_timeout_ms == 500);
}

TEST_CASE("overrides win over the file, in order, with string values", "[config]") {
  auto c = parse_config(R"({"hostname":"box","modules":["a"]})",
                        {{"hostname", "first"}, {"hostname", "second"}, {"modules", "fuse,loop"},
                         {"shutdown.timeout_ms", "250"}, {"api.listen", "[::1]:8080"},
                         {"sprites.no_new_privs", "true"}, {"limits.pids_max", "512"},
                         {"limits.cpu_max", "50000 100000"}, {"base_image", "/var/lib/img"},
                         {"limits.memory_swap_max", "0"}});
  REQUIRE(c);
  CHECK(c->hostname == "second");
  CHECK(c->modules == std::vector<std::string>{"fuse", "loop"});
  CHECK(c->shutdown_timeout_ms == 250);
  CHECK(c->api.listen.host == "::1");
  CHECK(c->api.listen.port == 8080);
  CHECK(c->no_new_privs);
  CHECK(c->limits.pids_max == 512u);
  CHECK_FALSE(c->limits.memory_max);
  CHECK(c->limits.cpu_max == "50000 100000");
  CHECK(c->base_image == "/var/lib/img");
  REQUIRE(c->limits.memory_swap_max);
  CHECK(*c->limits.memory_swap_max == 0);  // 0 means no swap, not "no limit"
}

TEST_CASE("bad config gives an error naming the key", "[config]") {
  struct Case {
    std::string json;
    bp::init::Overrides ov;
    std::string key;
  };
  std::vector<Case> cases = {
      {R"({"api":{"listen":"not-an-address"}})", {}, "config: api.listen: "},
      {"", {{"api.listen", "127.0.0.1:99999"}}, "config: api.listen: "},
      {"", {{"api.listen", "300.1.1.1:80"}}, "config: api.listen: "},
      {R"({"hostname":5})", {}, "config: hostname: must be a string"},
      {"", {{"hostname", "bad_name!"}}, "config: hostname: "},
      {"", {{"shutdown.timeout_ms", "-3"}}, "config: shutdown.timeout_ms: "},
      {"", {{"shutdown.timeout_ms", "12abc"}}, "config: shutdown.timeout_ms: "},
      {R"({"modules":[1,2]})", {}, "config: modules: "},
      {"", {{"modules", "fu/se"}}, "config: modules: "},
      {"", {{"log.level", "loud"}}, "config: log.level: "},
      {"", {{"net.address", "10.0.2.15"}}, "config: net.address: "},
      {"", {{"net.address", "10.0.2.15/40"}}, "config: net.address: "},
      {"", {{"net.gateway", "gw"}}, "config: net.gateway: "},
      {"", {{"api.token", "short"}}, "config: api.token: "},
      {R"({"apii":{"listen":"1.2.3.4:5"}})", {}, "config: apii.listen: unknown key"},
      {"", {{"nonsense", "1"}}, "config: nonsense: unknown key"},
      {"", {{"sprites.no_new_privs", "yes"}}, "config: sprites.no_new_privs: "},
      {"", {{"limits.cpu_max", "fast"}}, "config: limits.cpu_max: "},
      {"", {{"base_image", "relative/dir"}}, "config: base_image: "},
      {"", {{"org", "Not A Slug"}}, "config: org: "},
      {"", {{"api.max_sessions", "0"}}, "config: api.max_sessions: "},
      {"", {{"api.tls_cert", "/c.pem"}}, "config: api.tls_cert and api.tls_key go together"},
      {"", {{"api.tls_key", "/k.pem"}}, "config: api.tls_cert and api.tls_key go together"},
  };
  for (const auto& c : cases) {
    INFO(c.json << " / " << (c.ov.empty() ? "" : c.ov[0].first + "=" + c.ov[0].second));
    auto r = parse_config(c.json, c.ov);
    REQUIRE_FALSE(r);
    CHECK(r.error().what.rfind(c.key, 0) == 0);
  }
}

TEST_CASE("malformed JSON and non-objects are refused", "[config]") {
  for (const char* text : {"{", "[1,2]", "\"x\"", "{\"a\":}", "nul"}) {
    INFO(text);
    auto r = parse_config(text, {});
    REQUIRE_FALSE(r);
    CHECK(r.error().what.rfind("config: ", 0) == 0);
  }
}

TEST_CASE("listen addresses", "[config]") {
  CHECK(bp::init::parse_listen("127.0.0.1:0"));
  CHECK(bp::init::parse_listen("[::]:7777"));
  CHECK_FALSE(bp::init::parse_listen("127.0.0.1"));
  CHECK_FALSE(bp::init::parse_listen("localhost:80"));
  CHECK_FALSE(bp::init::parse_listen("127.0.0.1:"));
  CHECK_FALSE(bp::init::parse_listen("[::1:80"));
}
