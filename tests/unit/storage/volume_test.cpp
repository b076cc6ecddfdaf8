// tests/unit/storage/volume_test.cpp — the volume engine's parts and the engine itself
// on a file:// store: segments round-trip and refuse corrupt bytes, the journal replays a
// prefix, the map keeps generations apart, and a volume keeps every acknowledged write
// through a crash, a lost cache and a lost state directory.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <atomic>
#include <random>
#include <thread>

#include "common/fd.hpp"
#include "storage/crc32c.hpp"
#include "storage/extent_map.hpp"
#include "storage/journal.hpp"
#include "storage/map_db.hpp"
#include "storage/segment.hpp"
#include "storage/volume.hpp"
#include "tests/unit/storage/helpers.hpp"

using namespace bp::storage;
using namespace bp::storage::test;

TEST_CASE("crc32c: the standard check value, table and instruction agree", "[storage]") {
  REQUIRE(crc32c(0, "123456789", 9) == 0xe3069283);
  std::string s = pattern(1000, 1);
  // Split anywhere, the running CRC is the same.
  REQUIRE(crc32c(crc32c(0, s.data(), 333), s.data() + 333, 667) == crc32c(0, s.data(), s.size()));
}

TEST_CASE("extent map: assign splits and merges, visit covers gaps", "[storage]") {
  ExtentMap m;
  Loc a{Loc::journal, 0, 1, 0};
  Loc b{Loc::journal, 0, 2, 0};
  m.assign(0, 10, a);
  m.assign(4, 2, b);
  REQUIRE(m.runs().size() == 3);
  m.assign(4, 2, a);  // same location as both neighbours: one run again
  REQUIRE(m.runs().size() == 1);
  m.erase(2, 3);
  std::vector<std::tuple<std::uint64_t, std::uint64_t, bool>> seen;
  m.visit(0, 12, [&](std::uint64_t s, std::uint64_t n, const Loc* l) { seen.emplace_back(s, n, l != nullptr); });
  REQUIRE(seen == std::vector<std::tuple<std::uint64_t, std::uint64_t, bool>>{
                      {0, 2, true}, {2, 3, false}, {5, 5, true}, {10, 2, false}});
}

TEST_CASE("segment: round trip, and corrupt bytes are an error", "[storage]") {
  SegmentBuilder b;
  std::string d1 = pattern(20 * kBlock, 2), d2 = pattern(3 * kBlock, 3);
  b.add_data(100, d1);
  b.add_trim(500, 1000);
  b.add_data(7, d2);
  std::string obj = b.finish(42, 1, 3, 9);
  auto idx = decode_segment_index(obj);
  REQUIRE(idx);
  REQUIRE(idx->seq == 42);
  REQUIRE(idx->part == 1);
  REQUIRE(idx->parts == 3);
  REQUIRE(idx->journal == 9);
  REQUIRE(idx->entries.size() == 4);  // 20 blocks = frames of 16 and 4, a trim, 3 blocks
  std::string back;
  for (const auto& e : idx->entries) {
    if (e.trim) {
      REQUIRE(e.lba == 500);
      REQUIRE(e.blocks == 1000);
      continue;
    }
    auto f = decode_frame(std::span<const char>(obj.data() + e.frame_off, e.frame_len), e.blocks);
    REQUIRE(f);
    back += *f;
  }
  REQUIRE(back == d1 + d2);

  const auto& e = idx->entries[0];
  std::string bad = obj;
  bad[e.frame_off + e.frame_len / 2] ^= 0x10;
  REQUIRE_FALSE(decode_frame(std::span<const char>(bad.data() + e.frame_off, e.frame_len), e.blocks));
  std::string bad_index = obj;
  bad_index[kSegmentHeader + 5] ^= 0x01;
  REQUIRE_FALSE(decode_segment_index(bad_index));
  REQUIRE_FALSE(decode_segment_index(obj.substr(0, 20)));
  REQUIRE_FALSE(decode_frame(std::string(e.frame_len, '\0'), e.blocks));  // a hole in a cache file
}

