// tests/integration/object_store_conformance.cpp — one suite of object-store semantics,
// run against every backend: whole objects, ranges, head, listing past 1000 keys, batch
// delete, create-if-absent and compare-and-swap under racing threads, refused keys and a
// dead endpoint.
//
// The store is $BP_TEST_STORE_URL, with S3 keys from $AWS_ACCESS_KEY_ID,
// $AWS_SECRET_ACCESS_KEY and $AWS_REGION; without it, file:// in a temporary directory.
// Every test case works under its own random prefix, so re-runs share a bucket safely.
#define CATCH_CONFIG_MAIN
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "storage/object_store.hpp"

using namespace bp::storage;
using Clock = std::chrono::steady_clock;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool is_s3(const std::string& url) { return url.starts_with("s3://") || url.starts_with("s3+http://"); }

S3Credentials creds_from_env() {
  return {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"),
          env("AWS_REGION").empty() ? "us-east-1" : env("AWS_REGION")};
}

// The store under test, opened once for the whole run.
struct Target {
  std::string url, tmp;
  std::unique_ptr<ObjectStore> store;
  Target() {
    url = env("BP_TEST_STORE_URL");
    if (url.empty()) {
      char tmpl[] = "/tmp/bp-conformance-XXXXXX";
      tmp = ::mkdtemp(tmpl);
      url = "file://" + tmp;
    }
    auto s = is_s3(url) ? open_s3_store(url, creds_from_env()) : open_file_store(url);
    if (!s) throw std::runtime_error("cannot open " + url + ": " + s.error().what);
    store = std::move(*s);
  }
  ~Target() {
    if (!tmp.empty()) std::filesystem::remove_all(tmp);
  }
};

ObjectStore& store() {
  static Target t;
  return *t.store;
}

// A fresh prefix per test case: "run-<random>/<name>/".
std::string fresh(const std::string& name) {
  static const std::string run = [] {
    std::random_device rd;
    return "run-" + std::to_string(rd()) + std::to_string(rd());
  }();
  return run + "/" + name + "/";
}

// Deletes every key under prefix (what a test leaves behind).
void clean(const std::string& prefix) {
  auto keys = store().list(prefix);
  REQUIRE(keys);
  std::vector<std::string> names;
  for (auto& k : *keys) names.push_back(k.key);
  REQUIRE(store().remove(names));
}

// Runs fn(i) on n threads started together.
template <class F>
void race(int n, F fn) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      ++ready;
      while (ready < n) std::this_thread::yield();
      fn(i);
    });
  for (auto& t : threads) t.join();
}

}  // namespace

TEST_CASE("objects: put, get, ranges, head, overwrite", "[conformance]") {
  auto& s = store();
  std::string p = fresh("objects");
  std::string data = "0123456789abcdefghij";
  auto etag = s.put(p + "seg", data);
  REQUIRE(etag);
  CHECK(!etag->empty());
  CHECK(etag->find('"') == std::string::npos);  // ETags come unquoted
  CHECK(*s.get(p + "seg") == data);
  CHECK(*s.get(p + "seg", 10) == "abcdefghij");
  CHECK(*s.get(p + "seg", 0, 4) == "0123");
  CHECK(*s.get(p + "seg", 18, 100) == "ij");  // fewer at the end
  CHECK(*s.get(p + "seg", 19, 1) == "j");
  CHECK(*s.get(p + "seg", 5, 0) == "");
  CHECK(*s.get(p + "seg", 20, 0) == "");
  CHECK(s.get(p + "seg", 20).error().code == ERANGE);
  CHECK(s.get(p + "seg", 21, 3).error().code == ERANGE);
  CHECK(s.get(p + "seg", 21, 0).error().code == ERANGE);

  auto info = s.head(p + "seg");
  REQUIRE(info);
  CHECK(info->key == p + "seg");
  CHECK(info->size == data.size());
  CHECK(info->etag == *etag);

  auto again = s.put(p + "seg", "other");
  REQUIRE(again);
  CHECK(*again != *etag);
  CHECK(*s.get(p + "seg") == "other");
  CHECK(s.head(p + "seg")->etag == *again);

  // An empty object, and a key with characters that need encoding.
  REQUIRE(s.put(p + "empty", ""));
  CHECK(*s.get(p + "empty") == "");
  CHECK(*s.get(p + "empty", 0, 10) == "");
  CHECK(s.head(p + "empty")->size == 0);
  std::string odd = p + "dir/a b+c&d=e%f~g!'()*,;:@$\xC3\xA9";
  REQUIRE(s.put(odd, "odd"));
  CHECK(*s.get(odd) == "odd");
  auto listed = s.list(p + "dir/");
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].key == odd);

  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
  REQUIRE(s.put(p + "big", big));
  CHECK(*s.get(p + "big") == big);
  CHECK(*s.get(p + "big", 1 << 20, 4096) == big.substr(1 << 20, 4096));

  CHECK(s.get(p + "missing").error().code == ENOENT);
  CHECK(s.head(p + "missing").error().code == ENOENT);
  CHECK(s.put("../x", "x").error().code == EINVAL);
  clean(p);
}

