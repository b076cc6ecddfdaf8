// storage/volume.cpp — the volume engine (see volume.hpp).
//
// Locks: write_mu_ serialises writers (journal appends are sequential) and is taken by
// the flusher only to rotate the active journal file, so a writer never appends to a
// file that is already being packed. mu_ guards the maps, the journal file list and the
// counters; readers hold it only to resolve where blocks are, never across I/O. db_mu
// guards the map db, its replica and the head generation. Lock order: write_mu, db_mu,
// mu. cache_mu is a leaf.
//
// The lease: the volume is opened under a new lease epoch E; its segments are numbered
// from E << 40, so every key it writes carries E, and the map db records E. Writes and
// uploads stop while the lease is not known to be held (valid_until), and for good when
// another writer took it.
#include "storage/volume.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sys/random.h>
#include <thread>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/sys.hpp"
#include "storage/extent_map.hpp"
#include "storage/journal.hpp"
#include "storage/lease.hpp"
#include "storage/map_db.hpp"
#include "storage/replica.hpp"
#include "storage/segment.hpp"

namespace bp::storage {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

Result<Durability> parse_durability(const std::string& s) {
  if (s == "strict") return Durability::strict;
  if (s == "local") return Durability::local;
  return make_error("durability must be strict or local, not '" + s + "'", EINVAL);
}

namespace {

constexpr std::uint64_t kSegmentTarget = 8u << 20;  // raw bytes per segment
constexpr std::uint64_t kRotateMax = 32u << 20;     // journal file size that starts a new one
constexpr std::uint64_t kReadPiece = 1u << 20;      // journal bytes packed at a time
constexpr std::size_t kReplayWindow = 256;          // segment indexes per map transaction
constexpr std::size_t kReplayFetchers = 16;         // parallel GETs of segment indexes
constexpr int kEpochShift = 40;                     // seq = epoch << 40 | count

std::string hex16(std::uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

std::string volume_key(const std::string& name, const std::string& rest) { return "volumes/" + name + "/" + rest; }

bool valid_volume_name(const std::string& n) {
  if (n.empty() || n.size() > 100) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  }) && n.front() != '.';
}

Status mkdir_p(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("mkdir(" + path + ")");
  return {};
}

// A journal file. Readers keep it alive through a shared_ptr, so one that is deleted
// after its upload can still be read by a request that resolved to it a moment before.
struct JFile {
  std::uint64_t id = 0;
  UniqueFd fd;
  std::uint64_t size = 0;    // bytes of good records
  std::uint64_t synced = 0;  // bytes an fdatasync covered
};

std::string now_rfc3339() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

// This machine's lease holder id for a volume dir: made once, kept in the dir.
Result<std::string> holder_of(const std::string& dir) {
  std::string path = dir + "/holder";
  if (auto h = read_file(path); h && !h->empty()) return *h;
  unsigned char r[8] = {};
  if (::getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) return sys_error("getrandom");
  char host[64] = "?";
  ::gethostname(host, sizeof host - 1);
  std::string id = std::string(host) + "/";
  for (unsigned char c : r) id += "0123456789abcdef"[c >> 4], id += "0123456789abcdef"[c & 15];
  if (auto s = write_file_atomic(path, id, 0600); !s) return std::move(s).error();
  return id;
}

// Parses "…/data/<16 hex>" into the seq.
std::optional<std::uint64_t> seq_of_key(const std::string& key) {
  auto slash = key.rfind('/');
  std::string tail = key.substr(slash == std::string::npos ? 0 : slash + 1);
  if (tail.size() != 16 || tail.find_first_not_of("0123456789abcdef") != std::string::npos) return std::nullopt;
  return std::stoull(tail, nullptr, 16);
}

}  // namespace

struct Volume::Impl {
  ObjectStore& store;
  VolumeOptions o;
  Logger log{"storage.volume"};
  UniqueFd dir_lock;  // flock on DIR/lock: one open of a state directory at a time
  std::optional<Lease> lease;
  std::mutex db_mu;
  std::unique_ptr<MapDb> db;
  std::unique_ptr<Replica> replica;
  std::uint64_t gen = 1;  // the head generation
  bool gen_unshipped = false;  // a checkpoint or restore the replica does not have yet
  std::uint64_t size = 0;
  std::vector<std::string> sources;  // src id -> volume name (0 = this one)
  std::string journal_dir, cache_dir;
  std::uint64_t rotate_at = kRotateMax;

  std::mutex write_mu;
  std::mutex mu;
  std::condition_variable cv;  // flusher wake-ups, room in the journal, applied files
  ExtentMap clean;  // uploaded blocks (the map)
  ExtentMap base;   // a clone's: its parent's map (src 1), under all of its generations
  ExtentMap dirty;  // blocks still in the journal (over clean)
  std::shared_ptr<JFile> active;
  std::deque<std::shared_ptr<JFile>> sealed;  // waiting for upload, oldest first
  std::uint64_t journal_bytes = 0;
  std::uint64_t next_journal = 1, applied_journal = 0;
  std::uint64_t next_seq = 1, applied_seq = 0;
  Clock::time_point active_since{};  // first write into the active file
  bool dir_dirty = false;            // journal/ has a file its directory has not synced
  bool seal_requested = false, stopping = false, closed = false;
  Clock::time_point stop_deadline{};
  std::string last_error;  // the flusher's last failure, for the errors of flush()
  VolumeStats st;
  std::thread flusher;
  Clock::time_point ship_at = Clock::time_point::max();  // when the map's WAL is due in the store

  // Maintenance (flusher thread): compaction and garbage collection.
  Clock::time_point next_maintain{};
  std::uint64_t maintain_asked = 0, maintain_done = 0;  // passes requested by maintain(), and run
  std::string maintain_error;                           // the last pass's failure
  std::map<std::uint64_t, std::uint64_t> seg_blocks;    // seq -> data blocks it holds (its index)
  std::map<std::uint64_t, Clock::time_point> unreferenced;  // seq -> first seen unreferenced
  std::set<const ExtentMap*> views;  // maps of live checkpoint views (under mu): GC keeps what they name

  std::mutex lease_mu;
  std::condition_variable lease_cv;
  bool leaser_stop = false;
  std::string lease_error;  // the last renewal's failure (under mu)
  std::thread leaser;

  std::mutex cache_mu;
  struct CacheFile {
    std::uint64_t bytes = 0, used = 0;
  };
  std::map<std::string, CacheFile> cache_files;
  std::uint64_t cache_bytes = 0, cache_tick = 0;

  Impl(ObjectStore& s, VolumeOptions opts) : store(s), o(std::move(opts)) {}

  std::string data_key(std::uint32_t src, std::uint64_t seq) const {
    return volume_key(sources.at(src), "data/" + hex16(seq));
  }

  // ---- opening -----------------------------------------------------------------

  Status open_manifest() {
    std::string key = volume_key(o.name, "volume.json");
    auto got = store.get(key);
    if (!got && got.error().code == ENOENT) {
      if (!o.create)
        return make_error("volume " + o.name + " is not in the object store " + store.url() +
                              " (refusing to start it as a new empty disk)",
                          ENOENT);
      json m = {{"format", 1}, {"size", o.size}, {"block_size", kBlock}};
      if (!o.parent.empty()) m["parent"] = {{"volume", o.parent}, {"seq", o.parent_seq}};
      auto put = store.put(key, m.dump() + "\n", PutIf::none_match());
      if (!put && put.error().code != EEXIST) return std::move(put).error().wrap("create volume " + o.name);
      got = store.get(key);
    }
    if (!got) return std::move(got).error().wrap("volume " + o.name + ": object store " + store.url());
    json m = json::parse(*got, nullptr, false);
    if (m.is_discarded() || !m.is_object() || !m.contains("size") || !m["size"].is_number_unsigned())
      return make_error("volume " + o.name + ": its manifest " + key + " is not valid", EBADMSG);
    size = m["size"].get<std::uint64_t>();
    if (size == 0 || size % kBlock != 0) return make_error("volume " + o.name + ": bad size in manifest", EBADMSG);
    sources = {o.name};
    if (m.contains("parent") && m["parent"].is_object()) {
      o.parent = m["parent"].value("volume", "");
      o.parent_seq = m["parent"].value("seq", std::uint64_t{0});
      if (!valid_volume_name(o.parent)) return make_error("volume " + o.name + ": bad parent in manifest", EBADMSG);
      sources.push_back(o.parent);
    } else {
      o.parent.clear();
    }
    return {};
  }