TEST_CASE("journal: replay returns the records up to a torn one", "[storage]") {
  TempDir d;
  std::string path = d.path + "/j";
  bp::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0600));
  REQUIRE(fd);
  std::string d1 = pattern(2 * kBlock, 4), d2 = pattern(kBlock, 5), d3 = pattern(kBlock, 6);
  auto e1 = journal_append_write(fd.get(), 0, 10, d1);
  REQUIRE(e1);
  auto e2 = journal_append_trim(fd.get(), *e1, 20, 5);
  REQUIRE(e2);
  auto e3 = journal_append_write(fd.get(), *e2, 30, d2);
  REQUIRE(e3);
  auto e4 = journal_append_write(fd.get(), *e3, 40, d3);
  REQUIRE(e4);

  auto all = journal_scan(fd.get());
  REQUIRE(all);
  REQUIRE(all->records.size() == 4);
  REQUIRE_FALSE(all->torn);
  REQUIRE(all->records[1].kind == JournalRecord::trim);
  REQUIRE(all->records[2].lba == 30);
  std::string got(kBlock, '\0');
  REQUIRE(::pread(fd.get(), got.data(), kBlock, static_cast<off_t>(all->records[2].data_offset)) == kBlock);
  REQUIRE(got == d2);

  // A flipped bit in the third record's data: replay keeps the two before it only.
  char c;
  REQUIRE(::pread(fd.get(), &c, 1, static_cast<off_t>(*e2 + kJournalHeader + 100)) == 1);
  c ^= 0x04;
  REQUIRE(::pwrite(fd.get(), &c, 1, static_cast<off_t>(*e2 + kJournalHeader + 100)) == 1);
  auto cut = journal_scan(fd.get());
  REQUIRE(cut);
  REQUIRE(cut->records.size() == 2);
  REQUIRE(cut->torn);
  REQUIRE(cut->end == *e2);

  // A record cut short by a crash.
  REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(*e1 + 10)) == 0);
  auto shortened = journal_scan(fd.get());
  REQUIRE(shortened);
  REQUIRE(shortened->records.size() == 1);
}

TEST_CASE("map db: generations layer, trims hide the parent's blocks, apply is atomic", "[storage]") {
  TempDir d;
  auto db = MapDb::open(d.path + "/map.db");
  REQUIRE(db);
  auto& m = **db;
  auto g1 = m.head();
  REQUIRE(g1);
  auto obj = [](std::uint64_t seq, std::uint64_t lba, std::uint32_t n) {
    return Loc{Loc::object, 0, seq, 0, 1000 * seq, 100, lba, n};
  };
  REQUIRE(m.apply(*g1, {{0, 16, obj(1, 0, 16)}, {16, 16, obj(1, 16, 16)}}, {{"applied_seq", "1"}}));
  REQUIRE(m.apply(*g1, {{4, 4, obj(2, 4, 4)}}, {}));  // splits the first row in three
  REQUIRE(m.rows(*g1) == 4);

  auto g2 = m.new_generation();
  REQUIRE(g2);
  REQUIRE(*g2 == *g1 + 1);
  REQUIRE(m.apply(*g2, {{16, 8, Loc{}}, {0, 2, obj(3, 0, 2)}}, {}));  // trim + overwrite in g2

  auto v1 = m.load(*g1);
  REQUIRE(v1);
  auto v2 = m.load(*g2);
  REQUIRE(v2);
  auto where = [](const ExtentMap& map, std::uint64_t lba) -> std::uint64_t {
    std::uint64_t seq = 0;
    map.visit(lba, 1, [&](std::uint64_t, std::uint64_t, const Loc* l) { seq = l ? l->id : 0; });
    return seq;
  };
  // g1 is untouched by what g2 did.
  REQUIRE(where(*v1, 0) == 1);
  REQUIRE(where(*v1, 5) == 2);
  REQUIRE(where(*v1, 20) == 1);
  // g2 sees its own rows over g1's.
  REQUIRE(where(*v2, 0) == 3);
  REQUIRE(where(*v2, 2) == 1);
  REQUIRE(where(*v2, 5) == 2);
  REQUIRE(where(*v2, 20) == 0);  // trimmed in g2
  REQUIRE(where(*v2, 24) == 1);
  REQUIRE(m.get_u64("applied_seq") == 1);

  // A trim in a generation without a parent stores nothing at all.
  REQUIRE(m.apply(*g1, {{0, 32, Loc{}}}, {}));
  REQUIRE(m.rows(*g1) == 0);
}