TEST_CASE("listing: more than 1000 keys, in order, only under the prefix; batch delete", "[conformance]") {
  auto& s = store();
  std::string p = fresh("list");
  constexpr int kKeys = 1234;
  std::atomic<int> failures{0};
  race(8, [&](int t) {
    for (int i = t; i < kKeys; i += 8) {
      char name[32];
      std::snprintf(name, sizeof name, "k/%05d", i);
      if (!s.put(p + name, std::to_string(i))) ++failures;
    }
  });
  REQUIRE(failures == 0);
  REQUIRE(s.put(p + "other", "x"));

  auto all = s.list(p + "k/");
  REQUIRE(all);
  REQUIRE(all->size() == kKeys);
  for (int i = 0; i < kKeys; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "k/%05d", i);
    if ((*all)[i].key != p + name) FAIL("key " << i << " is " << (*all)[i].key);
  }
  CHECK((*all)[7].size == 1);
  CHECK(s.list(p)->size() == kKeys + 1);

  std::vector<std::string> keys;
  for (auto& o : *all) keys.push_back(o.key);
  keys.push_back(p + "never-was");  // missing keys are not errors
  REQUIRE(s.remove(keys));
  CHECK(s.list(p + "k/")->empty());
  CHECK(s.head(p + "k/00000").error().code == ENOENT);
  CHECK(*s.get(p + "other") == "x");
  clean(p);
}

TEST_CASE("create-if-absent: of racing writers exactly one wins", "[conformance]") {
  auto& s = store();
  std::string p = fresh("absent");
  for (int round = 0; round < 5; ++round) {
    std::string key = p + "lease-" + std::to_string(round);
    std::atomic<int> won{0}, exists{0}, other{0};
    race(8, [&](int t) {
      auto r = s.put(key, "holder " + std::to_string(t), PutIf::none_match());
      if (r) ++won;
      else if (r.error().code == EEXIST) ++exists;
      else ++other;
    });
    CHECK(won == 1);
    CHECK(exists == 7);
    CHECK(other == 0);
  }
  auto first = s.put(p + "one", "a", PutIf::none_match());
  REQUIRE(first);
  CHECK(s.put(p + "one", "b", PutIf::none_match()).error().code == EEXIST);
  CHECK(*s.get(p + "one") == "a");
  clean(p);
}

