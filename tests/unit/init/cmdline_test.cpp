// tests/unit/init/cmdline_test.cpp — kernel command-line words and ballpoint.KEY=VALUE overrides.
#include <catch2/catch.hpp>

#include "init/cmdline.hpp"

using bp::init::ballpoint_overrides;
using bp::init::split_cmdline;

TEST_CASE("words split on whitespace, and quotes group and are removed", "[cmdline]") {
  auto w = split_cmdline("console=ttyS0  quiet\tfoo=\"a b\"  \"x y\"=z\n");
  CHECK(w == std::vector<std::string>{"console=ttyS0", "quiet", "foo=a b", "x y=z"});
}

TEST_CASE("words after -- belong to init, not to the kernel", "[cmdline]") {
  auto w = split_cmdline("a b -- ballpoint.hostname=x");
  CHECK(w == std::vector<std::string>{"a", "b"});
}

TEST_CASE("ballpoint.KEY=VALUE words become overrides in order", "[cmdline]") {
  auto o = ballpoint_overrides(
      "BOOT_IMAGE=/vmlinuz console=ttyS0 ballpoint.api.listen=0.0.0.0:7777 ballpoint.modules=fuse,loop "
      "ballpoint.hostname=\"my box\" ballpointx=1 ballpoint. ballpoint.flag ballpoint.api.listen=1.2.3.4:5\n");
  REQUIRE(o.size() == 5);
  CHECK(o[0] == std::pair<std::string, std::string>{"api.listen", "0.0.0.0:7777"});
  CHECK(o[1] == std::pair<std::string, std::string>{"modules", "fuse,loop"});
  CHECK(o[2] == std::pair<std::string, std::string>{"hostname", "my box"});
  CHECK(o[3] == std::pair<std::string, std::string>{"flag", ""});
  CHECK(o[4] == std::pair<std::string, std::string>{"api.listen", "1.2.3.4:5"});
}

TEST_CASE("an empty or blank command line has no words", "[cmdline]") {
  CHECK(split_cmdline("").empty());
  CHECK(split_cmdline("   \n").empty());
  CHECK(ballpoint_overrides("").empty());
}