TEST_CASE("volume: writes read back from journal, map and store", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  std::string a = pattern(300 * kBlock, 7), b = pattern(1000, 8);
  {
    auto v = Volume::open(**store, opts(d.path + "/state"));
    REQUIRE(v);
    REQUIRE((*v)->size() == 1ull << 30);
    REQUIRE((*v)->write(8 * kBlock, a));
    REQUIRE((*v)->write(5000, b));  // unaligned: read-modify-write of block 1
    REQUIRE(read_back(**v, 8 * kBlock, a.size()) == a);  // from the journal
    REQUIRE(read_back(**v, 5000, b.size()) == b);
    REQUIRE(read_back(**v, 1ull << 29, 8192) == std::string(8192, '\0'));  // never written
    REQUIRE((*v)->used_bytes() == (300 + 1) * kBlock);
    REQUIRE((*v)->close());
    auto st = (*v)->stats();
    REQUIRE(st.journal_bytes == 0);
    REQUIRE(st.segments >= 1);
    REQUIRE(st.bytes_uploaded < a.size());  // compressed
  }
  auto check = [&](const std::string& state) {
    auto o = opts(state);
    o.create = false;
    auto v = Volume::open(**store, o);
    INFO((v ? "" : v.error().what));
    REQUIRE(v);
    REQUIRE(read_back(**v, 8 * kBlock, a.size()) == a);
    REQUIRE(read_back(**v, 5000, b.size()) == b);
    REQUIRE((*v)->used_bytes() == (300 + 1) * kBlock);
  };
  SECTION("reopened: from the map and the cache") { check(d.path + "/state"); }
  SECTION("cache wiped: from the object store") {
    std::filesystem::remove_all(d.path + "/state/cache");
    check(d.path + "/state");
  }
  SECTION("state directory lost: the map comes from its replica") { check(d.path + "/fresh"); }
  SECTION("state directory and replica lost: the map is rebuilt from the segments") {
    std::filesystem::remove_all(d.path + "/objects/volumes/vol1/meta");
    check(d.path + "/fresh");
  }
  SECTION("a corrupt cache file is fetched again") {
    for (const auto& e : std::filesystem::directory_iterator(d.path + "/state/cache")) {
      bp::UniqueFd fd(::open(e.path().c_str(), O_RDWR));
      std::string junk(4096, '\x7f');
      REQUIRE(::pwrite(fd.get(), junk.data(), junk.size(), 200) == 4096);
    }
    check(d.path + "/state");
  }
}

TEST_CASE("volume: a volume the store does not have is never made up", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/state");
  o.create = false;
  auto v = Volume::open(**store, o);
  REQUIRE_FALSE(v);
  REQUIRE(v.error().code == ENOENT);
  REQUIRE(v.error().what.find("refusing") != std::string::npos);
}

TEST_CASE("volume: trim drops data and what counts as used", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto v = Volume::open(**store, opts(d.path + "/state"));
  REQUIRE(v);
  std::string a = pattern(64 * kBlock, 9);
  REQUIRE((*v)->write(0, a));
  REQUIRE((*v)->close());
  v = Volume::open(**store, opts(d.path + "/state"));
  REQUIRE(v);
  REQUIRE((*v)->used_bytes() == 64 * kBlock);
  REQUIRE((*v)->trim(16 * kBlock + 100, 32 * kBlock));  // partial blocks at both ends
  REQUIRE((*v)->used_bytes() == (64 - 31) * kBlock);
  std::string want = a;
  std::memset(want.data() + 16 * kBlock + 100, 0, 32 * kBlock);
  REQUIRE(read_back(**v, 0, a.size()) == want);
  REQUIRE((*v)->close());
  auto o = opts(d.path + "/fresh");
  o.create = false;
  v = Volume::open(**store, o);
  REQUIRE(v);
  REQUIRE(read_back(**v, 0, a.size()) == want);
  REQUIRE((*v)->used_bytes() == (64 - 31) * kBlock);
}

