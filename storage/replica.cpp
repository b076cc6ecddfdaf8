// storage/replica.cpp — the map's replica in the object store (see replica.hpp).
#include "storage/replica.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/sys.hpp"

namespace bp::storage {

namespace {

constexpr std::uint64_t kWalRoll = 4u << 20;  // WAL bytes that make the next ship truncate it
constexpr std::uint64_t kWalHeader = 32;

std::string hex(std::uint64_t v, int width) {
  char b[17];
  std::snprintf(b, sizeof b, "%0*llx", width, static_cast<unsigned long long>(v));
  return b;
}

std::optional<std::uint64_t> parse_hex(const std::string& s, std::size_t width) {
  if (s.size() != width || s.find_first_not_of("0123456789abcdef") != std::string::npos) return std::nullopt;
  return std::stoull(s, nullptr, 16);
}

std::string gen_prefix(const std::string& prefix, std::uint64_t gen) { return prefix + hex(gen, 16) + "/"; }

std::string compress(const std::string& raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 3);
  out.resize(ZSTD_isError(n) ? 0 : n);
  return out;
}

Result<std::string> decompress(const std::string& z, const std::string& key) {
  auto size = ZSTD_getFrameContentSize(z.data(), z.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (4ull << 30))
    return make_error("replica object " + key + " is corrupt", EBADMSG);
  std::string out(size, '\0');
  std::size_t n = ZSTD_decompress(out.data(), out.size(), z.data(), z.size());
  if (ZSTD_isError(n) || n != size) return make_error("replica object " + key + " is corrupt", EBADMSG);
  return out;
}

// Reads bytes [from, end of file) of path (an absent file is empty).
Result<std::string> read_from(const std::string& path, std::uint64_t from) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::string();
    return sys_error("open(" + path + ")");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return sys_error("stat(" + path + ")");
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < from) return make_error(path + " shrank under the replica (" + std::to_string(size) + " < " +
                                         std::to_string(from) + ")", EIO);
  std::string out(size - from, '\0');
  if (auto s = pread_full(fd.get(), out.data(), out.size(), from); !s) return std::move(s).error();
  return out;
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

// Checks a whole WAL the way SQLite's recovery does (header magic and checksum, each
// frame's salts and cumulative checksum) and that it ends with a commit: then SQLite
// takes every frame of it. (It reports nothing useful itself: a WAL recovered at open
// counts as checkpointed already.)
Status check_wal(const std::string& wal) {
  auto b = reinterpret_cast<const unsigned char*>(wal.data());
  if (wal.size() < kWalHeader) return make_error("too short for a WAL", EBADMSG);
  std::uint32_t magic = be32(b);
  if (magic != 0x377f0682 && magic != 0x377f0683) return make_error("not a WAL (bad magic)", EBADMSG);
  bool big = magic & 1;
  std::uint32_t page = be32(b + 8);
  if (page < 512 || page > 65536 || (page & (page - 1))) return make_error("bad WAL page size", EBADMSG);
  std::uint64_t frame = 24 + page;
  if ((wal.size() - kWalHeader) % frame != 0) return make_error("WAL ends inside a frame", EBADMSG);
  std::uint32_t s0 = 0, s1 = 0;
  auto sum = [&](const unsigned char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; i += 8) {
      std::uint32_t x0, x1;
      if (big) {
        x0 = be32(p + i);
        x1 = be32(p + i + 4);
      } else {
        std::memcpy(&x0, p + i, 4);
        std::memcpy(&x1, p + i + 4, 4);
      }
      s0 += x0 + s1;
      s1 += x1 + s0;
    }
  };
  sum(b, 24);
  if (s0 != be32(b + 24) || s1 != be32(b + 28)) return make_error("WAL header checksum mismatch", EBADMSG);
  bool committed = true;
  for (std::uint64_t at = kWalHeader; at < wal.size(); at += frame) {
    const unsigned char* f = b + at;
    if (std::memcmp(f + 8, b + 16, 8) != 0) return make_error("WAL frame of another WAL (salts)", EBADMSG);
    sum(f, 8);
    sum(f + 24, page);
    if (s0 != be32(f + 16) || s1 != be32(f + 20)) return make_error("WAL frame checksum mismatch", EBADMSG);
    committed = be32(f + 4) != 0;
  }
  if (!committed) return make_error("WAL ends in the middle of a transaction", EBADMSG);
  return {};
}