  // Reads a segment's header and index.
  Result<SegmentIndex> fetch_index(const std::string& key) {
    auto head = store.get(key, 0, 64 * 1024);
    if (!head) return std::move(head).error();
    auto len = segment_index_length(*head);
    if (!len) return std::move(len).error().wrap(key);
    if (head->size() < kSegmentHeader + *len) {
      head = store.get(key, 0, kSegmentHeader + *len);
      if (!head) return std::move(head).error();
    }
    auto idx = decode_segment_index(*head);
    if (!idx) return std::move(idx).error().wrap(key);
    return idx;
  }

  // Applies volume `vol`'s complete journal files whose segments are in (after, upto]
  // to the map as source src. Returns the highest seq seen at all (a new segment must
  // not reuse it, even one of an incomplete file). Indexes are fetched kReplayWindow at a
  // time by parallel GETs, and each window is one map transaction.
  Result<std::uint64_t> replay(const std::string& vol, std::uint32_t src, std::uint64_t after,
                               std::optional<std::uint64_t> upto) {
    auto listed = store.list(volume_key(vol, "data/"));
    if (!listed) return std::move(listed).error().wrap("list segments of " + vol);
    std::uint64_t max_seq = 0;
    std::vector<std::pair<std::uint64_t, std::string>> todo;
    for (const auto& obj : *listed) {
      auto seq = seq_of_key(obj.key);
      if (!seq) continue;
      max_seq = std::max(max_seq, *seq);
      if (*seq > after && (!upto || *seq <= *upto)) todo.emplace_back(*seq, obj.key);
    }
    std::vector<SegmentIndex> group;
    std::uint64_t journal_applied = db->get_u64("journal_applied");
    for (std::size_t w = 0; w < todo.size(); w += kReplayWindow) {
      std::size_t n = std::min(kReplayWindow, todo.size() - w);
      std::vector<Result<SegmentIndex>> idxs(n);
      std::atomic<std::size_t> next{0};
      std::vector<std::thread> fetchers;
      for (std::size_t t = 0; t < std::min(kReplayFetchers, n); ++t)
        fetchers.emplace_back([&] {
          for (std::size_t i; (i = next++) < n;) idxs[i] = fetch_index(todo[w + i].second);
        });
      for (auto& t : fetchers) t.join();

      std::vector<MapDb::Update> ups;
      std::vector<std::pair<std::string, std::string>> vals;
      for (std::size_t i = 0; i < n; ++i) {
        auto& [seq, key] = todo[w + i];
        auto& idx = idxs[i];
        if (!idx) return std::move(idx).error().wrap("replay " + vol);
        if (idx->seq != seq) return make_error("replay " + vol + ": " + key + " says it is seq " + std::to_string(idx->seq), EBADMSG);
        if (idx->journal == 0) continue;  // compaction's: moves old blocks, is not a write
        // A journal file's parts have consecutive seqs; anything else is the remains of an
        // upload a crash cut short, superseded by a later complete one.
        bool follows = !group.empty() && group.back().seq + 1 == idx->seq && idx->part == group.size() &&
                       idx->parts == group.front().parts && idx->journal == group.front().journal;
        if (idx->part == 0) {
          group.clear();
        } else if (!follows) {
          log.warn("skipping the segment of an interrupted upload", {{"volume", vol}, {"seq", seq}});
          group.clear();
          continue;
        }
        group.push_back(std::move(*idx));
        if (group.size() < group.front().parts) continue;
        for (const auto& seg : group)
          for (const auto& e : seg.entries)
            ups.push_back(e.trim ? MapDb::Update{e.lba, e.blocks, Loc{}}
                                 : MapDb::Update{e.lba, e.blocks, Loc{Loc::object, src, seg.seq, 0, e.frame_off,
                                                                      e.frame_len, e.lba, e.blocks}});
        if (src == 0) {
          vals = {{"applied_seq", std::to_string(group.back().seq)}};
          journal_applied = std::max(journal_applied, group.front().journal);
          vals.push_back({"journal_applied", std::to_string(journal_applied)});
        }
        group.clear();
      }
      if (!ups.empty() || !vals.empty())
        if (auto s = db->apply(gen, ups, vals); !s) return std::move(s).error();
    }
    return max_seq;
  }

  std::string meta_prefix() const { return volume_key(o.name, "meta/"); }

  // Forgets the local map and journal (a newer writer's replica supersedes them).
  void drop_local_state() {
    for (const char* ext : {"", "-wal", "-shm"}) ::unlink((o.dir + "/map.db" + ext).c_str());
    if (DIR* d = ::opendir(journal_dir.c_str())) {
      while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') ::unlinkat(::dirfd(d), e->d_name, 0);
      ::closedir(d);
    }
  }

  // A clone's base: the parent's map from a local copy of its replica (fetched once per
  // bases_dir). False: the parent has no replica (made before replicas existed).
  Result<bool> load_base() {
    std::string dir = o.bases_dir.empty() ? o.dir : o.bases_dir;
    std::string path = dir + "/" + o.parent + ".db";
    if (::access(path.c_str(), F_OK) != 0) {
      auto gens = replica_generations(store, volume_key(o.parent, "meta/"));
      if (!gens) return std::move(gens).error().wrap("base " + o.parent);
      if (!gens->newest) return false;
      if (auto s = mkdir_p(dir); !s) return std::move(s).error();
      if (auto s = restore_replica(store, volume_key(o.parent, "meta/"), *gens->newest, path); !s)
        return std::move(s).error().wrap("base " + o.parent);
    }
    auto b = MapDb::open(path);
    if (!b) return std::move(b).error().wrap("base " + o.parent);
    auto h = (*b)->head();
    if (!h) return std::move(h).error();
    if ((*b)->get_u64("applied_seq") != o.parent_seq)
      return make_error("base " + o.parent + ": its map ends at segment " + std::to_string((*b)->get_u64("applied_seq")) +
                            ", not at " + std::to_string(o.parent_seq) + " where it was sealed",
                        EBADMSG);
    auto m = (*b)->load(*h);
    if (!m) return std::move(m).error();
    for (auto& [lba, run] : m->runs()) run.loc.src = 1;
    base = std::move(*m);
    return true;
  }