TEST_CASE("volume: strict flush puts data and map in the store before returning", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/state", Durability::strict);
  o.sync_interval = std::chrono::hours(1);  // only flush() uploads
  o.lease_ttl = std::chrono::milliseconds(1500);
  std::string a = pattern(10 * kBlock, 10);
  // A child writes, flushes, and dies without closing anything.
  pid_t pid = ::fork();
  if (pid == 0) {
    auto s = open_file_store("file://" + d.path + "/objects");
    auto v = Volume::open(**s, o);
    bool ok = v && (*v)->write(3 * kBlock, a) && (*v)->flush();
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  // Only the object store: a fresh state directory, another machine. The dead writer
  // still holds the lease, so it waits for it to expire.
  auto fresh = opts(d.path + "/fresh", Durability::strict);
  fresh.create = false;
  auto v = Volume::open(**store, fresh);
  REQUIRE_FALSE(v);
  REQUIRE(v.error().code == EBUSY);
  REQUIRE(v.error().what.find("in use by") != std::string::npos);
  std::this_thread::sleep_for(o.lease_ttl);
  v = Volume::open(**store, fresh);
  REQUIRE(v);
  REQUIRE(read_back(**v, 3 * kBlock, a.size()) == a);
}

TEST_CASE("volume: local mode keeps fsync'd writes through a crash (journal replay)", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/state");
  o.sync_interval = std::chrono::hours(1);  // nothing uploads: all of it is in the journal
  std::string a = pattern(40 * kBlock, 11), b = pattern(kBlock, 12);
  pid_t pid = ::fork();
  if (pid == 0) {
    auto s = open_file_store("file://" + d.path + "/objects");
    auto v = Volume::open(**s, o);
    bool ok = v && (*v)->write(0, a) && (*v)->trim(0, 4 * kBlock) && (*v)->write(100 * kBlock, b) && (*v)->flush();
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE_FALSE(std::filesystem::exists(d.path + "/objects/volumes/vol1/data"));  // nothing uploaded
  auto v = Volume::open(**store, o);
  REQUIRE(v);
  std::string want = a;
  std::memset(want.data(), 0, 4 * kBlock);
  REQUIRE(read_back(**v, 0, a.size()) == want);
  REQUIRE(read_back(**v, 100 * kBlock, kBlock) == b);
  REQUIRE((*v)->close());  // now it uploads
  auto fresh = opts(d.path + "/fresh");
  fresh.create = false;
  v = Volume::open(**store, fresh);
  REQUIRE(v);
  REQUIRE(read_back(**v, 0, a.size()) == want);
}

TEST_CASE("volume: a clone starts as its parent and diverges on its own", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  std::string base = pattern(50 * kBlock, 13), mine = pattern(kBlock, 14);
  std::uint64_t seq;
  {
    auto o = opts(d.path + "/base");
    o.name = "base-1";
    auto v = Volume::open(**store, o);
    REQUIRE(v);
    REQUIRE((*v)->write(0, base));
    REQUIRE((*v)->close());
    seq = (*v)->stats().applied_seq;
    REQUIRE(mark_sealed(**store, "base-1", seq));
  }
  auto sealed = sealed_seq(**store, "base-1");
  REQUIRE(sealed);
  REQUIRE(*sealed == seq);
  auto o = opts(d.path + "/clone");
  o.name = "clone";
  o.parent = "base-1";
  o.parent_seq = seq;
  auto v = Volume::open(**store, o);
  REQUIRE(v);
  REQUIRE(read_back(**v, 0, base.size()) == base);
  REQUIRE((*v)->write(kBlock, mine));
  REQUIRE((*v)->close());
  auto fresh = opts(d.path + "/clone-fresh");
  fresh.name = "clone";
  fresh.create = false;
  v = Volume::open(**store, fresh);
  REQUIRE(v);
  std::string want = base;
  std::memcpy(want.data() + kBlock, mine.data(), kBlock);
  REQUIRE(read_back(**v, 0, base.size()) == want);
}

TEST_CASE("volume: random writes and trims against a model, with reopen", "[storage]") {
  TempDir d;
  auto store = open_file_store("file://" + d.path + "/objects");
  REQUIRE(store);
  auto o = opts(d.path + "/state");
  o.size = 4ull << 20;
  o.journal_limit = 1 << 20;  // small files: many segments and rotations
  std::string model(o.size, '\0');
  std::mt19937 rng(15);
  auto v = Volume::open(**store, o);
  REQUIRE(v);
  for (int i = 0; i < 400; ++i) {
    std::uint64_t off = rng() % (o.size - 1);
    std::uint64_t len = 1 + rng() % std::min<std::uint64_t>(o.size - off, 70000);
    if (rng() % 5 == 0) {
      REQUIRE((*v)->trim(off, len));
      std::memset(model.data() + off, 0, len);
    } else {
      std::string data = pattern(len, static_cast<unsigned>(i));
      REQUIRE((*v)->write(off, data));
      std::memcpy(model.data() + off, data.data(), len);
    }
    if (i % 97 == 0) REQUIRE((*v)->flush());
    if (i % 150 == 149) {
      REQUIRE((*v)->close());
      v = Volume::open(**store, o);
      REQUIRE(v);
    }
  }
  REQUIRE(read_back(**v, 0, o.size) == model);
  REQUIRE((*v)->close());
  auto fresh = o;
  fresh.dir = d.path + "/fresh";
  v = Volume::open(**store, fresh);
  REQUIRE(v);
  REQUIRE(read_back(**v, 0, o.size) == model);
}


TEST_CASE("volume: strict flushes fail with EIO while the store is down, then succeed", "[storage]") {
  TempDir d;
  auto file = open_file_store("file://" + d.path + "/objects");
  REQUIRE(file);
  Switchable store(**file);
  auto o = opts(d.path + "/state", Durability::strict);
  o.flush_timeout = std::chrono::milliseconds(300);
  auto v = Volume::open(store, o);
  REQUIRE(v);
  std::string a = pattern(8 * kBlock, 16);
  REQUIRE((*v)->write(0, a));
  store.down = true;
  auto t0 = std::chrono::steady_clock::now();
  auto f = (*v)->flush();
  REQUIRE_FALSE(f);
  REQUIRE(f.error().code == EIO);
  REQUIRE(f.error().what.find("connection refused") != std::string::npos);
  REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  REQUIRE(read_back(**v, 0, a.size()) == a);  // nothing lost meanwhile
  store.down = false;
  REQUIRE((*v)->flush());  // the same data, now durable
  REQUIRE((*v)->close());
  auto fresh = opts(d.path + "/fresh", Durability::strict);
  fresh.create = false;
  auto w = Volume::open(**file, fresh);
  REQUIRE(w);
  REQUIRE(read_back(**w, 0, a.size()) == a);
}

TEST_CASE("volume: local mode takes writes into the journal up to its bound, then waits", "[storage]") {
  TempDir d;
  auto file = open_file_store("file://" + d.path + "/objects");
  REQUIRE(file);
  Switchable store(**file);
  auto o = opts(d.path + "/state");
  o.journal_limit = 2 << 20;
  auto v = Volume::open(store, o);
  REQUIRE(v);
  store.down = true;
  std::string chunk = pattern(256 * kBlock, 17);  // 1 MiB
  REQUIRE((*v)->write(0, chunk));
  REQUIRE((*v)->write(chunk.size(), chunk));
  REQUIRE((*v)->flush());  // local: the journal is enough
  // The journal is full: the next write waits for the store.
  std::atomic<bool> done{false};
  bp::Status wrote;
  std::thread writer([&] {  // (Catch's assertions are not for other threads)
    wrote = (*v)->write(2 * chunk.size(), chunk);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  REQUIRE_FALSE(done);
  store.down = false;  // uploads resume, the journal drains, the write goes through
  writer.join();
  REQUIRE(wrote);
  REQUIRE((*v)->close());
  auto fresh = opts(d.path + "/fresh");
  fresh.create = false;
  auto w = Volume::open(**file, fresh);
  REQUIRE(w);
  REQUIRE(read_back(**w, 0, 3 * chunk.size()) == chunk + chunk + chunk);
}