// Applies one WAL to the database at path: SQLite's own recovery reads it (checking
// its checksums), and every frame must be taken.
Status apply_wal(const std::string& path, const std::string& wal, const std::string& what) {
  if (auto s = check_wal(wal); !s) return std::move(s).error().wrap(what);
  if (auto s = write_file_atomic(path + "-wal", wal, 0600); !s) return s;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  auto fail = [&](const std::string& why) {
    sqlite3_close(db);
    return make_error(what + ": " + why, EBADMSG);
  };
  if (rc != SQLITE_OK) return fail(db ? sqlite3_errmsg(db) : "open failed");
  // The first read recovers the WAL; the checkpoint folds it into the file.
  if (sqlite3_exec(db, "SELECT COUNT(*) FROM sqlite_master", nullptr, nullptr, nullptr) != SQLITE_OK)
    return fail(sqlite3_errmsg(db));
  if (sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr) != SQLITE_OK)
    return fail(sqlite3_errmsg(db));
  if (sqlite3_close(db) != SQLITE_OK) return make_error(what + ": close failed", EIO);
  return {};
}

}  // namespace

// The WAL folded into the file (and emptied) begins WAL index index_ (the next one
// with next_index); the file is uploaded as its snapshot. Until that upload succeeds,
// snapshot_due_ stays set and ship() tries again first: the WAL written meanwhile is
// folded in too, and no piece of the index goes up before its snapshot.
Status Replica::snapshot(bool next_index) {
  if (next_index) ++index_;
  offset_ = 0;
  salts_.clear();
  snapshot_due_ = true;
  if (auto s = db_.checkpoint_wal(); !s) return s;
  auto file = read_from(path_, 0);
  if (!file) return std::move(file).error();
  std::string key = gen_prefix(prefix_, gen_) + "snapshot/" + hex(index_, 8);
  if (auto r = store_.put(key, compress(*file)); !r) return std::move(r).error().wrap("replica snapshot");
  snapshot_due_ = false;
  snapshot_bytes_ = file->size();
  since_snapshot_ = 0;
  // What came before the snapshot is not needed any more: older snapshots and WAL of
  // this generation, and every older generation.
  auto listed = store_.list(prefix_);
  if (!listed) return {};  // cleaned up at the next snapshot
  std::vector<std::string> old;
  for (const auto& o : *listed) {
    std::string rest = o.key.substr(prefix_.size());
    auto g = parse_hex(rest.substr(0, 16), 16);
    if (!g) continue;
    if (*g < gen_) {
      old.push_back(o.key);
      continue;
    }
    if (*g != gen_) continue;
    auto slash = rest.find('/', 17);
    std::string kind = rest.substr(17, slash == std::string::npos ? std::string::npos : slash - 17);
    auto idx = parse_hex(rest.substr(slash + 1, 8), 8);
    if (idx && *idx < index_ && (kind == "snapshot" || kind == "wal")) old.push_back(o.key);
  }
  if (!old.empty())
    if (auto s = store_.remove(old); !s) Logger("storage.replica").warn("old replica objects stay", {{"error", s.error().what}});
  return {};
}

Status Replica::start(std::uint64_t gen) {
  gen_ = gen;
  index_ = 0;
  return snapshot(false);
}

Status Replica::ship() {
  if (snapshot_due_) return snapshot(false);
  auto bytes = read_from(path_ + "-wal", offset_);
  if (!bytes) return std::move(bytes).error().wrap("replica");
  // A WAL SQLite restarted by itself (new salts: a checkpoint of ours that it finished
  // after reporting BUSY) is not the one shipped so far: begin an index with a snapshot.
  if (auto head = read_from(path_ + "-wal", 0); head && head->size() >= kWalHeader) {
    std::string salts = head->substr(16, 8);
    if (offset_ > 0 && !salts_.empty() && salts != salts_) {
      Logger("storage.replica").warn("the WAL restarted under the replica: a new snapshot", {{"index", index_}});
      return snapshot(true);
    }
    salts_ = salts;
  }
  // Only whole transactions: frames past the last commit are a rolled-back
  // transaction's spill (SQLite writes over them from the last commit).
  auto upto = committed_prefix(*bytes);
  if (!upto) return std::move(upto).error().wrap("replica");
  bytes->resize(*upto);
  if (!bytes->empty()) {
    std::string key = gen_prefix(prefix_, gen_) + "wal/" + hex(index_, 8) + "/" + hex(offset_, 16);
    if (auto r = store_.put(key, compress(*bytes)); !r) return std::move(r).error().wrap("replica WAL");
    offset_ += bytes->size();
    since_snapshot_ += bytes->size();
  }
  if (offset_ < kWalRoll) return {};
  // The WAL is shipped whole: fold it into the file and begin the next index.
  if (since_snapshot_ > std::max<std::uint64_t>(snapshot_bytes_, kWalRoll * 4)) return snapshot(true);
  if (auto s = db_.checkpoint_wal(); !s) {
    // SQLite may still finish it and restart the WAL: what follows starts afresh.
    ++index_;
    offset_ = 0;
    salts_.clear();
    snapshot_due_ = true;
    return s;
  }
  ++index_;
  offset_ = 0;
  salts_.clear();
  return {};
}

