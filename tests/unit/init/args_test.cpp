// tests/unit/init/args_test.cpp — ballpoint-init's flags.
#include <catch2/catch.hpp>

#include "init/args.hpp"

using bp::init::Mode;
using bp::init::parse_args;

TEST_CASE("no arguments means VM mode", "[args]") {
  auto a = parse_args({"ballpoint-init"});
  REQUIRE(a);
  CHECK(a->mode == Mode::vm);
}

TEST_CASE("host mode flags become config overrides", "[args]") {
  auto a = parse_args({"b", "--host", "--state", "/tmp/s", "--listen", "127.0.0.1:0", "--log-level", "debug",
                       "--set", "hostname=x", "--config", "/etc/c.json"});
  REQUIRE(a);
  CHECK(a->mode == Mode::host);
  CHECK(a->state_dir == "/tmp/s");
  CHECK(a->config_path == "/etc/c.json");
  REQUIRE(a->overrides.size() == 3);
  CHECK(a->overrides[0] == std::pair<std::string, std::string>{"api.listen", "127.0.0.1:0"});
  CHECK(a->overrides[1] == std::pair<std::string, std::string>{"log.level", "debug"});
  CHECK(a->overrides[2] == std::pair<std::string, std::string>{"hostname", "x"});
}

TEST_CASE("bad command lines are refused with a reason", "[args]") {
  CHECK_FALSE(parse_args({"b", "--host"}));                        // no --state
  CHECK_FALSE(parse_args({"b", "--host", "--state"}));             // missing value
  CHECK_FALSE(parse_args({"b", "--host", "--state", "/s", "--bogus"}));
  CHECK_FALSE(parse_args({"b", "--host", "--state", "/s", "--set", "novalue"}));
  CHECK_FALSE(parse_args({"b", "--listen", "1.2.3.4:5"}));         // host flags without --host
  CHECK_FALSE(parse_args({"b", "--host-pid1", "--state", "rel"}));  // the re-exec needs an absolute path
  auto r = parse_args({"b", "--frobnicate"});
  REQUIRE_FALSE(r);
  CHECK(r.error().what.find("--frobnicate") != std::string::npos);
}
