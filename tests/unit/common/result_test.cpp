// tests/unit/common/result_test.cpp — Result/Error: values, errors, context chains.
#include <catch2/catch.hpp>

#include "common/result.hpp"

using bp::Error;
using bp::Result;
using bp::Status;

namespace {
Result<int> parse_positive(int v) {
  if (v <= 0) return bp::make_error("must be positive", EINVAL);
  return v;
}
Status open_thing() { return bp::sys_error("open(/nope)", ENOENT); }
}  // namespace

TEST_CASE("a Result holds a value or an error", "[result]") {
  auto ok = parse_positive(3);
  REQUIRE(ok);
  CHECK(*ok == 3);
  auto bad = parse_positive(-1);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == EINVAL);
  CHECK(bad.error().what == "must be positive");
}

TEST_CASE("a default Status is ok", "[result]") {
  Status s;
  CHECK(s.ok());
  CHECK(bp::err_text(s).empty());
}

TEST_CASE("sys_error names the call and the errno text, and wrap adds context outermost first", "[result]") {
  Status s = open_thing();
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ENOENT);
  CHECK(s.error().what == "open(/nope): No such file or directory");
  Error e = std::move(s.error()).wrap("load modules").wrap("boot");
  CHECK(e.what == "boot: load modules: open(/nope): No such file or directory");
  CHECK(e.code == ENOENT);
}

TEST_CASE("a Result can carry a move-only value", "[result]") {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  REQUIRE(r);
  std::unique_ptr<int> p = std::move(r).value();
  CHECK(*p == 7);
}
