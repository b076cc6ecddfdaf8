// storage/replica.hpp — the map's SQLite database made durable in the object store the
// way Litestream does it: per generation a snapshot of the database file, then the WAL
// as it grows, shipped in pieces.
//
//   volumes/NAME/meta/<gen>/snapshot/<index>   zstd(the database file as index began)
//   volumes/NAME/meta/<gen>/wal/<index>/<off>  zstd(WAL bytes [off, off + n) of index)
//
// gen is the lease epoch of the writer (one generation per open); index counts the WAL's
// restarts (the map db never checkpoints by itself: the replica truncates the WAL once it
// is shipped and large, and the next index begins). A piece always ends at a commit, and
// is shipped only after the commit it holds, which comes after the upload of the data it
// names: a replica never references an object the store does not have.
//
// Restore takes the newest generation's newest snapshot and applies its WAL indexes in
// order. A missing piece, a gap, a corrupt snapshot or WAL frames SQLite refuses are
// errors: a restore that cannot be complete fails, it never yields an older or empty map.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "storage/map_db.hpp"
#include "storage/object_store.hpp"

namespace bp::storage {

class Replica {
 public:
  // prefix: "volumes/NAME/meta/"; db: the open map db at db_path.
  Replica(ObjectStore& store, std::string prefix, MapDb& db, std::string db_path)
      : store_(store), prefix_(std::move(prefix)), db_(db), path_(std::move(db_path)) {}

  // Begins generation gen: the WAL is checkpointed into the file, which is uploaded as
  // its first snapshot. Older generations are deleted once it is there.
  Status start(std::uint64_t gen);
  // Ships the WAL bytes committed since the last call (the caller has no write in
  // flight on the db). Truncates the WAL when it is large and shipped; takes a new
  // snapshot when the WAL shipped since the last one outgrows it.
  Status ship();

 private:
  Status snapshot(bool next_index);
  Result<std::uint64_t> committed_prefix(const std::string& tail);
  ObjectStore& store_;
  std::string prefix_;
  MapDb& db_;
  std::string path_;
  std::uint64_t gen_ = 0, index_ = 0, offset_ = 0;  // offset_: WAL bytes shipped in index_
  std::uint64_t since_snapshot_ = 0, snapshot_bytes_ = 0;
  bool snapshot_due_ = false;
  std::string salts_;  // of the WAL shipped in index_ (its header's salts)
};

// The newest generation that has a snapshot (nullopt: no replica at all), and the
// highest generation named under prefix at all (a lease must go past it).
struct ReplicaGenerations {
  std::optional<std::uint64_t> newest;
  std::uint64_t highest = 0;
};
Result<ReplicaGenerations> replica_generations(ObjectStore& store, const std::string& prefix);

// Writes the database of generation gen to db_path (which must not exist).
Status restore_replica(ObjectStore& store, const std::string& prefix, std::uint64_t gen, const std::string& db_path);

}  // namespace bp::storage
