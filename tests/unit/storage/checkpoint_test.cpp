// tests/unit/storage/checkpoint_test.cpp — what issue 7 adds to the volume: the lease
// (one writer; a lapsed lease stops writes; a lost one fails them), the map's replica
// (restore on an empty machine, a stale local map replaced, a broken replica refused),
// and checkpoints (take, restore, undo, delete), all on a file:// store.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "common/sys.hpp"
#include "storage/lease.hpp"
#include "storage/volume.hpp"
#include "tests/unit/storage/helpers.hpp"

using namespace bp::storage;
using namespace bp::storage::test;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Volume> open_ok(ObjectStore& store, const VolumeOptions& o) {
  auto v = Volume::open(store, o);
  INFO((v ? "" : v.error().what));
  REQUIRE(v);
  return std::move(*v);
}

std::vector<std::string> ids(const std::vector<Checkpoint>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) out.push_back(c.id);
  return out;
}

}  // namespace

TEST_CASE("lease: one writer; the next takes over at once after a release, with a new epoch", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto a = open_ok(**store, opts(d.path + "/a"));
  std::uint64_t e1 = a->stats().epoch;
  REQUIRE(e1 >= 1);
  auto second = Volume::open(**store, opts(d.path + "/b"));
  REQUIRE_FALSE(second);
  REQUIRE(second.error().code == EBUSY);
  REQUIRE(second.error().what.find("in use by") != std::string::npos);
  REQUIRE(a->write(0, pattern(4 * kBlock, 1)));
  REQUIRE(a->close());
  auto b = open_ok(**store, opts(d.path + "/b"));
  REQUIRE(b->stats().epoch == e1 + 1);
  REQUIRE(read_back(*b, 0, 4 * kBlock) == pattern(4 * kBlock, 1));
  REQUIRE(b->write(0, pattern(kBlock, 2)));
  REQUIRE(b->close());
  // Every segment's key carries the epoch of its writer: seq = epoch << 40 | n.
  std::set<std::uint64_t> epochs;
  for (const auto& e : fs::directory_iterator(d.path + "/objects/volumes/vol1/data"))
    epochs.insert(std::stoull(e.path().filename().string(), nullptr, 16) >> 40);
  REQUIRE(epochs == std::set<std::uint64_t>{e1, e1 + 1});
}

