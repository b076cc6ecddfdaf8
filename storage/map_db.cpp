// storage/map_db.cpp — the versioned map in SQLite (see map_db.hpp).
#include "storage/map_db.hpp"

#include <sqlite3.h>

#include <utility>

namespace bp::storage {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generations(gen INTEGER PRIMARY KEY, parent INTEGER);
-- One row per run of blocks of a generation; runs of one generation never overlap.
-- seq = 0 is a hole: the blocks read as zeros whatever the ancestors have.
CREATE TABLE IF NOT EXISTS extents(
  gen INTEGER NOT NULL, lba INTEGER NOT NULL, len INTEGER NOT NULL,
  src INTEGER NOT NULL, seq INTEGER NOT NULL,
  frame_off INTEGER NOT NULL, frame_len INTEGER NOT NULL,
  frame_lba INTEGER NOT NULL, frame_blocks INTEGER NOT NULL,
  PRIMARY KEY(gen, lba)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints(
  id TEXT PRIMARY KEY, gen INTEGER NOT NULL, create_time TEXT NOT NULL,
  comment TEXT NOT NULL, source_id TEXT NOT NULL, is_auto INTEGER NOT NULL);
)sql";

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { ok_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) == SQLITE_OK; }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return ok_; }
  Stmt& bind(int i, std::uint64_t v) {
    sqlite3_bind_int64(s_, i, static_cast<sqlite3_int64>(v));
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  std::uint64_t u64(int col) { return static_cast<std::uint64_t>(sqlite3_column_int64(s_, col)); }
  std::string text(int col) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? p : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  bool ok_ = false;
};

Error db_error(sqlite3* db, const std::string& what) {
  return make_error("map db: " + what + ": " + sqlite3_errmsg(db), EIO);
}

struct Row {
  std::uint64_t lba, len;
  Loc loc;
};

Row row_of(Stmt& q) {
  Row r;
  r.lba = q.u64(0);
  r.len = q.u64(1);
  r.loc.src = static_cast<std::uint32_t>(q.u64(2));
  r.loc.id = q.u64(3);
  r.loc.kind = r.loc.id == 0 ? Loc::zero : Loc::object;
  if (r.loc.kind == Loc::zero) r.loc.src = 0;
  r.loc.frame_off = q.u64(4);
  r.loc.frame_len = static_cast<std::uint32_t>(q.u64(5));
  r.loc.frame_lba = q.u64(6);
  r.loc.frame_blocks = static_cast<std::uint32_t>(q.u64(7));
  return r;
}

constexpr const char* kCols = "lba, len, src, seq, frame_off, frame_len, frame_lba, frame_blocks";

}  // namespace

Result<std::unique_ptr<MapDb>> MapDb::open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return make_error("map db: open " + path + ": " + msg, EIO);
  }
  std::unique_ptr<MapDb> m(new MapDb(db));
  // WAL with FULL sync: a commit is durable when apply() returns, which is what lets
  // the volume delete the journal file the commit covers.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=5000",
                          "PRAGMA wal_autocheckpoint=0", kSchema})
    if (auto s = m->exec(sql); !s) return std::move(s).error().wrap("open " + path);
  return m;
}

MapDb::~MapDb() { sqlite3_close(db_); }

Status MapDb::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    return make_error(std::string("map db: ") + msg, EIO);
  }
  return {};
}

std::optional<std::string> MapDb::get(const std::string& key) {
  Stmt q(db_, "SELECT value FROM meta WHERE key = ?1");
  q.bind(1, key);
  if (q.step() != SQLITE_ROW) return std::nullopt;
  return q.text(0);
}

std::uint64_t MapDb::get_u64(const std::string& key, std::uint64_t dflt) {
  auto v = get(key);
  return v ? std::stoull(*v) : dflt;
}

Result<std::uint64_t> MapDb::head() {
  {
    Stmt q(db_, "SELECT COALESCE(MAX(gen), 0) FROM generations");
    if (q.step() != SQLITE_ROW) return db_error(db_, "head");
    if (std::uint64_t g = q.u64(0)) return g;
  }
  Stmt ins(db_, "INSERT INTO generations(gen, parent) VALUES (1, NULL)");
  if (ins.step() != SQLITE_DONE) return db_error(db_, "create generation 1");
  return std::uint64_t{1};
}

Result<std::uint64_t> MapDb::new_generation() {
  auto h = head();
  if (!h) return h;
  Stmt ins(db_, "INSERT INTO generations(gen, parent) VALUES (?1, ?2)");
  ins.bind(1, *h + 1).bind(2, *h);
  if (ins.step() != SQLITE_DONE) return db_error(db_, "new generation");
  return *h + 1;
}