// The bytes of wal[...] (the WAL from offset_ on) that end at its last commit frame of
// the current WAL (its header's salts; the header is read at offset 0).
Result<std::uint64_t> Replica::committed_prefix(const std::string& tail) {
  std::string header;
  if (offset_ == 0) {
    header = tail.substr(0, std::min<std::size_t>(tail.size(), kWalHeader));
  } else {
    auto h = read_from(path_ + "-wal", 0);
    if (!h) return std::move(h).error();
    header = h->substr(0, std::min<std::size_t>(h->size(), kWalHeader));
  }
  if (header.size() < kWalHeader) return std::uint64_t{0};
  auto hb = reinterpret_cast<const unsigned char*>(header.data());
  std::uint64_t frame = 24 + be32(hb + 8);
  std::uint64_t at = offset_ == 0 ? kWalHeader : 0, end = 0;
  for (; at + frame <= tail.size(); at += frame) {
    auto f = reinterpret_cast<const unsigned char*>(tail.data() + at);
    if (std::memcmp(f + 8, hb + 16, 8) != 0) break;  // not of this WAL: stale bytes
    if (be32(f + 4) != 0) end = at + frame;
  }
  return end;
}

Result<ReplicaGenerations> replica_generations(ObjectStore& store, const std::string& prefix) {
  auto listed = store.list(prefix);
  if (!listed) return std::move(listed).error().wrap("list the map's replica");
  ReplicaGenerations g;
  for (const auto& o : *listed) {
    std::string rest = o.key.substr(prefix.size());
    auto gen = parse_hex(rest.substr(0, 16), 16);
    if (!gen) continue;
    g.highest = std::max(g.highest, *gen);
    if (rest.compare(16, 10, "/snapshot/") == 0) g.newest = std::max(g.newest.value_or(0), *gen);
  }
  return g;
}

Status restore_replica(ObjectStore& store, const std::string& prefix, std::uint64_t gen, const std::string& db_path) {
  std::string gp = gen_prefix(prefix, gen);
  auto listed = store.list(gp);
  if (!listed) return std::move(listed).error().wrap("restore the map: list " + gp);
  std::optional<std::uint64_t> snap;
  std::map<std::uint64_t, std::map<std::uint64_t, std::string>> wal;  // index -> offset -> key
  for (const auto& o : *listed) {
    std::string rest = o.key.substr(gp.size());
    if (rest.rfind("snapshot/", 0) == 0) {
      if (auto i = parse_hex(rest.substr(9), 8)) snap = std::max(snap.value_or(0), *i);
    } else if (rest.rfind("wal/", 0) == 0 && rest.size() == 4 + 8 + 1 + 16) {
      auto i = parse_hex(rest.substr(4, 8), 8);
      auto off = parse_hex(rest.substr(13), 16);
      if (i && off) wal[*i][*off] = o.key;
    }
  }
  if (!snap) return make_error("restore the map: generation " + std::to_string(gen) + " has no snapshot", ENOENT);
  // A name of its own: clones opened at once may restore the same base side by side.
  static std::atomic<std::uint64_t> serial{0};
  std::string tmp = db_path + ".restoring." + std::to_string(::getpid()) + "." + std::to_string(serial++);
  for (const char* ext : {"", "-wal", "-shm"}) ::unlink((tmp + ext).c_str());
  std::string key = gp + "snapshot/" + hex(*snap, 8);
  auto z = store.get(key);
  if (!z) return std::move(z).error().wrap("restore the map: " + key);
  auto file = decompress(*z, key);
  if (!file) return std::move(file).error();
  if (auto s = write_file_atomic(tmp, *file, 0600); !s) return s;
  std::uint64_t expect = *snap;
  for (const auto& [index, pieces] : wal) {
    if (index < *snap) continue;
    if (index != expect++)
      return make_error("restore the map: WAL index " + std::to_string(expect - 1) + " is missing", EBADMSG);
    std::string bytes;
    for (const auto& [off, k] : pieces) {
      if (off != bytes.size())
        return make_error("restore the map: WAL index " + std::to_string(index) + " has a gap at byte " +
                              std::to_string(bytes.size()) + " (next piece " + k + ")",
                          EBADMSG);
      auto piece = store.get(k);
      if (!piece) return std::move(piece).error().wrap("restore the map: " + k);
      auto raw = decompress(*piece, k);
      if (!raw) return std::move(raw).error();
      bytes += *raw;
    }
    if (auto s = apply_wal(tmp, bytes, "restore the map: WAL index " + std::to_string(index)); !s) return s;
  }
  for (const char* ext : {"-wal", "-shm"}) ::unlink((tmp + ext).c_str());
  if (::rename(tmp.c_str(), db_path.c_str()) != 0) return sys_error("rename(" + db_path + ")");
  return {};
}

}  // namespace bp::storage