TEST_CASE("compare-and-swap: 8 threads increment a counter, no update is lost", "[conformance]") {
  auto& s = store();
  std::string p = fresh("cas");
  std::string key = p + "counter";
  REQUIRE(s.put(key, "0", PutIf::none_match()));
  constexpr int kThreads = 8, kEach = 15;
  std::atomic<int> conflicts{0}, failures{0};
  std::string last_error;
  std::mutex mu;
  race(kThreads, [&](int) {
    for (int done = 0; done < kEach;) {
      auto cur = s.head(key);
      auto val = s.get(key);
      if (!cur || !val) {
        ++failures;
        return;
      }
      // get and head are two reads; a write between them shows up as a failed match.
      auto next = s.put(key, std::to_string(std::stoi(*val) + 1), PutIf::match(cur->etag));
      if (next) {
        ++done;
      } else if (next.error().code == ESTALE) {
        ++conflicts;
      } else {
        std::lock_guard lock(mu);
        last_error = next.error().what;
        ++failures;
        return;
      }
    }
  });
  INFO(last_error);
  CHECK(failures == 0);
  CHECK(*s.get(key) == std::to_string(kThreads * kEach));
  WARN("compare-and-swap conflicts: " << conflicts);

  auto cur = s.head(key);
  REQUIRE(cur);
  auto moved = s.put(key, "x", PutIf::match(cur->etag));
  REQUIRE(moved);
  CHECK(s.put(key, "y", PutIf::match(cur->etag)).error().code == ESTALE);  // the old ETag
  CHECK(s.put(p + "missing", "y", PutIf::match(*moved)).error().code == ESTALE);
  CHECK(s.head(p + "missing").error().code == ENOENT);
  clean(p);
}

TEST_CASE("s3: refused keys give EACCES naming the S3 error", "[conformance][s3]") {
  std::string url = env("BP_TEST_STORE_URL");
  if (!is_s3(url)) {
    WARN("not an s3:// store: nothing to check");
    return;
  }
  S3Credentials wrong_secret = creds_from_env();
  wrong_secret.secret_key += "-wrong";
  S3Credentials wrong_key = creds_from_env();
  wrong_key.access_key = "NOSUCHACCESSKEY00000";
  for (const auto& [creds, code] : {std::pair{wrong_secret, "SignatureDoesNotMatch"},
                                    std::pair{wrong_key, "InvalidAccessKeyId"}}) {
    auto s = open_s3_store(url, creds);
    REQUIRE(s);
    auto t0 = Clock::now();
    auto r = (*s)->put(fresh("refused") + "k", "x");
    REQUIRE(!r);
    INFO(r.error().what);
    CHECK(r.error().code == EACCES);
    CHECK(r.error().what.find("refused the credentials") != std::string::npos);
    CHECK(r.error().what.find(code) != std::string::npos);
    CHECK(r.error().what.find(creds.secret_key) == std::string::npos);
    CHECK(Clock::now() - t0 < std::chrono::seconds(5));  // final, not retried
    auto h = (*s)->head(fresh("refused") + "k");  // HEAD: no error body
    CHECK(h.error().code == EACCES);
  }
}

TEST_CASE("s3: a dead endpoint fails with EIO once the retry budget is spent", "[conformance][s3]") {
  std::string url = env("BP_TEST_STORE_URL");
  if (!is_s3(url)) {
    WARN("not an s3:// store: nothing to check");
    return;
  }
  // A port nobody listens on: bind one, then let it go.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  std::string dead = "s3+http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/bucket?retry_budget_ms=1500";
  auto s = open_s3_store(dead, creds_from_env());
  REQUIRE(s);
  auto t0 = Clock::now();
  auto r = (*s)->put("k", "x", PutIf::none_match());
  auto took = Clock::now() - t0;
  REQUIRE(!r);
  INFO(r.error().what);
  CHECK(r.error().code == EIO);
  CHECK(r.error().what.find("s3 put 'k': gave up after") != std::string::npos);
  CHECK(r.error().what.find("Connection refused") != std::string::npos);
  CHECK(took >= std::chrono::milliseconds(700));
  CHECK(took < std::chrono::milliseconds(4000));
}