std::optional<std::uint64_t> MapDb::parent_of(std::uint64_t gen) {
  Stmt q(db_, "SELECT parent FROM generations WHERE gen = ?1 AND parent IS NOT NULL");
  q.bind(1, gen);
  if (q.step() != SQLITE_ROW) return std::nullopt;
  return q.u64(0);
}

Result<ExtentMap> MapDb::load(std::uint64_t gen, ExtentMap under) {
  // One read transaction: the chain and its rows as of one moment, whatever another
  // connection commits meanwhile.
  if (auto s = exec("BEGIN"); !s) return std::move(s).error();
  struct End {
    MapDb* m;
    ~End() { (void)m->exec("ROLLBACK"); }
  } end{this};
  std::vector<std::uint64_t> chain;
  for (std::optional<std::uint64_t> g = gen; g; g = parent_of(*g)) chain.insert(chain.begin(), *g);
  ExtentMap m = std::move(under);
  for (std::uint64_t g : chain) {
    Stmt q(db_, (std::string("SELECT ") + kCols + " FROM extents WHERE gen = ?1 ORDER BY lba").c_str());
    if (!q.ok()) return db_error(db_, "load");
    q.bind(1, g);
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      Row r = row_of(q);
      if (r.loc.kind == Loc::zero)
        m.erase(r.lba, r.len);
      else
        m.assign(r.lba, r.len, r.loc);
    }
    if (rc != SQLITE_DONE) return db_error(db_, "load");
  }
  return m;
}