TEST_CASE("lease: a holder that cannot renew stops writing before the lease can expire", "[storage]") {
  TempDir d;
  auto file = open_file_store("file://" + d.path + "/objects");
  REQUIRE(file);
  Switchable store(**file);
  auto o = opts(d.path + "/a");
  o.lease_ttl = std::chrono::milliseconds(1200);
  auto v = open_ok(store, o);
  REQUIRE(v->write(0, pattern(kBlock, 3)));
  store.down = true;
  auto t0 = std::chrono::steady_clock::now();
  // Within 2/3 of the TTL of the last renewal, writes stop: they wait.
  while (v->health().empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(v->health().find("lease lapsed") != std::string::npos);
  REQUIRE(std::chrono::steady_clock::now() - t0 < o.lease_ttl);
  std::atomic<bool> done{false};
  bp::Status wrote;
  std::thread writer([&] {
    wrote = v->write(kBlock, pattern(kBlock, 4));
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  REQUIRE_FALSE(done);
  store.down = false;  // renewed (nobody took it): the write goes through
  writer.join();
  REQUIRE(wrote);
  REQUIRE(v->health().empty());
  REQUIRE(v->close());
}

TEST_CASE("lease: a holder whose lease was taken fails its writes for good", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/a");
  o.lease_ttl = std::chrono::milliseconds(600);
  auto v = open_ok(**store, o);
  // Another machine decides the lease expired (say, a clock far ahead) and takes it.
  auto info = (*store)->head("volumes/vol1/lease");
  REQUIRE(info);
  REQUIRE((*store)->put("volumes/vol1/lease", R"({"epoch":99,"holder":"other","expires_ms":0,"released":true})",
                        PutIf::match(info->etag)));
  auto t0 = std::chrono::steady_clock::now();
  while (v->health().find("lost") == std::string::npos && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(v->health().find("lease lost") != std::string::npos);
  auto w = v->write(0, pattern(kBlock, 5));
  REQUIRE_FALSE(w);
  REQUIRE(w.error().code == EIO);
  REQUIRE(w.error().what.find("another writer") != std::string::npos);
  REQUIRE(v->close());  // nothing of its own was left to upload
  auto lease = (*store)->get("volumes/vol1/lease");
  REQUIRE(lease);
  REQUIRE(lease->find("\"holder\":\"other\"") != std::string::npos);  // not released by the former holder
}

TEST_CASE("checkpoint: restore brings back the disk as it was, and can be undone", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/a");
  auto v = open_ok(**store, o);
  std::string a = pattern(64 * kBlock, 6), b = pattern(16 * kBlock, 7);
  REQUIRE(v->write(0, a));
  auto c0 = v->checkpoint("first");
  REQUIRE(c0);
  REQUIRE(c0->id == "v0");
  REQUIRE(c0->comment == "first");
  REQUIRE(v->write(8 * kBlock, b));
  REQUIRE(v->trim(40 * kBlock, 8 * kBlock));
  std::string after = a;
  std::memcpy(after.data() + 8 * kBlock, b.data(), b.size());
  std::memset(after.data() + 40 * kBlock, 0, 8 * kBlock);
  REQUIRE(read_back(*v, 0, a.size()) == after);
  REQUIRE(v->current().source_id == "v0");

  auto keep = v->restore("v0");
  REQUIRE(keep);
  REQUIRE(keep->id == "v1");
  REQUIRE(keep->source_id == "v0");
  REQUIRE(read_back(*v, 0, a.size()) == a);
  REQUIRE(v->used_bytes() == a.size());
  REQUIRE(v->write(0, b));  // the restored disk is written on its own
  REQUIRE(ids(v->checkpoints()) == std::vector<std::string>{"v0", "v1"});
  auto undo = v->restore("v1");
  REQUIRE(undo);
  REQUIRE(read_back(*v, 0, a.size()) == after);
  auto missing = v->restore("v9");
  REQUIRE_FALSE(missing);
  REQUIRE(missing.error().code == ENOENT);

  // Deleting a checkpoint others stand on keeps what they need.
  REQUIRE(v->delete_checkpoint("v0"));
  REQUIRE(v->find_checkpoint("v0") == std::nullopt);
  REQUIRE(read_back(*v, 0, a.size()) == after);
  auto v2 = v->restore("v2");  // the state written after the first restore
  REQUIRE(v2);
  std::string written = a;
  std::memcpy(written.data(), b.data(), b.size());
  REQUIRE(read_back(*v, 0, a.size()) == written);
  REQUIRE(v->close());

  // An empty machine gets every checkpoint and the exact state from the store alone.
  auto fresh = opts(d.path + "/fresh");
  fresh.create = false;
  auto w = open_ok(**store, fresh);
  REQUIRE(ids(w->checkpoints()) == std::vector<std::string>{"v1", "v2", "v3"});
  REQUIRE(read_back(*w, 0, a.size()) == written);
  REQUIRE(w->restore("v1"));
  REQUIRE(read_back(*w, 0, a.size()) == after);
  REQUIRE(w->close());
}

TEST_CASE("checkpoint: many in a row, each restores to its own bytes", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto v = open_ok(**store, opts(d.path + "/a"));
  std::vector<std::string> states;
  std::string disk(32 * kBlock, '\0');
  std::mt19937 rng(8);
  for (int i = 0; i < 60; ++i) {
    std::uint64_t at = rng() % 32, n = 1 + rng() % 4;
    n = std::min<std::uint64_t>(n, 32 - at);
    std::string data = pattern(n * kBlock, 100 + i);
    REQUIRE(v->write(at * kBlock, data));
    std::memcpy(disk.data() + at * kBlock, data.data(), data.size());
    auto c = v->checkpoint("");
    REQUIRE(c);
    REQUIRE(c->id == "v" + std::to_string(i));
    states.push_back(disk);
  }
  for (int k = 0; k < 10; ++k) {
    int i = static_cast<int>(rng() % states.size());
    REQUIRE(v->restore("v" + std::to_string(i)));
    REQUIRE(read_back(*v, 0, disk.size()) == states[i]);
  }
  REQUIRE(v->close());
}

TEST_CASE("replica: a stale local map yields to a later writer's; a broken replica is an error", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  std::string a = pattern(8 * kBlock, 9), b = pattern(8 * kBlock, 10);
  {
    auto v = open_ok(**store, opts(d.path + "/a"));
    REQUIRE(v->write(0, a));
    REQUIRE(v->close());
  }
  {
    auto v = open_ok(**store, opts(d.path + "/b"));  // another machine takes over
    REQUIRE(v->write(0, b));
    REQUIRE(v->checkpoint("on b"));
    REQUIRE(v->close());
  }
  {
    auto v = open_ok(**store, opts(d.path + "/a"));  // the first machine, back with its old map
    REQUIRE(read_back(*v, 0, b.size()) == b);
    REQUIRE(ids(v->checkpoints()) == std::vector<std::string>{"v0"});
    REQUIRE(v->close());
  }
  // Corrupt the newest snapshot: an empty machine fails to open rather than start empty.
  for (const auto& e : fs::recursive_directory_iterator(d.path + "/objects/volumes/vol1/meta"))
    if (e.is_regular_file() && e.path().parent_path().filename() == "snapshot")
      REQUIRE(bp::write_file_atomic(e.path().string(), "garbage", 0600));
  auto o = opts(d.path + "/c");
  o.create = true;  // even allowed to create, it must not
  auto v = Volume::open(**store, o);
  REQUIRE_FALSE(v);
  REQUIRE(v.error().what.find("restore failed") != std::string::npos);
}

TEST_CASE("replica: the WAL rolls over and a restore replays every index", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/a", Durability::strict);
  o.size = 4ull << 30;
  auto v = open_ok(**store, o);
  std::mt19937 rng(11);
  std::map<std::uint64_t, std::string> written;
  // Each strict flush commits the map; blocks far apart touch many of its pages.
  for (int i = 0; i < 700; ++i) {
    std::uint64_t lba = (rng() % (o.size / kBlock / 2)) * 2;
    std::string data = pattern(kBlock, 1000 + i);
    REQUIRE(v->write(lba * kBlock, data));
    REQUIRE(v->flush());
    written[lba] = data;
    if (i % 100 == 99) REQUIRE(v->checkpoint(""));
  }
  REQUIRE(v->close());
  // The newest index (a WAL directory or a snapshot) is past 0: the WAL was truncated.
  std::uint64_t newest = 0;
  for (const auto& e : fs::recursive_directory_iterator(d.path + "/objects/volumes/vol1/meta")) {
    auto up = e.path().parent_path().filename();
    if ((e.is_directory() && up == "wal") || up == "snapshot")
      newest = std::max<std::uint64_t>(newest, std::stoull(e.path().filename().string(), nullptr, 16));
  }
  REQUIRE(newest > 0);
  auto fresh = opts(d.path + "/fresh");
  fresh.create = false;
  auto w = open_ok(**store, fresh);
  for (const auto& [lba, data] : written) REQUIRE(read_back(*w, lba * kBlock, kBlock) == data);
  REQUIRE(w->checkpoints().size() == 7);
  REQUIRE(w->close());
}

namespace {

// Counts what a volume asks of the store, by key prefix.
class Counting final : public ObjectStore {
 public:
  explicit Counting(ObjectStore& s) : s_(s) {}
  std::atomic<int> data_gets{0}, puts{0};
  bp::Result<std::string> put(const std::string& k, const std::string& d, const PutIf& c) override {
    ++puts;
    return s_.put(k, d, c);
  }
  bp::Result<std::string> get(const std::string& k, std::uint64_t o, std::optional<std::uint64_t> n) override {
    if (k.find("/data/") != std::string::npos) ++data_gets;
    return s_.get(k, o, n);
  }
  bp::Result<ObjectInfo> head(const std::string& k) override { return s_.head(k); }
  bp::Result<std::vector<ObjectInfo>> list(const std::string& p) override { return s_.list(p); }
  bp::Status remove(const std::vector<std::string>& k) override { return s_.remove(k); }
  std::string url() const override { return s_.url(); }

 private:
  ObjectStore& s_;
};

}  // namespace

TEST_CASE("clone: made in O(1) over its parent's map; trims hide the parent's blocks", "[storage]") {
  TempDir d;
  auto file = open_file_store("file://" + d.path + "/objects");
  REQUIRE(file);
  std::string base = pattern(2000 * kBlock, 21);
  std::uint64_t seq;
  {
    auto o = opts(d.path + "/base");
    o.name = "base-2";
    o.sync_interval = std::chrono::milliseconds(1);  // many segments
    auto v = open_ok(**file, o);
    for (std::uint64_t i = 0; i < 2000; i += 100) {
      REQUIRE(v->write(i * kBlock, std::string_view(base).substr(i * kBlock, 100 * kBlock)));
      REQUIRE(v->flush());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(v->close());
    seq = v->stats().applied_seq;
    REQUIRE(v->stats().segments > 5);
    REQUIRE(mark_sealed(**file, "base-2", seq));
  }
  Counting store(**file);
  auto o = opts(d.path + "/clone");
  o.name = "clone-2";
  o.parent = "base-2";
  o.parent_seq = seq;
  o.bases_dir = d.path + "/bases";
  auto v = open_ok(store, o);
  REQUIRE(store.data_gets == 0);  // no segment of the parent was read to make it
  REQUIRE(read_back(*v, 0, base.size()) == base);
  REQUIRE(v->trim(10 * kBlock, 5 * kBlock));
  std::string want = base;
  std::memset(want.data() + 10 * kBlock, 0, 5 * kBlock);
  REQUIRE(read_back(*v, 0, base.size()) == want);
  REQUIRE(v->close());
  // Another machine: the clone's replica names its base; the base's map comes too.
  auto fresh = opts(d.path + "/clone-fresh");
  fresh.name = "clone-2";
  fresh.create = false;
  fresh.bases_dir = d.path + "/bases-fresh";
  auto w = open_ok(**file, fresh);
  REQUIRE(read_back(*w, 0, base.size()) == want);
  // A second clone on the first machine finds the base's map there already.
  auto o2 = o;
  o2.name = "clone-3";
  o2.dir = d.path + "/clone3";
  auto puts_before = store.puts.load();
  auto t0 = std::chrono::steady_clock::now();
  auto x = open_ok(store, o2);
  INFO("clone open: " << std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count() << " us, "
                       << store.puts - puts_before << " puts");
  REQUIRE(store.puts - puts_before <= 4);  // manifest, lease, snapshot (and nothing per block)
  REQUIRE(read_back(*x, 0, base.size()) == base);
  REQUIRE(x->close());
  REQUIRE(w->close());
}

TEST_CASE("gc: concurrent with writes and checkpoints, never deletes what a checkpoint needs", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/a");
  o.size = 64 * kBlock * 16;
  o.sync_interval = std::chrono::milliseconds(5);
  o.gc_interval = std::chrono::milliseconds(20);
  o.gc_grace = std::chrono::milliseconds(0);
  auto v = open_ok(**store, o);
  const std::uint64_t blocks = o.size / kBlock;
  std::string disk(o.size, '\0');
  std::vector<std::pair<std::string, std::string>> saved;  // checkpoint id -> disk then
  std::atomic<bool> stop{false};
  std::string failure;
  std::thread writer([&] {
    std::mt19937 rng(31);
    for (int i = 0; i < 400 && failure.empty(); ++i) {
      std::uint64_t at = rng() % blocks, n = std::min<std::uint64_t>(1 + rng() % 48, blocks - at);
      std::string data = pattern(n * kBlock, 5000 + i);
      if (rng() % 5 == 0) {
        if (!v->trim(at * kBlock, n * kBlock)) failure = "trim";
        std::memset(disk.data() + at * kBlock, 0, n * kBlock);
      } else {
        if (!v->write(at * kBlock, data)) failure = "write";
        std::memcpy(disk.data() + at * kBlock, data.data(), data.size());
      }
      if (i % 10 == 0 && !v->flush()) failure = "flush";
      if (i % 40 == 39) {
        auto c = v->checkpoint("");
        if (!c) failure = "checkpoint: " + c.error().what;
        else saved.emplace_back(c->id, disk);
      }
    }
    stop = true;
  });
  int passes = 0;
  while (!stop) {
    auto m = v->maintain();
    INFO(bp::err_text(m));
    REQUIRE(m);
    ++passes;
  }
  writer.join();
  REQUIRE(failure.empty());
  REQUIRE(v->maintain());
  REQUIRE(v->maintain());
  auto st = v->stats();
  INFO("passes " << passes << ", compacted " << st.segments_compacted << ", deleted " << st.segments_deleted);
  REQUIRE(st.segments_deleted > 0);
  REQUIRE(st.segments_compacted > 0);
  std::size_t objects = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(d.path + "/objects/volumes/vol1/data")) ++objects;
  REQUIRE(objects < st.segments);
  REQUIRE(read_back(*v, 0, disk.size()) == disk);
  for (const auto& [id, bytes] : saved) {
    REQUIRE(v->restore(id));
    REQUIRE(read_back(*v, 0, bytes.size()) == bytes);
  }
  REQUIRE(v->close());
  // From the store alone, and with the local cache gone: every checkpoint is whole.
  auto fresh = opts(d.path + "/fresh");
  fresh.create = false;
  fresh.size = o.size;
  auto w = open_ok(**store, fresh);
  for (const auto& [id, bytes] : saved) {
    REQUIRE(w->restore(id));
    REQUIRE(read_back(*w, 0, bytes.size()) == bytes);
  }
  REQUIRE(w->close());
}

TEST_CASE("view: a checkpoint as a read-only disk, kept whole through GC", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/a", Durability::strict);  // a flush puts b in the map
  o.gc_grace = std::chrono::milliseconds(0);
  auto v = open_ok(**store, o);
  std::string a = pattern(64 * kBlock, 41), b = pattern(64 * kBlock, 42);
  REQUIRE(v->write(0, a));
  auto c = v->checkpoint("");
  REQUIRE(c);
  auto view = v->view(c->id);
  REQUIRE(view);
  REQUIRE(v->write(0, b));
  REQUIRE(v->flush());
  REQUIRE(v->delete_checkpoint(c->id));  // nothing in the map names a's blocks now
  REQUIRE(v->maintain());
  REQUIRE(v->maintain());
  std::string got(a.size() - 100, '\0');
  REQUIRE((*view)->read(100, got));  // unaligned, through the store if need be
  REQUIRE(got == a.substr(100));
  auto w = (*view)->write(0, "x");
  REQUIRE_FALSE(w);
  REQUIRE(w.error().code == EROFS);
  REQUIRE(v->view("v9").error().code == ENOENT);
  view->reset();
  REQUIRE(v->maintain());  // now they may go
  REQUIRE(v->stats().segments_deleted > 0);
  REQUIRE(read_back(*v, 0, b.size()) == b);
  REQUIRE(v->close());
}
