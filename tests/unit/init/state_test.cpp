// tests/unit/init/state_test.cpp — the host-mode token and endpoint files.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "common/sys.hpp"
#include "init/state.hpp"

namespace fs = std::filesystem;

namespace {
std::string temp_dir() {
  std::string t = (fs::temp_directory_path() / "bp-state-XXXXXX").string();
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  return t;
}
int mode_of(const std::string& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 0777);
}
}  // namespace

TEST_CASE("the token is made once, private, and read back unchanged", "[state]") {
  std::string dir = temp_dir();
  auto t1 = bp::init::load_or_create_token(dir);
  REQUIRE(t1);
  CHECK(t1->size() == 64);
  CHECK(mode_of(dir + "/token") == 0600);
  auto t2 = bp::init::load_or_create_token(dir);
  REQUIRE(t2);
  CHECK(*t2 == *t1);
  CHECK(*bp::init::random_token() != *t1);
  fs::remove_all(dir);
}

TEST_CASE("a token others can read, or a short one, is refused", "[state]") {
  std::string dir = temp_dir();
  REQUIRE(bp::write_file(dir + "/token", "0123456789abcdef0123\n", 0644));
  ::chmod((dir + "/token").c_str(), 0644);
  auto r = bp::init::load_or_create_token(dir);
  REQUIRE_FALSE(r);
  CHECK(r.error().what.find("readable by others") != std::string::npos);
  ::chmod((dir + "/token").c_str(), 0600);
  CHECK(bp::init::load_or_create_token(dir));
  REQUIRE(bp::write_file(dir + "/token", "short", 0600));
  CHECK_FALSE(bp::init::load_or_create_token(dir));
  fs::remove_all(dir);
}

TEST_CASE("endpoint.json holds url and token, mode 0600", "[state]") {
  std::string dir = temp_dir();
  REQUIRE(bp::init::write_endpoint(dir, "http://127.0.0.1:7777", "tok"));
  auto j = nlohmann::json::parse(*bp::read_file(dir + "/endpoint.json"));
  CHECK(j["url"] == "http://127.0.0.1:7777");
  CHECK(j["token"] == "tok");
  CHECK(mode_of(dir + "/endpoint.json") == 0600);
  CHECK_FALSE(fs::exists(dir + "/endpoint.json.tmp"));
  fs::remove_all(dir);
}

TEST_CASE("the state directory is made with its parents", "[state]") {
  std::string dir = temp_dir();
  REQUIRE(bp::init::make_state_dir(dir + "/a/b/state"));
  CHECK(mode_of(dir + "/a/b/state") == 0700);
  REQUIRE(bp::init::make_state_dir(dir + "/a/b/state"));  // again: fine
  CHECK_FALSE(bp::init::make_state_dir(""));
  fs::remove_all(dir);
}