// Replaces [u.lba, u.lba + u.blocks) in gen: rows it overlaps are cut (their outer parts
// stay), then the new row goes in. A trim in a generation without a parent stores
// nothing (no row reads as zeros); with a parent it stores a hole.
Status MapDb::write_range(std::uint64_t gen, bool has_parent, const Update& u) {
  std::uint64_t a = u.lba, end = u.lba + u.blocks;
  std::vector<Row> hit;
  {
    Stmt q(db_, (std::string("SELECT ") + kCols + " FROM extents WHERE gen = ?1 AND lba < ?2 ORDER BY lba DESC LIMIT 1").c_str());
    q.bind(1, gen).bind(2, a);
    if (q.step() == SQLITE_ROW) {
      Row r = row_of(q);
      if (r.lba + r.len > a) hit.push_back(r);
    }
  }
  {
    Stmt q(db_, (std::string("SELECT ") + kCols + " FROM extents WHERE gen = ?1 AND lba >= ?2 AND lba < ?3").c_str());
    q.bind(1, gen).bind(2, a).bind(3, end);
    while (q.step() == SQLITE_ROW) hit.push_back(row_of(q));
  }
  Stmt del(db_, "DELETE FROM extents WHERE gen = ?1 AND lba >= ?2 AND lba < ?3");
  del.bind(1, gen).bind(2, a).bind(3, end);
  if (del.step() != SQLITE_DONE) return db_error(db_, "delete");
  auto insert = [&](std::uint64_t lba, std::uint64_t len, const Loc& loc) -> Status {
    Stmt ins(db_, "INSERT OR REPLACE INTO extents VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    bool hole = loc.kind != Loc::object;
    ins.bind(1, gen).bind(2, lba).bind(3, len).bind(4, hole ? 0 : loc.src).bind(5, hole ? 0 : loc.id);
    ins.bind(6, loc.frame_off).bind(7, loc.frame_len).bind(8, loc.frame_lba).bind(9, loc.frame_blocks);
    if (ins.step() != SQLITE_DONE) return db_error(db_, "insert");
    return {};
  };
  for (const Row& r : hit) {
    if (r.lba < a)  // its left part stays, under the same key
      if (auto s = insert(r.lba, a - r.lba, r.loc); !s) return s;
    if (r.lba + r.len > end)
      if (auto s = insert(end, r.lba + r.len - end, r.loc); !s) return s;
  }
  if (u.loc.kind == Loc::object || has_parent) return insert(a, u.blocks, u.loc);
  return {};
}

Status MapDb::apply(std::uint64_t gen, const std::vector<Update>& updates,
                    const std::vector<std::pair<std::string, std::string>>& values) {
  if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
  auto fail = [&](Status s) {
    (void)exec("ROLLBACK");
    return s;
  };
  // Over a parent, or over a clone's base, a trim must hide what lies beneath.
  bool has_parent = parent_of(gen).has_value() || get("has_base") == "1";
  for (const auto& u : updates)
    if (auto s = write_range(gen, has_parent, u); !s) return fail(std::move(s));
  for (const auto& [k, v] : values) {
    Stmt q(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)");
    q.bind(1, k).bind(2, v);
    if (q.step() != SQLITE_DONE) return fail(db_error(db_, "meta " + k));
  }
  if (auto s = exec("COMMIT"); !s) return fail(std::move(s));
  return {};
}

Result<std::uint64_t> MapDb::freeze_head(const Checkpoint& c, std::optional<std::uint64_t> base,
                                         const std::vector<std::pair<std::string, std::string>>& values) {
  if (auto s = exec("BEGIN IMMEDIATE"); !s) return std::move(s).error();
  auto fail = [&](Error e) -> Result<std::uint64_t> {
    (void)exec("ROLLBACK");
    return e;
  };
  auto h = head();
  if (!h) return fail(std::move(h).error());
  {
    Stmt q(db_, "INSERT INTO checkpoints(id, gen, create_time, comment, source_id, is_auto) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    q.bind(1, c.id).bind(2, *h).bind(3, c.create_time).bind(4, c.comment).bind(5, c.source_id).bind(6, c.is_auto ? 1 : 0);
    if (q.step() != SQLITE_DONE) return fail(db_error(db_, "checkpoint " + c.id));
  }
  {
    Stmt q(db_, "INSERT INTO generations(gen, parent) VALUES (?1, ?2)");
    q.bind(1, *h + 1).bind(2, base.value_or(*h));
    if (q.step() != SQLITE_DONE) return fail(db_error(db_, "new generation"));
  }
  for (const auto& [k, v] : values) {
    Stmt q(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)");
    q.bind(1, k).bind(2, v);
    if (q.step() != SQLITE_DONE) return fail(db_error(db_, "meta " + k));
  }
  if (auto s = exec("COMMIT"); !s) return fail(std::move(s).error());
  return *h + 1;
}

namespace {

MapDb::Checkpoint checkpoint_of(Stmt& q) {
  MapDb::Checkpoint c;
  c.id = q.text(0);
  c.gen = q.u64(1);
  c.create_time = q.text(2);
  c.comment = q.text(3);
  c.source_id = q.text(4);
  c.is_auto = q.u64(5) != 0;
  return c;
}

}  // namespace

std::vector<MapDb::Checkpoint> MapDb::checkpoints() {
  std::vector<Checkpoint> out;
  Stmt q(db_, "SELECT id, gen, create_time, comment, source_id, is_auto FROM checkpoints ORDER BY gen, id");
  while (q.step() == SQLITE_ROW) out.push_back(checkpoint_of(q));
  return out;
}

std::optional<MapDb::Checkpoint> MapDb::checkpoint(const std::string& id) {
  Stmt q(db_, "SELECT id, gen, create_time, comment, source_id, is_auto FROM checkpoints WHERE id = ?1");
  q.bind(1, id);
  if (q.step() != SQLITE_ROW) return std::nullopt;
  return checkpoint_of(q);
}

Status MapDb::delete_checkpoint(const std::string& id) {
  auto c = checkpoint(id);
  if (!c) return make_error("no checkpoint " + id, ENOENT);
  if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
  auto fail = [&](Error e) -> Status {
    (void)exec("ROLLBACK");
    return e;
  };
  {
    Stmt q(db_, "DELETE FROM checkpoints WHERE id = ?1");
    q.bind(1, id);
    if (q.step() != SQLITE_DONE) return fail(db_error(db_, "delete checkpoint"));
  }
  // A generation nothing stands on and no checkpoint names is garbage, and so may its
  // parent become: walk up while that holds. One with a single child and no checkpoint
  // folds into that child (the child takes the rows it does not override), so what the
  // child overwrote stops being referenced.
  auto h = head();
  if (!h) return fail(std::move(h).error());
  for (std::optional<std::uint64_t> g = c->gen; g && *g != *h;) {
    Stmt kids(db_, "SELECT (SELECT COUNT(*) FROM generations WHERE parent = ?1), (SELECT MIN(gen) FROM generations "
                   "WHERE parent = ?1), (SELECT COUNT(*) FROM checkpoints WHERE gen = ?1)");
    kids.bind(1, *g);
    if (kids.step() != SQLITE_ROW) return fail(db_error(db_, "delete checkpoint"));
    std::uint64_t children = kids.u64(0), child = kids.u64(1), named = kids.u64(2);
    if (named != 0 || children > 1) break;
    auto parent = parent_of(*g);
    if (children == 1)
      if (auto s = fold_into(*g, child, parent); !s) return fail(std::move(s).error());
    for (const char* sql : {"DELETE FROM extents WHERE gen = ?1", "DELETE FROM generations WHERE gen = ?1"}) {
      Stmt d(db_, sql);
      d.bind(1, *g);
      if (d.step() != SQLITE_DONE) return fail(db_error(db_, "delete generation"));
    }
    if (children == 1) break;  // the child lives on
    g = parent;
  }
  if (auto s = exec("COMMIT"); !s) return fail(std::move(s).error());
  return {};
}

std::map<std::uint64_t, std::uint64_t> MapDb::live_blocks() {
  std::map<std::uint64_t, std::uint64_t> out;
  Stmt q(db_, "SELECT seq, SUM(len) FROM extents WHERE src = 0 AND seq != 0 GROUP BY seq");
  while (q.step() == SQLITE_ROW) out[q.u64(0)] = q.u64(1);
  return out;
}

std::vector<MapDb::Ref> MapDb::refs_of(std::uint64_t seq) {
  std::vector<Ref> out;
  Stmt q(db_, (std::string("SELECT gen, ") + kCols + " FROM extents WHERE src = 0 AND seq = ?1 ORDER BY gen, lba").c_str());
  q.bind(1, seq);
  while (q.step() == SQLITE_ROW) {
    Ref r;
    r.gen = q.u64(0);
    r.row.lba = q.u64(1);
    r.row.blocks = q.u64(2);
    r.row.loc = Loc{Loc::object, static_cast<std::uint32_t>(q.u64(3)), q.u64(4), 0, q.u64(5),
                    static_cast<std::uint32_t>(q.u64(6)), q.u64(7), static_cast<std::uint32_t>(q.u64(8))};
    out.push_back(r);
  }
  return out;
}

Status MapDb::relocate(const std::vector<Move>& moves) {
  if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
  auto fail = [&](Status s) {
    (void)exec("ROLLBACK");
    return s;
  };
  for (const auto& m : moves) {
    Stmt q(db_, "SELECT len, src, seq, frame_off FROM extents WHERE gen = ?1 AND lba = ?2");
    q.bind(1, m.from.gen).bind(2, m.from.row.lba);
    if (q.step() != SQLITE_ROW || q.u64(0) != m.from.row.blocks || q.u64(1) != 0 || q.u64(2) != m.from.row.loc.id ||
        q.u64(3) != m.from.row.loc.frame_off)
      continue;  // changed (or gone) since it was read
    for (const auto& u : m.to)
      if (auto s = write_range(m.from.gen, true, u); !s) return fail(std::move(s));
  }
  if (auto s = exec("COMMIT"); !s) return fail(std::move(s));
  return {};
}

// Gives child the rows of gen it does not override (holes too: they hide what lies
// beneath gen), and gen's parent as its own.
Status MapDb::fold_into(std::uint64_t gen, std::uint64_t child, std::optional<std::uint64_t> parent) {
  ExtentMap covered;  // the child's own rows
  {
    Stmt q(db_, (std::string("SELECT ") + kCols + " FROM extents WHERE gen = ?1").c_str());
    q.bind(1, child);
    while (q.step() == SQLITE_ROW) {
      Row r = row_of(q);
      covered.assign(r.lba, r.len, Loc{Loc::object, 0, 1});
    }
  }
  std::vector<Row> rows;
  {
    Stmt q(db_, (std::string("SELECT ") + kCols + " FROM extents WHERE gen = ?1 ORDER BY lba").c_str());
    q.bind(1, gen);
    while (q.step() == SQLITE_ROW) rows.push_back(row_of(q));
  }
  for (const Row& r : rows) {
    Status st;
    covered.visit(r.lba, r.len, [&](std::uint64_t a, std::uint64_t n, const Loc* l) {
      if (l || !st) return;  // the child has its own
      Stmt ins(db_, "INSERT INTO extents VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
      bool hole = r.loc.kind != Loc::object;
      ins.bind(1, child).bind(2, a).bind(3, n).bind(4, hole ? 0 : r.loc.src).bind(5, hole ? 0 : r.loc.id);
      ins.bind(6, r.loc.frame_off).bind(7, r.loc.frame_len).bind(8, r.loc.frame_lba).bind(9, r.loc.frame_blocks);
      if (ins.step() != SQLITE_DONE) st = db_error(db_, "fold generation");
    });
    if (!st) return st;
  }
  Stmt up(db_, "UPDATE generations SET parent = ?2 WHERE gen = ?1");
  up.bind(1, child);
  if (parent) up.bind(2, *parent);
  if (up.step() != SQLITE_DONE) return db_error(db_, "fold generation");
  return {};
}

Status MapDb::checkpoint_wal() {
  int log = -1, done = -1;
  if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done) != SQLITE_OK)
    return db_error(db_, "checkpoint the WAL");
  if (log != done) return make_error("map db: the WAL checkpoint stopped short", EBUSY);
  return {};
}

std::uint64_t MapDb::rows(std::uint64_t gen) {
  Stmt q(db_, "SELECT COUNT(*) FROM extents WHERE gen = ?1");
  q.bind(1, gen);
  return q.step() == SQLITE_ROW ? q.u64(0) : 0;
}

}  // namespace bp::storage