  // The map: the local db when it is current, else the replica's newest generation,
  // else (no replica at all) rebuilt from the segments. A replica that exists but cannot
  // be restored is an error: never an empty or older map in place of the user's.
  Status open_db(const ReplicaGenerations& gens) {
    if (auto s = mkdir_p(o.dir); !s) return s;
    journal_dir = o.dir + "/journal";
    cache_dir = o.dir + "/cache";
    for (const auto& d : {journal_dir, cache_dir})
      if (auto s = mkdir_p(d); !s) return s;
    std::string path = o.dir + "/map.db";
    if (::access(path.c_str(), F_OK) == 0) {
      auto d = MapDb::open(path);
      if (!d) return std::move(d).error();
      auto known = (*d)->get("name");
      std::uint64_t local_epoch = (*d)->get_u64("epoch");
      if (known && *known != o.name) return make_error(o.dir + " holds volume " + *known + ", not " + o.name, EINVAL);
      if (known && gens.newest && *gens.newest > local_epoch) {
        log.warn("the local map is older than the replica of a later writer: replaced by it",
                 {{"volume", o.name}, {"local_epoch", local_epoch}, {"replica_epoch", *gens.newest}});
      } else if (known) {
        db = std::move(*d);
      }
      if (!db) {
        d->reset();
        drop_local_state();
      }
    }
    bool fresh = false;
    if (!db) {
      if (gens.newest) {
        if (auto s = restore_replica(store, meta_prefix(), *gens.newest, path); !s)
          return std::move(s).error().wrap("restore failed (the disk is not started without its map)");
        log.info("map restored from the object store", {{"volume", o.name}, {"generation", *gens.newest}});
      } else {
        fresh = true;
      }
      auto d = MapDb::open(path);
      if (!d) return std::move(d).error();
      db = std::move(*d);
      if (!fresh && db->get("name") != o.name)
        return make_error("restore failed: the replica of " + o.name + " holds another volume", EBADMSG);
    }
    auto g = db->head();
    if (!g) return std::move(g).error();
    gen = *g;
    if (fresh) {
      // No local state and no replica: the map comes from the segments, over the
      // parent's map for a clone (or, for a parent without a replica, the parent's
      // segments first). "name" is written last, so a crash in between starts over.
      std::vector<std::pair<std::string, std::string>> vals{
          {"name", o.name}, {"size", std::to_string(size)}, {"changed", now_rfc3339()}};
      if (!o.parent.empty()) {
        auto b = load_base();
        if (!b) return std::move(b).error();
        if (*b) {
          vals.push_back({"has_base", "1"});
        } else if (auto r = replay(o.parent, 1, 0, o.parent_seq); !r) {
          return std::move(r).error();
        }
      }
      if (auto s = db->apply(gen, {}, vals); !s) return s;
    } else if (db->get("has_base") == "1") {
      if (o.parent.empty()) return make_error("the map has a base but the manifest names no parent", EBADMSG);
      auto b = load_base();
      if (!b) return std::move(b).error();
      if (!*b) return make_error("base " + o.parent + " has no replica", ENOENT);
    }
    // Catch up with segments uploaded after the last commit (a crash in between, or a
    // writer whose replica had not shipped it yet).
    auto max_seq = replay(o.name, 0, db->get_u64("applied_seq"), std::nullopt);
    if (!max_seq) return std::move(max_seq).error();
    applied_seq = db->get_u64("applied_seq");
    applied_journal = db->get_u64("journal_applied");
    std::uint64_t epoch = lease->epoch();
    next_seq = std::max({*max_seq, applied_seq, epoch << kEpochShift}) + 1;
    if (auto s = db->apply(gen, {}, {{"epoch", std::to_string(epoch)}}); !s) return s;
    // A new generation of the replica, from a snapshot of this very map.
    replica = std::make_unique<Replica>(store, meta_prefix(), *db, path);
    if (auto s = replica->start(epoch); !s) return s;
    auto m = db->load(gen, base);
    if (!m) return std::move(m).error();
    clean = std::move(*m);
    return {};
  }

