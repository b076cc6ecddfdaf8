// storage/map_db.hpp — a volume's map in SQLite: which blocks live in which segment
// frame, per generation. A generation is a map layered on its parent's: its rows
// override the parent's, and a hole row (seq 0) hides the parent's data (a trim). The
// head generation is the one being written; a checkpoint or a clone is a new generation
// whose parent is the old head, so both cost O(1) whatever the size of the disk.
// Only uploaded segments are ever written here (the volume applies a segment after its
// upload), so the map never names an object the store does not have.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "storage/extent_map.hpp"

struct sqlite3;

namespace bp::storage {

class MapDb {
 public:
  static Result<std::unique_ptr<MapDb>> open(const std::string& path);
  ~MapDb();
  MapDb(const MapDb&) = delete;
  MapDb& operator=(const MapDb&) = delete;

  // Small named values (volume name, size, applied seq, journal position...).
  std::optional<std::string> get(const std::string& key);
  std::uint64_t get_u64(const std::string& key, std::uint64_t dflt = 0);

  // The generation being written (created, with no parent, on first use).
  Result<std::uint64_t> head();
  // A new head whose parent is the current head; the old head stays readable.
  Result<std::uint64_t> new_generation();
  std::optional<std::uint64_t> parent_of(std::uint64_t gen);

  // The map as generation gen sees it (its ancestors' rows overlaid in order on under,
  // a clone's base), with holes left out: a block that is in no run reads as zeros.
  Result<ExtentMap> load(std::uint64_t gen, ExtentMap under = {});

  // One atomic change of generation gen: the runs (object locations, or zero for a trim)
  // and the named values, committed durably (synchronous = FULL) or not at all.
  struct Update {
    std::uint64_t lba, blocks;
    Loc loc;  // Loc::object, or Loc::zero for a trim
  };
  Status apply(std::uint64_t gen, const std::vector<Update>& updates,
               const std::vector<std::pair<std::string, std::string>>& values);

  std::uint64_t rows(std::uint64_t gen);  // for tests: rows stored for gen

  // Checkpoints: named generations. The head is never one; taking a checkpoint freezes
  // the head under a name and starts a new, empty head on it.
  struct Checkpoint {
    std::string id, create_time, comment, source_id;
    std::uint64_t gen = 0;
    bool is_auto = false;
  };
  // One transaction: the head becomes checkpoint c (c.gen is ignored), a new head starts
  // on it, or with base on generation *base (a restore), and the values are set. Returns
  // the new head.
  Result<std::uint64_t> freeze_head(const Checkpoint& c, std::optional<std::uint64_t> base,
                                    const std::vector<std::pair<std::string, std::string>>& values);
  std::vector<Checkpoint> checkpoints();  // oldest first
  std::optional<Checkpoint> checkpoint(const std::string& id);
  // Forgets a checkpoint; its generation's rows go too unless another generation
  // stands on it (they are then still the base of that one).
  Status delete_checkpoint(const std::string& id);

  // Garbage collection and compaction. Blocks each of this volume's own segments (src
  // 0) holds for any generation: a segment not named here is referenced by nothing.
  std::map<std::uint64_t, std::uint64_t> live_blocks();
  struct Ref {
    std::uint64_t gen;
    Update row;
  };
  std::vector<Ref> refs_of(std::uint64_t seq);  // every row naming segment seq (src 0)
  // Points rows at new locations of the same blocks, in one transaction. Each move
  // names the row it replaces (from refs_of); a row changed since is left as it is.
  struct Move {
    Ref from;
    std::vector<Update> to;  // covering exactly from.row's blocks
  };
  Status relocate(const std::vector<Move>& moves);

  // Folds the WAL into the database file and empties it (the replica ships the WAL;
  // nothing else checkpoints it).
  Status checkpoint_wal();

 private:
  explicit MapDb(sqlite3* db) : db_(db) {}
  Status exec(const char* sql);
  Status write_range(std::uint64_t gen, bool has_parent, const Update& u);
  Status fold_into(std::uint64_t gen, std::uint64_t child, std::optional<std::uint64_t> parent);
  sqlite3* db_;
};

}  // namespace bp::storage
