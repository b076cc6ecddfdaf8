// tests/unit/storage/helpers.hpp — what the volume tests share: a temporary directory,
// compressible test data, volume options for a small disk, and a store that can be
// switched off.
#pragma once

#include <stdlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <string>

#include "storage/object_store.hpp"
#include "storage/volume.hpp"

namespace bp::storage::test {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/bp-volume-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

inline std::string pattern(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() % 7 == 0 ? 0 : rng());  // compressible, not trivially
  return s;
}

inline std::string read_back(Volume& v, std::uint64_t off, std::size_t n) {
  std::string out(n, '\x55');
  auto s = v.read(off, out);
  INFO(bp::err_text(s));
  REQUIRE(s);
  return out;
}

inline VolumeOptions opts(const std::string& dir, Durability d = Durability::local) {
  VolumeOptions o;
  o.name = "vol1";
  o.dir = dir;
  o.size = 1ull << 30;
  o.durability = d;
  o.sync_interval = std::chrono::milliseconds(50);
  o.create = true;
  return o;
}



// A store that can be taken down: every call fails with EIO while down, as a dead
// endpoint does after the S3 client's retry budget.
class Switchable final : public ObjectStore {
 public:
  explicit Switchable(ObjectStore& s) : s_(s) {}
  std::atomic<bool> down{false};
  bp::Result<std::string> put(const std::string& k, const std::string& d, const PutIf& c) override {
    if (down) return dead();
    return s_.put(k, d, c);
  }
  bp::Result<std::string> get(const std::string& k, std::uint64_t o, std::optional<std::uint64_t> n) override {
    if (down) return dead();
    return s_.get(k, o, n);
  }
  bp::Result<ObjectInfo> head(const std::string& k) override {
    if (down) return dead();
    return s_.head(k);
  }
  bp::Result<std::vector<ObjectInfo>> list(const std::string& p) override {
    if (down) return dead();
    return s_.list(p);
  }
  bp::Status remove(const std::vector<std::string>& k) override {
    if (down) return dead();
    return s_.remove(k);
  }
  std::string url() const override { return s_.url(); }

 private:
  static bp::Error dead() { return bp::make_error("object store: connection refused (3 attempts)", EIO); }
  ObjectStore& s_;
};


}  // namespace bp::storage::test
