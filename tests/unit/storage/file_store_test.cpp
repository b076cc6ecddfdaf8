// tests/unit/storage/file_store_test.cpp — file:// has the object-store semantics the
// engine relies on: atomic whole objects, create-if-absent, compare-and-swap, ranges.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "storage/object_store.hpp"

using namespace bp::storage;

namespace {
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/bp-store-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};
}  // namespace

TEST_CASE("file store: put, get, ranges, head, list, remove", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto& s = **store;
  auto etag = s.put("data/seg-1", "hello world");
  REQUIRE(etag);
  CHECK(*s.get("data/seg-1") == "hello world");
  CHECK(*s.get("data/seg-1", 6) == "world");
  CHECK(*s.get("data/seg-1", 0, 5) == "hello");
  CHECK(*s.get("data/seg-1", 6, 100) == "world");  // fewer at the end
  CHECK(s.get("data/seg-1", 12).error().code == ERANGE);
  CHECK(s.get("data/nope").error().code == ENOENT);
  CHECK(s.get("data").error().code == ENOENT);  // a "directory" is no object
  auto info = s.head("data/seg-1");
  REQUIRE(info);
  CHECK(info->size == 11);
  CHECK(info->etag == *etag);
  REQUIRE(s.put("data/seg-2", ""));
  CHECK(s.get("data/seg-2")->empty());
  REQUIRE(s.put("meta/lease", "x"));
  auto all = s.list("data/");
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].key == "data/seg-1");
  CHECK((*all)[1].key == "data/seg-2");
  CHECK(s.list("")->size() == 3);  // the store's own files are not objects
  REQUIRE(s.remove({"data/seg-1", "data/never-was"}));
  CHECK(s.head("data/seg-1").error().code == ENOENT);
  // Keys that are not keys change nothing.
  for (const char* bad : {"", "/abs", "a//b", "a/../b", "..", "a/./b", "a/"}) {
    INFO(bad);
    CHECK(s.put(bad, "x").error().code == EINVAL);
  }
  CHECK(!open_file_store("file://relative/dir"));
  CHECK(!open_file_store("s3://x/y"));
}

TEST_CASE("file store: create-if-absent and compare-and-swap", "[storage]") {
  TempDir d;
  auto s = std::move(*open_file_store("file://" + d.path));
  auto first = s->put("lease", "epoch 1", PutIf::none_match());
  REQUIRE(first);
  auto again = s->put("lease", "epoch 2", PutIf::none_match());
  REQUIRE(!again);
  CHECK(again.error().code == EEXIST);
  CHECK(*s->get("lease") == "epoch 1");  // refused, and nothing changed
  auto second = s->put("lease", "epoch 2", PutIf::match(*first));
  REQUIRE(second);
  CHECK(*second != *first);
  auto stale = s->put("lease", "epoch 3", PutIf::match(*first));  // the old ETag no longer matches
  REQUIRE(!stale);
  CHECK(stale.error().code == ESTALE);
  CHECK(*s->get("lease") == "epoch 2");
  CHECK(s->put("missing", "x", PutIf::match(*first)).error().code == ESTALE);
  CHECK(std::filesystem::is_empty(d.path + "/.tmp"));  // refused writes leave nothing behind
}

TEST_CASE("file store: concurrent compare-and-swap lets exactly one writer win each round", "[storage]") {
  TempDir d;
  auto s = std::move(*open_file_store("file://" + d.path));
  auto etag = *s->put("counter", "0", PutIf::none_match());
  // 8 threads race to bump the counter 50 times each, retrying on ESTALE: no update is lost.
  std::atomic<int> conflicts{0}, failures{0};  // Catch2 assertions are not thread-safe
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50;) {
        auto cur = s->head("counter");
        auto val = s->get("counter");
        if (!cur || !val) continue;
        auto next = s->put("counter", std::to_string(std::stoi(*val) + 1), PutIf::match(cur->etag));
        if (next) ++i;
        else if (next.error().code == ESTALE) ++conflicts;
        else ++failures, ++i;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(*s->get("counter") == "400");
  (void)etag;
}

TEST_CASE("file store: compare-and-swap holds between processes too", "[storage]") {
  TempDir d;
  std::string url = "file://" + d.path;
  REQUIRE((*open_file_store(url))->put("counter", "0", PutIf::none_match()));
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    pid_t pid = ::fork();
    if (pid == 0) {  // its own store: its own lock file description
      auto s = std::move(*open_file_store(url));
      for (int i = 0; i < 50;) {
        auto cur = s->head("counter");
        auto val = s->get("counter");
        if (cur && val && s->put("counter", std::to_string(std::stoi(*val) + 1), PutIf::match(cur->etag))) ++i;
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    ::waitpid(k, &status, 0);
    CHECK(status == 0);
  }
  CHECK(*(*open_file_store(url))->get("counter") == "200");
}
