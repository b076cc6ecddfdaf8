// storage/volume.hpp — a sprite's disk: a sparse virtual disk whose data lives in the
// object store (ARCHITECTURE.md section 6).
//
//   write -> journal (local file, CRC per record) -> flusher -> segment objects in
//   volumes/NAME/data/<seq>, then the map (SQLite) learns where each block went
//   read  -> journal if the block is not uploaded yet, else map -> cache -> ranged GET
//
// A journal file becomes one or more segments, uploaded before the map names them; the
// journal file is deleted only after the map's commit. Segments are self-describing, so
// the map can be rebuilt from the object store alone (a fresh machine, or a lost cache
// disk): every complete journal file's segments are applied in seq order.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.hpp"
#include "storage/block_device.hpp"
#include "storage/map_db.hpp"
#include "storage/object_store.hpp"

namespace bp::storage {

enum class Durability {
  strict,  // flush() returns when data and map are in the object store
  local,   // flush() returns when the journal is fsync'd; uploads follow within sync_interval
};

Result<Durability> parse_durability(const std::string& s);

struct VolumeOptions {
  std::string name;  // the volume's key prefix: volumes/NAME/
  std::string dir;   // local state on the cache disk: map.db, journal/, cache/
  std::uint64_t size = 100ull << 30;  // for a new volume; an existing one keeps its own
  Durability durability = Durability::local;
  std::chrono::milliseconds sync_interval{1000};
  std::uint64_t journal_limit = 1ull << 30;  // writes wait while this much is not uploaded
  std::uint64_t cache_limit = 4ull << 30;
  std::uint64_t readahead = 1ull << 20;  // bytes fetched per cache miss
  std::chrono::milliseconds flush_timeout{60000};  // strict flush / close give up after this
  bool create = false;  // may create the volume when the store has none (else ENOENT)
  // create: start as a copy of this sealed volume (its map as of segment parent_seq, no
  // data): O(1), the clone's map is the parent's map (a local copy of its replica, kept
  // in bases_dir, default dir) under generations of its own.
  std::string parent;
  std::uint64_t parent_seq = 0;
  std::string bases_dir;
  // The lease (lease.hpp): who this writer is (default: an id kept in dir, so the same
  // machine restarted takes its lease back at once) and how long a lease lasts.
  std::string holder;
  std::chrono::milliseconds lease_ttl{30000};
  // Maintenance on the flusher's thread every gc_interval: segments less than half live
  // are rewritten (compaction), and segments nothing references (no generation: head,
  // checkpoint, or what the replica holds) are deleted once unreferenced for gc_grace.
  std::chrono::milliseconds gc_interval{60000};
  std::chrono::milliseconds gc_grace{600000};
};

using Checkpoint = MapDb::Checkpoint;

struct VolumeStats {
  std::uint64_t bytes_written = 0;   // by write(), since open
  std::uint64_t bytes_uploaded = 0;  // segment bytes put, since open
  std::uint64_t segments = 0;
  std::uint64_t journal_bytes = 0;   // not yet uploaded
  std::uint64_t cache_bytes = 0;
  std::uint64_t applied_seq = 0;     // the newest segment the map names
  std::uint64_t epoch = 0;           // of this writer's lease
  std::uint64_t segments_compacted = 0;  // rewritten into new segments, since open
  std::uint64_t segments_deleted = 0;    // by garbage collection, since open
};

class Volume final : public BlockDevice {
 public:
  static Result<std::unique_ptr<Volume>> open(ObjectStore& store, VolumeOptions opts);
  ~Volume() override;

  std::uint64_t size() const override;
  Status read(std::uint64_t offset, std::span<char> buf) override;
  Status write(std::uint64_t offset, std::span<const char> data) override;
  Status trim(std::uint64_t offset, std::uint64_t length) override;
  Status flush() override;

  // Uploads everything (bounded by flush_timeout) and stops the flusher. What could not
  // be uploaded stays in the journal for the next open, and the error says how much.
  Status close();
  std::uint64_t used_bytes();  // blocks holding written data, in bytes
  VolumeStats stats();
  const std::string& name() const;
  // "" while all is well, else why the disk does not take writes (a lapsed or lost lease).
  std::string health();

  // Checkpoints (ARCHITECTURE.md section 6). The caller keeps writes away while one is
  // taken (the filesystem frozen) and the disk unused while it is restored. Both first
  // upload what the journal holds (bounded by flush_timeout), then change the map in
  // one transaction, then ship the map's replica: O(1) in the size of the disk.
  Result<Checkpoint> checkpoint(const std::string& comment);
  // Points the disk at checkpoint id; the state it leaves is kept as a new checkpoint
  // (returned), so the restore can be undone. ENOENT: no such checkpoint.
  Result<Checkpoint> restore(const std::string& id);
  std::vector<Checkpoint> checkpoints();
  std::optional<Checkpoint> find_checkpoint(const std::string& id);
  Status delete_checkpoint(const std::string& id);
  // The live state: id "Current", the time of the last checkpoint or restore, and the
  // checkpoint it descends from.
  Checkpoint current();

  // Runs a maintenance pass (compaction, then garbage collection) now and waits for it.
  Status maintain();

  // Checkpoint id as a read-only disk (writes: EROFS), reading through this volume's
  // cache and store; garbage collection keeps what a view reads while it exists. The
  // view must not outlive the volume.
  Result<std::unique_ptr<BlockDevice>> view(const std::string& id);

  struct Impl;

 private:
  explicit Volume(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A volume others are cloned from (the imported base image) is marked sealed with the
// segment it ends at; clones name that seq as their parent_seq.
Status mark_sealed(ObjectStore& store, const std::string& name, std::uint64_t seq);
// The sealed seq, or nullopt when the volume was never sealed (ENOENT is not an error).
Result<std::optional<std::uint64_t>> sealed_seq(ObjectStore& store, const std::string& name);

}  // namespace bp::storage