  // The journal files a crash left: what is not in the map yet goes back in dirty.
  Status open_journal() {
    std::vector<std::uint64_t> ids;
    if (DIR* d = ::opendir(journal_dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() == 16 && n.find_first_not_of("0123456789abcdef") == std::string::npos)
          ids.push_back(std::stoull(n, nullptr, 16));
      }
      ::closedir(d);
    }
    std::sort(ids.begin(), ids.end());
    next_journal = std::max(applied_journal, ids.empty() ? 0 : ids.back()) + 1;
    std::uint64_t replayed = 0;
    for (std::uint64_t id : ids) {
      std::string path = journal_dir + "/" + hex16(id);
      if (id <= applied_journal) {  // in the map already: the crash came before its deletion
        ::unlink(path.c_str());
        continue;
      }
      auto f = std::make_shared<JFile>();
      f->id = id;
      f->fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!f->fd) return sys_error("open(" + path + ")");
      auto scan = journal_scan(f->fd.get());
      if (!scan) return std::move(scan).error().wrap(path);
      if (scan->torn) log.warn("journal file ends in a torn record (a crash mid-write): dropped the tail",
                               {{"file", path}, {"kept", scan->end}});
      if (scan->records.empty()) {
        ::unlink(path.c_str());
        continue;
      }
      for (const auto& r : scan->records) {
        if (r.kind == JournalRecord::trim)
          dirty.assign(r.lba, r.blocks, Loc{Loc::zero, 0, id});
        else
          dirty.assign(r.lba, r.blocks,
                       Loc{Loc::journal, 0, id, static_cast<std::int64_t>(r.data_offset) - static_cast<std::int64_t>(r.lba * kBlock)});
      }
      f->size = f->synced = scan->end;
      journal_bytes += f->size;
      sealed.push_back(std::move(f));
      ++replayed;
    }
    if (replayed) log.info("journal replayed", {{"volume", o.name}, {"files", replayed}, {"bytes", journal_bytes}});
    return new_active();
  }

  Status new_active() {
    auto f = std::make_shared<JFile>();
    f->id = next_journal++;
    std::string path = journal_dir + "/" + hex16(f->id);
    f->fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!f->fd) return sys_error("create(" + path + ")");
    active = std::move(f);
    dir_dirty = true;
    return {};
  }

  void load_cache_index() {
    if (DIR* d = ::opendir(cache_dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        struct stat s {};
        std::string p = cache_dir + "/" + e->d_name;
        if (::stat(p.c_str(), &s) != 0) continue;
        auto bytes = static_cast<std::uint64_t>(s.st_blocks) * 512;
        cache_files[e->d_name] = {bytes, 0};
        cache_bytes += bytes;
      }
      ::closedir(d);
    }
  }

  // ---- writing -----------------------------------------------------------------

  // Waits (outside write_mu, so the flusher can still rotate) while the journal is full
  // or the lease is not known to be held; fails once another writer has taken it.
  Status wait_for_room() {
    std::unique_lock lk(mu);
    for (;;) {
      if (stopping) return make_error("volume " + o.name + " is closing", EIO);
      if (lease->lost()) {
        lk.unlock();
        return lease_failure();
      }
      bool room = journal_bytes < o.journal_limit;
      if (room && lease_ok()) return {};
      if (room)  // the lease: its validity is a time, so look again soon
        cv.wait_for(lk, std::chrono::milliseconds(100));
      else
        cv.wait(lk);
    }
  }

  // Appends whole blocks; the caller holds write_mu.
  Status append(std::uint64_t lba, std::span<const char> data) {
    std::shared_ptr<JFile> f;
    {
      std::lock_guard lk(mu);
      f = active;
    }
    auto end = journal_append_write(f->fd.get(), f->size, lba, data);
    if (!end) return std::move(end).error().wrap("volume " + o.name);
    std::lock_guard lk(mu);
    auto data_off = static_cast<std::int64_t>(f->size + kJournalHeader);
    dirty.assign(lba, data.size() / kBlock, Loc{Loc::journal, 0, f->id, data_off - static_cast<std::int64_t>(lba * kBlock)});
    note_append(*end - f->size);
    f->size = *end;
    st.bytes_written += data.size();
    return maybe_rotate();
  }

  Status append_trim(std::uint64_t lba, std::uint64_t blocks) {
    std::shared_ptr<JFile> f;
    {
      std::lock_guard lk(mu);
      f = active;
    }
    auto end = journal_append_trim(f->fd.get(), f->size, lba, blocks);
    if (!end) return std::move(end).error().wrap("volume " + o.name);
    std::lock_guard lk(mu);
    dirty.assign(lba, blocks, Loc{Loc::zero, 0, f->id});
    note_append(*end - f->size);
    f->size = *end;
    return maybe_rotate();
  }

  void note_append(std::uint64_t bytes) {
    if (active->size == 0) active_since = Clock::now();
    journal_bytes += bytes;
    cv.notify_all();
  }

  // With mu held: a full active file is sealed and a new one started.
  Status maybe_rotate() {
    if (active->size < rotate_at) return {};
    return rotate();
  }

  Status rotate() {
    if (active->size == 0) return {};
    sealed.push_back(active);
    cv.notify_all();
    return new_active();
  }

  // Whole blocks [first, first + n) with data patched in at byte `skip` of the first.
  Status write_patched(std::uint64_t offset, std::span<const char> data) {
    std::uint64_t first = offset / kBlock, last = (offset + data.size() - 1) / kBlock;
    std::string buf((last - first + 1) * kBlock, '\0');
    if (offset % kBlock != 0)
      if (auto s = read_blocks(first, 1, buf.data()); !s) return s;
    if ((offset + data.size()) % kBlock != 0 && (last != first || offset % kBlock == 0))
      if (auto s = read_blocks(last, 1, buf.data() + (last - first) * kBlock); !s) return s;
    std::memcpy(buf.data() + offset % kBlock, data.data(), data.size());
    return append(first, buf);
  }

  // ---- reading -----------------------------------------------------------------

  struct Piece {
    std::uint64_t lba, n;
    Loc loc;  // zero when unmapped
    std::shared_ptr<JFile> file;
  };

  std::shared_ptr<JFile> file_of(std::uint64_t id) {
    if (active && active->id == id) return active;
    for (auto& f : sealed)
      if (f->id == id) return f;
    return nullptr;
  }

  Status read_blocks(std::uint64_t lba, std::uint64_t n, char* out) {
    std::vector<Piece> pieces;
    {
      std::lock_guard lk(mu);
      dirty.visit(lba, n, [&](std::uint64_t a, std::uint64_t len, const Loc* l) {
        if (l) {
          pieces.push_back({a, len, *l, l->kind == Loc::journal ? file_of(l->id) : nullptr});
          return;
        }
        clean.visit(a, len, [&](std::uint64_t b, std::uint64_t blen, const Loc* cl) {
          pieces.push_back({b, blen, cl ? *cl : Loc{}, nullptr});
        });
      });
    }
    for (const auto& p : pieces) {
      char* dst = out + (p.lba - lba) * kBlock;
      switch (p.loc.kind) {
        case Loc::zero:
          std::memset(dst, 0, p.n * kBlock);
          break;
        case Loc::journal: {
          if (!p.file) return make_error("volume " + o.name + ": journal file " + hex16(p.loc.id) + " is gone", EIO);
          auto at = static_cast<std::uint64_t>(p.loc.delta + static_cast<std::int64_t>(p.lba * kBlock));
          if (auto s = pread_full(p.file->fd.get(), dst, p.n * kBlock, at); !s)
            return std::move(s).error().wrap("volume " + o.name + ": read journal");
          break;
        }
        case Loc::object: {
          auto frame = get_frame(p.loc);
          if (!frame) return std::move(frame).error();
          std::memcpy(dst, frame->data() + (p.lba - p.loc.frame_lba) * kBlock, p.n * kBlock);
          break;
        }
      }
    }
    return {};
  }

  std::string cache_name(const Loc& l) const { return std::to_string(l.src) + "-" + hex16(l.id); }

  void touch_cache(const std::string& name, std::uint64_t added) {
    std::lock_guard lk(cache_mu);
    auto& c = cache_files[name];
    c.bytes += added;
    c.used = ++cache_tick;
    cache_bytes += added;
    while (cache_bytes > o.cache_limit && cache_files.size() > 1) {
      auto oldest = std::min_element(cache_files.begin(), cache_files.end(),
                                     [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
      if (oldest->first == name) break;
      ::unlink((cache_dir + "/" + oldest->first).c_str());
      cache_bytes -= std::min(cache_bytes, oldest->second.bytes);
      cache_files.erase(oldest);
    }
  }

  // A frame, decoded: from the cache file if it holds a good copy, else from the store
  // (with read-ahead), which then goes into the cache. A bad copy in the cache (a torn
  // write, a flipped bit, a hole) fails its checksum and is fetched again.
  Result<std::string> get_frame(const Loc& l) {
    std::string name = cache_name(l);
    std::string path = cache_dir + "/" + name;
    std::string raw(l.frame_len, '\0');
    if (UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)); fd) {
      if (pread_full(fd.get(), raw.data(), raw.size(), l.frame_off)) {
        auto out = decode_frame(raw, l.frame_blocks);
        if (out) {
          touch_cache(name, 0);
          return out;
        }
      }
    }
    std::uint64_t want = std::max<std::uint64_t>(l.frame_len, o.readahead);
    auto got = store.get(data_key(l.src, l.id), l.frame_off, want);
    if (!got) return std::move(got).error().wrap("volume " + o.name + ": read " + data_key(l.src, l.id));
    if (got->size() < l.frame_len) return make_error("volume " + o.name + ": " + data_key(l.src, l.id) + " is truncated", EIO);
    auto out = decode_frame(std::span<const char>(got->data(), l.frame_len), l.frame_blocks);
    if (!out) return make_error("volume " + o.name + ": " + data_key(l.src, l.id) + " is corrupt in the object store: " + out.error().what, EIO);
    if (UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600)); fd)
      if (pwrite_full(fd.get(), got->data(), got->size(), l.frame_off)) touch_cache(name, got->size());
    return out;
  }

  // ---- the flusher ---------------------------------------------------------------

  bool lease_ok() const { return !lease->lost() && Clock::now() < lease->valid_until(); }

  Error lease_failure() {
    std::lock_guard lk(mu);
    if (lease->lost())
      return make_error("volume " + o.name + ": another writer took over its lease; this one stops writing", EIO);
    return make_error("volume " + o.name + ": its lease could not be renewed (" +
                          (lease_error.empty() ? std::string("no answer") : lease_error) + "); writes wait for it",
                      EIO);
  }

  // Packs one sealed journal file into segments, uploads them, then commits the map.
  Status pack(const std::shared_ptr<JFile>& f) {
    if (!lease_ok()) return lease_failure();
    {
      // No segment goes up on top of a checkpoint or restore the replica lacks: a
      // restore elsewhere would replay it onto the generation before.
      std::lock_guard dl(db_mu);
      if (gen_unshipped)
        if (auto s = ship_locked(); !s) return s;
    }
    if (f->synced < f->size) {
      if (::fdatasync(f->fd.get()) != 0) return sys_error("fdatasync(journal)");
      std::lock_guard lk(mu);
      f->synced = f->size;
    }
    std::vector<std::pair<std::uint64_t, ExtentMap::Run>> runs;
    {
      std::lock_guard lk(mu);
      for (const auto& [lba, r] : dirty.runs())
        if (r.loc.kind != Loc::object && r.loc.id == f->id) runs.emplace_back(lba, r);
    }
    std::vector<std::unique_ptr<SegmentBuilder>> segs;
    segs.push_back(std::make_unique<SegmentBuilder>());
    std::string buf;
    for (const auto& [lba, r] : runs) {
      if (segs.back()->raw_bytes() >= kSegmentTarget) segs.push_back(std::make_unique<SegmentBuilder>());
      if (r.loc.kind == Loc::zero) {
        segs.back()->add_trim(lba, r.len);
        continue;
      }
      for (std::uint64_t b = 0; b < r.len;) {
        std::uint64_t n = std::min<std::uint64_t>(r.len - b, kReadPiece / kBlock);
        buf.resize(n * kBlock);
        auto at = static_cast<std::uint64_t>(r.loc.delta + static_cast<std::int64_t>((lba + b) * kBlock));
        if (auto s = pread_full(f->fd.get(), buf.data(), buf.size(), at); !s) return std::move(s).error().wrap("pack journal");
        segs.back()->add_data(lba + b, buf);
        b += n;
        if (b < r.len && segs.back()->raw_bytes() >= kSegmentTarget) segs.push_back(std::make_unique<SegmentBuilder>());
      }
    }
    if (segs.back()->empty() && segs.size() > 1) segs.pop_back();
    bool nothing = segs.size() == 1 && segs[0]->empty();  // all of it overwritten later

    std::vector<MapDb::Update> ups;
    std::uint64_t first = next_seq, last = applied_seq;
    if (!nothing) {
      auto parts = static_cast<std::uint32_t>(segs.size());
      // Taken before any upload: a retry after a failed part packs the journal file
      // anew (later writes may have changed it) under new seqs, never over objects an
      // earlier attempt left (replay skips such an incomplete group; GC collects it).
      next_seq = first + parts;
      for (std::uint32_t i = 0; i < parts; ++i) {
        std::uint64_t seq = first + i;
        std::string obj = segs[i]->finish(seq, i, parts, f->id);
        if (!lease_ok()) return lease_failure();
        if (auto s = upload(seq, obj); !s) return s;
        for (const auto& e : segs[i]->entries())
          ups.push_back(e.trim ? MapDb::Update{e.lba, e.blocks, Loc{}}
                               : MapDb::Update{e.lba, e.blocks, Loc{Loc::object, 0, seq, 0, e.frame_off, e.frame_len, e.lba, e.blocks}});
      }
      last = first + parts - 1;
    }
    std::unique_lock dl(db_mu);
    if (!lease_ok()) return lease_failure();
    if (auto s = db->apply(gen, ups, {{"applied_seq", std::to_string(last)}, {"journal_applied", std::to_string(f->id)}}); !s)
      return s;
    {
      std::lock_guard lk(mu);
      if (ship_at == Clock::time_point::max()) ship_at = Clock::now() + o.sync_interval;
      for (const auto& u : ups) {
        if (u.loc.kind == Loc::object)
          clean.assign(u.lba, u.blocks, u.loc);
        else
          clean.erase(u.lba, u.blocks);
      }
      auto& rs = dirty.runs();
      for (auto it = rs.begin(); it != rs.end();)
        it = (it->second.loc.kind != Loc::object && it->second.loc.id == f->id) ? rs.erase(it) : std::next(it);
      journal_bytes -= f->size;
      sealed.pop_front();
      applied_journal = f->id;
      applied_seq = last;
      st.applied_seq = last;
      cv.notify_all();
    }
    ::unlink((journal_dir + "/" + hex16(f->id)).c_str());
    return {};
  }

  // Puts one segment. EEXIST means an earlier attempt of this very put got through
  // before its answer was lost: seqs are never handed out twice.
  Status upload(std::uint64_t seq, const std::string& obj) {
    auto r = store.put(data_key(0, seq), obj, PutIf::none_match());
    if (!r && r.error().code != EEXIST) return std::move(r).error().wrap("upload segment " + hex16(seq));
    {
      std::lock_guard lk(mu);
      st.bytes_uploaded += obj.size();
      ++st.segments;
    }
    // The new segment goes into the cache too: it is what the next reads of these blocks want.
    std::string name = std::to_string(0) + "-" + hex16(seq);
    if (UniqueFd fd(::open((cache_dir + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)); fd)
      if (pwrite_full(fd.get(), obj.data(), obj.size(), 0)) touch_cache(name, obj.size());
    return {};
  }

  // Ships the map's WAL to its replica; the caller holds db_mu.
  Status ship_locked() {
    if (!lease_ok()) return lease_failure();
    if (auto s = replica->ship(); !s) return std::move(s).error().wrap("volume " + o.name);
    gen_unshipped = false;
    std::lock_guard lk(mu);
    ship_at = Clock::time_point::max();
    return {};
  }

  void run_flusher() {
    auto backoff = std::chrono::milliseconds(100);
    bool failing = false;
    auto note = [&](const Status& s) {
      if (s) {
        if (failing) log.info("uploads resumed", {{"volume", o.name}});
        failing = false;
        backoff = std::chrono::milliseconds(100);
        return true;
      }
      std::unique_lock lk(mu);
      last_error = s.error().what;
      if (!failing) log.warn("upload failed; retrying", {{"volume", o.name}, {"error", s.error().what}});
      failing = true;
      if (!(stopping && Clock::now() >= stop_deadline))
        cv.wait_for(lk, backoff, [&] { return stopping && Clock::now() >= stop_deadline; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      return false;
    };
    for (;;) {
      bool want_rotate = false;
      {
        std::unique_lock lk(mu);
        auto due = [&] {
          return active->size > 0 && (seal_requested || stopping || Clock::now() - active_since >= o.sync_interval);
        };
        // The deadlines move with the first write into the active file and with the
        // first commit after a ship, so they are recomputed at every wake-up.
        auto maintain_due = [&] { return maintain_asked > maintain_done || Clock::now() >= next_maintain; };
        while (!(stopping || !sealed.empty() || due() || Clock::now() >= ship_at || maintain_due()))
          cv.wait_until(lk, std::min({ship_at, next_maintain,
                                      active->size > 0 ? active_since + o.sync_interval : Clock::time_point::max()}));
        if (stopping && sealed.empty() && active->size == 0 && ship_at == Clock::time_point::max()) return;
        if (stopping && Clock::now() >= stop_deadline) return;
        want_rotate = due();
        if (active->size == 0) seal_requested = false;
      }
      if (want_rotate) {
        std::scoped_lock lk(write_mu, mu);
        if (auto s = rotate(); !s) log.error("cannot start a journal file", {{"volume", o.name}, {"error", s.error().what}});
        seal_requested = false;
      }
      bool ok = true;
      for (;;) {
        std::shared_ptr<JFile> f;
        {
          std::lock_guard lk(mu);
          if (sealed.empty()) break;
          f = sealed.front();
        }
        if (!(ok = note(pack(f)))) break;
      }
      bool ship;
      {
        std::lock_guard lk(mu);
        ship = ok && (Clock::now() >= ship_at || (stopping && sealed.empty() && ship_at != Clock::time_point::max()));
      }
      if (ship) {
        std::lock_guard dl(db_mu);
        ok = note(ship_locked());
      }
      std::uint64_t asked;
      bool due;
      {
        std::lock_guard lk(mu);
        asked = maintain_asked;
        due = !stopping && (asked > maintain_done || Clock::now() >= next_maintain);
      }
      if (due) {
        Status m = ok ? maintain() : Status(make_error(last_error, EIO));
        if (!m) log.warn("maintenance pass failed", {{"volume", o.name}, {"error", m.error().what}});
        std::lock_guard lk(mu);
        maintain_error = m ? "" : m.error().what;
        maintain_done = asked;
        next_maintain = Clock::now() + o.gc_interval;
        cv.notify_all();
      }
    }
  }

  // ---- maintenance: compaction and garbage collection ---------------------------

  Status maintain() {
    if (auto s = compact(); !s) return std::move(s).error().wrap("compaction");
    if (auto s = collect(); !s) return std::move(s).error().wrap("garbage collection");
    return {};
  }

  // The data blocks segment seq holds (from its index, remembered).
  Result<std::uint64_t> blocks_of(std::uint64_t seq) {
    if (auto it = seg_blocks.find(seq); it != seg_blocks.end()) return it->second;
    auto idx = fetch_index(data_key(0, seq));
    if (!idx) return std::move(idx).error();
    std::uint64_t n = 0;
    for (const auto& e : idx->entries)
      if (!e.trim) n += e.blocks;
    return seg_blocks[seq] = n;
  }

  // Rewrites the live blocks of segments less than half live into new segments (at most
  // kSegmentTarget of them a pass) and points every row at them. The old segments are
  // then unreferenced: collect() deletes them after the grace period.
  Status compact() {
    std::map<std::uint64_t, std::uint64_t> live;
    std::uint64_t applied;
    {
      std::lock_guard dl(db_mu);
      live = db->live_blocks();
      applied = applied_seq;
    }
    std::vector<std::uint64_t> victims;
    std::uint64_t budget = kSegmentTarget / kBlock;
    int fetches = 0;  // index GETs a pass may make: the flusher waits meanwhile
    for (const auto& [seq, n] : live) {
      if (seq > applied || n > budget) continue;
      if (!seg_blocks.count(seq) && ++fetches > 32) break;
      auto total = blocks_of(seq);
      if (!total) return std::move(total).error();
      if (n * 2 >= *total) continue;
      victims.push_back(seq);
      budget -= n;
    }
    if (victims.size() < 2 && (victims.empty() || live[victims[0]] * 4 >= seg_blocks[victims[0]])) return {};
    std::vector<MapDb::Ref> refs;
    {
      std::lock_guard dl(db_mu);
      for (auto seq : victims)
        for (auto& r : db->refs_of(seq)) refs.push_back(std::move(r));
    }
    SegmentBuilder seg;
    std::vector<std::pair<std::size_t, std::size_t>> spans;  // refs[i] -> its entries [first, last)
    for (const auto& r : refs) {
      auto frame = get_frame(r.row.loc);
      if (!frame) return std::move(frame).error();
      std::size_t first = seg.entries().size();
      seg.add_data(r.row.lba, std::span<const char>(frame->data() + (r.row.lba - r.row.loc.frame_lba) * kBlock,
                                                    r.row.blocks * kBlock));
      spans.emplace_back(first, seg.entries().size());
    }
    if (seg.empty()) return {};
    std::uint64_t seq;
    {
      std::lock_guard lk(mu);
      seq = next_seq++;
    }
    std::string obj = seg.finish(seq, 0, 1, 0);  // journal 0: not a write, never replayed
    if (!lease_ok()) return lease_failure();
    if (auto s = upload(seq, obj); !s) return s;
    std::vector<MapDb::Move> moves;
    for (std::size_t i = 0; i < refs.size(); ++i) {
      MapDb::Move m{refs[i], {}};
      for (std::size_t e = spans[i].first; e < spans[i].second; ++e) {
        const auto& en = seg.entries()[e];
        m.to.push_back({en.lba, en.blocks, Loc{Loc::object, 0, seq, 0, en.frame_off, en.frame_len, en.lba, en.blocks}});
      }
      moves.push_back(std::move(m));
    }
    std::lock_guard dl(db_mu);
    if (!lease_ok()) return lease_failure();
    if (auto s = db->relocate(moves); !s) return s;
    // The head's rows may have moved: the in-memory map follows.
    auto m = db->load(gen, base);
    if (!m) return std::move(m).error();
    {
      std::lock_guard lk(mu);
      clean = std::move(*m);
      st.segments_compacted += victims.size();
      if (ship_at == Clock::time_point::max()) ship_at = Clock::now();
    }
    log.info("segments compacted", {{"volume", o.name}, {"segments", victims.size()}, {"into", hex16(seq)},
                                    {"bytes", obj.size()}});
    return ship_locked();
  }

  // Deletes this volume's segments that no row of any generation names, once they have
  // been unreferenced for gc_grace. Decided on a map the replica has (shipped first):
  // a restore elsewhere never names a deleted segment. Segments of this writer above
  // the applied seq are uploads in flight, never garbage.
  Status collect() {
    std::map<std::uint64_t, std::uint64_t> live;
    std::uint64_t applied;
    {
      std::lock_guard dl(db_mu);
      if (auto s = ship_locked(); !s) return s;
      live = db->live_blocks();
      applied = applied_seq;
    }
    {
      std::lock_guard lk(mu);
      for (const ExtentMap* m : views)
        for (const auto& [lba, r] : m->runs())
          if (r.loc.kind == Loc::object && r.loc.src == 0) live[r.loc.id] += r.len;
    }
    auto listed = store.list(volume_key(o.name, "data/"));
    if (!listed) return std::move(listed).error();
    auto now = Clock::now();
    std::uint64_t epoch = lease->epoch();
    std::vector<std::string> doomed;
    std::vector<std::uint64_t> doomed_seqs;
    std::set<std::uint64_t> seen;
    for (const auto& obj : *listed) {
      auto seq = seq_of_key(obj.key);
      if (!seq) continue;
      seen.insert(*seq);
      if (live.count(*seq) || (*seq > applied && (*seq >> kEpochShift) == epoch)) {
        unreferenced.erase(*seq);
        continue;
      }
      auto [it, added] = unreferenced.try_emplace(*seq, now);
      if (now - it->second >= o.gc_grace) {
        doomed.push_back(obj.key);
        doomed_seqs.push_back(*seq);
      }
    }
    std::erase_if(unreferenced, [&](const auto& kv) { return !seen.count(kv.first); });
    if (doomed.empty()) return {};
    if (!lease_ok()) return lease_failure();
    if (auto s = store.remove(doomed); !s) return s;
    for (auto seq : doomed_seqs) {
      unreferenced.erase(seq);
      seg_blocks.erase(seq);
      std::string name = "0-" + hex16(seq);
      ::unlink((cache_dir + "/" + name).c_str());
      std::lock_guard ck(cache_mu);
      if (auto c = cache_files.find(name); c != cache_files.end()) {
        cache_bytes -= std::min(cache_bytes, c->second.bytes);
        cache_files.erase(c);
      }
    }
    {
      std::lock_guard lk(mu);
      st.segments_deleted += doomed.size();
    }
    log.info("unreferenced segments deleted", {{"volume", o.name}, {"segments", doomed.size()}});
    return {};
  }

  void run_leaser() {
    auto period = lease->ttl() / 6;
    std::unique_lock lk(lease_mu);
    for (;;) {
      lease_cv.wait_for(lk, period, [&] { return leaser_stop; });
      if (leaser_stop) return;
      lk.unlock();
      auto s = lease->renew();
      {
        std::lock_guard ml(mu);
        if (!s) {
          if (lease_error.empty()) log.warn("lease renewal failed", {{"volume", o.name}, {"error", s.error().what}});
          lease_error = s.error().what;
        } else if (!lease_error.empty()) {
          log.info("lease renewed again", {{"volume", o.name}});
          lease_error.clear();
        }
        cv.notify_all();  // writers waiting for the lease
      }
      lk.lock();
      if (lease->lost()) return;
      period = s ? lease->ttl() / 6 : std::chrono::milliseconds(std::min<long long>(1000, lease->ttl().count() / 10));
    }
  }

  Status drain();

  // Makes every journal byte written so far durable locally.
  Status sync_local() {
    std::vector<std::pair<std::shared_ptr<JFile>, std::uint64_t>> todo;
    bool sync_dir;
    {
      std::lock_guard lk(mu);
      for (auto& f : sealed)
        if (f->synced < f->size) todo.emplace_back(f, f->size);
      if (active->synced < active->size) todo.emplace_back(active, active->size);
      sync_dir = dir_dirty;
      dir_dirty = false;
    }
    for (auto& [f, upto] : todo) {
      if (::fdatasync(f->fd.get()) != 0) return sys_error("volume " + o.name + ": fdatasync(journal)");
      std::lock_guard lk(mu);
      f->synced = std::max(f->synced, upto);
    }
    if (sync_dir) {
      UniqueFd d(::open(journal_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!d || ::fsync(d.get()) != 0) {
        std::lock_guard lk(mu);
        dir_dirty = true;
        return sys_error("volume " + o.name + ": fsync(journal/)");
      }
    }
    return {};
  }
};

Volume::Volume(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Volume::~Volume() {
  if (auto s = close(); !s) impl_->log.error("volume closed with data not uploaded", {{"error", s.error().what}});
}

Result<std::unique_ptr<Volume>> Volume::open(ObjectStore& store, VolumeOptions opts) {
  if (!valid_volume_name(opts.name)) return make_error("bad volume name '" + opts.name + "'", EINVAL);
  auto impl = std::make_unique<Impl>(store, std::move(opts));
  Impl& v = *impl;
  v.rotate_at = std::max<std::uint64_t>(kBlock * 64, std::min(kRotateMax, v.o.journal_limit / 4));
  if (auto s = v.open_manifest(); !s) return std::move(s).error();
  if (auto s = mkdir_p(v.o.dir); !s) return std::move(s).error();
  // The lease tells machines apart; this tells processes (and opens) on one machine apart,
  // so that taking back this machine's own lease never meets a writer still alive here.
  v.dir_lock = UniqueFd(::open((v.o.dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!v.dir_lock) return sys_error("open(" + v.o.dir + "/lock)");
  if (::flock(v.dir_lock.get(), LOCK_EX | LOCK_NB) != 0)
    return make_error("volume " + v.o.name + " is open already: its state directory " + v.o.dir +
                          " is in use by another process (or this one)",
                      EBUSY);
  auto gens = replica_generations(store, v.meta_prefix());
  if (!gens) return std::move(gens).error().wrap("volume " + v.o.name);
  if (v.o.holder.empty()) {
    auto h = holder_of(v.o.dir);
    if (!h) return std::move(h).error();
    v.o.holder = *h;
  }
  auto lease = Lease::acquire(store, volume_key(v.o.name, "lease"), v.o.holder, v.o.lease_ttl, gens->highest);
  if (!lease) return std::move(lease).error().wrap("volume " + v.o.name);
  v.lease.emplace(std::move(*lease));
  gens = replica_generations(store, v.meta_prefix());  // again: a writer may have come and gone meanwhile
  if (!gens) {
    (void)v.lease->release();
    return std::move(gens).error().wrap("volume " + v.o.name);
  }
  auto opened = [&]() -> Status {
    if (auto s = v.open_db(*gens); !s) return s;
    return v.open_journal();
  }();
  if (!opened) {
    v.db.reset();
    (void)v.lease->release();  // the next try takes it at once
    return std::move(opened).error().wrap("volume " + v.o.name);
  }
  v.load_cache_index();
  v.st.applied_seq = v.applied_seq;
  v.st.epoch = v.lease->epoch();
  v.next_maintain = Clock::now() + v.o.gc_interval;
  v.flusher = std::thread([&v] { v.run_flusher(); });
  v.leaser = std::thread([&v] { v.run_leaser(); });
  v.log.info("volume open", {{"volume", v.o.name}, {"epoch", v.lease->epoch()}, {"generation", v.gen}});
  return std::unique_ptr<Volume>(new Volume(std::move(impl)));
}

std::uint64_t Volume::size() const { return impl_->size; }
const std::string& Volume::name() const { return impl_->o.name; }

Status Volume::read(std::uint64_t offset, std::span<char> buf) {
  Impl& v = *impl_;
  if (offset > v.size || buf.size() > v.size - offset) return make_error("read past the end of the volume", EINVAL);
  if (buf.empty()) return {};
  if (offset % kBlock == 0 && buf.size() % kBlock == 0) return v.read_blocks(offset / kBlock, buf.size() / kBlock, buf.data());
  std::uint64_t first = offset / kBlock, last = (offset + buf.size() - 1) / kBlock;
  std::string tmp((last - first + 1) * kBlock, '\0');
  if (auto s = v.read_blocks(first, last - first + 1, tmp.data()); !s) return s;
  std::memcpy(buf.data(), tmp.data() + offset % kBlock, buf.size());
  return {};
}

Status Volume::write(std::uint64_t offset, std::span<const char> data) {
  Impl& v = *impl_;
  if (offset > v.size || data.size() > v.size - offset) return make_error("write past the end of the volume", EINVAL);
  if (data.empty()) return {};
  if (auto s = v.wait_for_room(); !s) return s;
  std::lock_guard w(v.write_mu);
  if (offset % kBlock == 0 && data.size() % kBlock == 0) return v.append(offset / kBlock, data);
  return v.write_patched(offset, data);
}

Status Volume::trim(std::uint64_t offset, std::uint64_t length) {
  Impl& v = *impl_;
  if (offset > v.size || length > v.size - offset) return make_error("trim past the end of the volume", EINVAL);
  std::uint64_t first = (offset + kBlock - 1) / kBlock, end = (offset + length) / kBlock;
  if (auto s = v.wait_for_room(); !s) return s;
  std::lock_guard w(v.write_mu);
  // Partial blocks at the edges read as zeros afterwards too: they are written.
  std::string zeros;
  auto zero = [&](std::uint64_t at, std::uint64_t len) -> Status {
    if (len == 0) return {};
    zeros.assign(len, '\0');
    return v.write_patched(at, zeros);
  };
  if (first >= end) return zero(offset, length);
  if (auto s = zero(offset, first * kBlock - offset); !s) return s;
  if (auto s = zero(end * kBlock, offset + length - end * kBlock); !s) return s;
  return v.append_trim(first, end - first);
}

Status Volume::flush() {
  Impl& v = *impl_;
  if (auto s = v.sync_local(); !s) return s;
  if (v.o.durability == Durability::local) return {};
  return v.drain();
}

// Uploads and applies what the journal holds now, bounded by flush_timeout.
Status Volume::Impl::drain() {
  Impl& v = *this;
  std::unique_lock lk(v.mu);
  std::uint64_t target = v.active->size > 0 ? v.active->id : (v.sealed.empty() ? 0 : v.sealed.back()->id);
  if (target == 0 || v.applied_journal >= target) return {};
  v.seal_requested = true;
  v.cv.notify_all();
  if (v.cv.wait_for(lk, v.o.flush_timeout, [&] { return v.applied_journal >= target; })) return {};
  return make_error("volume " + v.o.name + ": flush not durable after " +
                        std::to_string(v.o.flush_timeout.count() / 1000) + " s: the object store " + v.store.url() +
                        " did not take the data (" + (v.last_error.empty() ? "no answer" : v.last_error) +
                        "); it stays in the journal and uploads when the store is back",
                    EIO);
}

Status Volume::close() {
  Impl& v = *impl_;
  {
    std::lock_guard lk(v.mu);
    if (v.closed) return {};
    v.closed = true;
    v.stopping = true;
    v.stop_deadline = Clock::now() + v.o.flush_timeout;
    v.cv.notify_all();
  }
  if (v.flusher.joinable()) v.flusher.join();
  auto local = v.sync_local();
  std::uint64_t left;
  bool shipped;
  {
    std::lock_guard lk(v.mu);
    left = v.journal_bytes;
    shipped = v.ship_at == Clock::time_point::max();
    if (left == 0) ::unlink((v.journal_dir + "/" + hex16(v.active->id)).c_str());
  }
  // The lease goes only when everything is in the store: then the next writer, here or
  // on another machine, may start at once from the replica.
  {
    std::lock_guard lk(v.lease_mu);
    v.leaser_stop = true;
    v.lease_cv.notify_all();
  }
  if (v.leaser.joinable()) v.leaser.join();
  bool released = false;
  if (left == 0 && shipped && local) released = static_cast<bool>(v.lease->release());
  v.dir_lock.reset();  // closed: the state directory may be opened again
  if (left == 0 && shipped) {
    if (!released) v.log.warn("lease not released: the next writer elsewhere waits for it to expire", {{"volume", v.o.name}});
    return local;
  }
  return make_error("volume " + v.o.name + ": " + std::to_string(left) + " journal bytes not uploaded" +
                        (shipped ? "" : ", map not shipped") + " (" + v.last_error + "); they upload at the next start",
                    EIO);
}

std::uint64_t Volume::used_bytes() {
  Impl& v = *impl_;
  std::lock_guard lk(v.mu);
  std::uint64_t blocks = 0;
  for (const auto& [lba, r] : v.clean.runs()) blocks += r.len;
  for (const auto& [lba, r] : v.dirty.runs()) {
    v.clean.visit(lba, r.len, [&](std::uint64_t, std::uint64_t n, const Loc* l) {
      if (l) blocks -= n;  // shadowed by the journal
    });
    if (r.loc.kind == Loc::journal) blocks += r.len;
  }
  return blocks * kBlock;
}

VolumeStats Volume::stats() {
  std::lock_guard lk(impl_->mu);
  VolumeStats s = impl_->st;
  s.epoch = impl_->lease->epoch();
  s.journal_bytes = impl_->journal_bytes;
  std::lock_guard ck(impl_->cache_mu);
  s.cache_bytes = impl_->cache_bytes;
  return s;
}

std::string Volume::health() {
  Impl& v = *impl_;
  if (v.lease->lost()) return "lease lost: another writer took over this disk, which takes no more writes here";
  if (!v.lease_ok()) {
    std::lock_guard lk(v.mu);
    return "lease lapsed: it could not be renewed (" + (v.lease_error.empty() ? std::string("no answer") : v.lease_error) +
           "); writes wait until it is";
  }
  return "";
}

Result<Checkpoint> Volume::checkpoint(const std::string& comment) {
  Impl& v = *impl_;
  if (auto s = v.drain(); !s) return std::move(s).error();
  std::lock_guard dl(v.db_mu);
  if (!v.lease_ok()) return v.lease_failure();
  std::uint64_t n = v.db->get_u64("next_checkpoint");
  Checkpoint c;
  c.id = "v" + std::to_string(n);
  c.create_time = now_rfc3339();
  c.comment = comment;
  c.source_id = v.db->get("source").value_or("");
  c.gen = v.gen;
  auto g = v.db->freeze_head(c, std::nullopt,
                             {{"next_checkpoint", std::to_string(n + 1)}, {"source", c.id}, {"changed", c.create_time}});
  if (!g) return std::move(g).error().wrap("volume " + v.o.name + ": checkpoint");
  v.gen = *g;
  v.gen_unshipped = true;
  if (auto s = v.ship_locked(); !s) {
    std::lock_guard lk(v.mu);
    v.ship_at = Clock::now();
    v.cv.notify_all();
    return make_error("checkpoint " + c.id + " is taken here but the object store did not take it yet (" +
                          s.error().what + "); it goes there when the store answers, and nothing is uploaded before",
                      EIO);
  }
  return c;
}

Result<Checkpoint> Volume::restore(const std::string& id) {
  Impl& v = *impl_;
  if (auto s = v.drain(); !s) return std::move(s).error();
  std::scoped_lock wl(v.write_mu, v.db_mu);
  if (!v.lease_ok()) return v.lease_failure();
  auto target = v.db->checkpoint(id);
  if (!target) return make_error("no checkpoint " + id, ENOENT);
  {
    std::lock_guard lk(v.mu);
    if (v.journal_bytes != 0) return make_error("volume " + v.o.name + " was written while it was being restored", EBUSY);
  }
  // The new head starts empty on the target: its map is the target's.
  auto m = v.db->load(target->gen, v.base);
  if (!m) return std::move(m).error();
  std::uint64_t n = v.db->get_u64("next_checkpoint");
  Checkpoint keep;
  keep.id = "v" + std::to_string(n);
  keep.create_time = now_rfc3339();
  keep.comment = "before restoring " + id;
  keep.source_id = v.db->get("source").value_or("");
  keep.gen = v.gen;
  auto g = v.db->freeze_head(keep, target->gen,
                             {{"next_checkpoint", std::to_string(n + 1)}, {"source", id}, {"changed", keep.create_time}});
  if (!g) return std::move(g).error().wrap("volume " + v.o.name + ": restore " + id);
  v.gen = *g;
  v.gen_unshipped = true;
  {
    std::lock_guard lk(v.mu);
    v.clean = std::move(*m);
  }
  if (auto s = v.ship_locked(); !s) {
    std::lock_guard lk(v.mu);
    v.ship_at = Clock::now();
    v.cv.notify_all();
    return make_error("restored " + id + " here, but the object store did not take the change yet (" + s.error().what +
                          "); it goes there when the store answers, and nothing is uploaded before",
                      EIO);
  }
  return keep;
}

std::vector<Checkpoint> Volume::checkpoints() {
  std::lock_guard dl(impl_->db_mu);
  return impl_->db->checkpoints();
}

std::optional<Checkpoint> Volume::find_checkpoint(const std::string& id) {
  std::lock_guard dl(impl_->db_mu);
  return impl_->db->checkpoint(id);
}

Status Volume::delete_checkpoint(const std::string& id) {
  Impl& v = *impl_;
  std::lock_guard dl(v.db_mu);
  if (!v.lease_ok()) return v.lease_failure();
  if (auto s = v.db->delete_checkpoint(id); !s) return s;
  std::lock_guard lk(v.mu);
  if (v.ship_at == Clock::time_point::max()) v.ship_at = Clock::now() + v.o.sync_interval;
  v.cv.notify_all();
  return {};
}

namespace {

// A checkpoint as a read-only disk (Volume::view).
class View final : public BlockDevice {
 public:
  View(Volume::Impl& v, ExtentMap map) : v_(v), map_(std::move(map)) {
    std::lock_guard lk(v_.mu);
    v_.views.insert(&map_);
  }
  ~View() override {
    std::lock_guard lk(v_.mu);
    v_.views.erase(&map_);
  }
  std::uint64_t size() const override { return v_.size; }
  Status read(std::uint64_t offset, std::span<char> buf) override {
    if (offset > v_.size || buf.size() > v_.size - offset) return make_error("read past the end of the disk", EINVAL);
    std::uint64_t first = offset / kBlock, last = (offset + buf.size() + kBlock - 1) / kBlock;
    std::string tmp;
    char* out = buf.data();
    bool aligned = offset % kBlock == 0 && buf.size() % kBlock == 0;
    if (!aligned) {
      tmp.assign((last - first) * kBlock, '\0');
      out = tmp.data();
    }
    Status st;
    map_.visit(first, last - first, [&](std::uint64_t a, std::uint64_t n, const Loc* l) {
      char* dst = out + (a - first) * kBlock;
      if (!st) return;
      if (!l) {
        std::memset(dst, 0, n * kBlock);
        return;
      }
      auto frame = v_.get_frame(*l);
      if (!frame) {
        st = std::move(frame).error();
        return;
      }
      std::memcpy(dst, frame->data() + (a - l->frame_lba) * kBlock, n * kBlock);
    });
    if (st && !aligned) std::memcpy(buf.data(), tmp.data() + offset % kBlock, buf.size());
    return st;
  }
  Status write(std::uint64_t, std::span<const char>) override { return make_error("a checkpoint is read-only", EROFS); }
  Status trim(std::uint64_t, std::uint64_t) override { return make_error("a checkpoint is read-only", EROFS); }
  Status flush() override { return {}; }

 private:
  Volume::Impl& v_;
  ExtentMap map_;
};

}  // namespace

Result<std::unique_ptr<BlockDevice>> Volume::view(const std::string& id) {
  Impl& v = *impl_;
  // Under db_mu, on the writer's own connection: a second connection's read lock would
  // make the replica's WAL truncation wait and fail, and SQLite would then restart the
  // WAL behind the replica's back. The view registers before db_mu goes, so no GC pass
  // sees the map it loaded without seeing the view.
  std::lock_guard dl(v.db_mu);
  auto c = v.db->checkpoint(id);
  if (!c) return make_error("no checkpoint " + id, ENOENT);
  auto m = v.db->load(c->gen, v.base);
  if (!m) return std::move(m).error();
  return std::unique_ptr<BlockDevice>(std::make_unique<View>(v, std::move(*m)));
}

Status Volume::maintain() {
  Impl& v = *impl_;
  std::unique_lock lk(v.mu);
  std::uint64_t mine = ++v.maintain_asked;
  v.cv.notify_all();
  v.cv.wait(lk, [&] { return v.maintain_done >= mine || v.closed; });
  if (v.maintain_done < mine) return make_error("volume " + v.o.name + " closed", EIO);
  if (!v.maintain_error.empty()) return make_error(v.maintain_error, EIO);
  return {};
}

Checkpoint Volume::current() {
  Impl& v = *impl_;
  std::lock_guard dl(v.db_mu);
  Checkpoint c;
  c.id = "Current";
  c.create_time = v.db->get("changed").value_or("");
  c.source_id = v.db->get("source").value_or("");
  c.gen = v.gen;
  return c;
}

Status mark_sealed(ObjectStore& store, const std::string& name, std::uint64_t seq) {
  auto r = store.put(volume_key(name, "sealed"), std::to_string(seq) + "\n", PutIf::none_match());
  if (!r && r.error().code != EEXIST) return std::move(r).error().wrap("seal volume " + name);
  return {};
}

Result<std::optional<std::uint64_t>> sealed_seq(ObjectStore& store, const std::string& name) {
  auto r = store.get(volume_key(name, "sealed"));
  if (!r) {
    if (r.error().code == ENOENT) return std::optional<std::uint64_t>{};
    return std::move(r).error().wrap("volume " + name);
  }
  try {
    return std::optional<std::uint64_t>{std::stoull(*r)};
  } catch (...) {
    return make_error("volume " + name + ": bad sealed marker", EBADMSG);
  }
}

}  // namespace bp::storage
