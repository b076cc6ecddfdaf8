// agent/registry.hpp — the sprites this ballpoint hosts, by name: their public records.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace bp::agent {

// What the API reports about a sprite.
struct SpriteRecord {
  std::string id;    // UUID
  std::string name;  // DNS label
  std::string status = "cold";  // cold | warm | running
  std::string created_at;       // RFC 3339
  std::string updated_at;
  std::vector<std::string> labels;
  std::string url_auth = "sprite";  // url_settings.auth: sprite (token required) | public
};

// A checkpoint as the API reports it (API.md 2.10). id "Current" is the live state.
struct CheckpointRecord {
  std::string id, create_time, comment, source_id;
  std::vector<std::string> history;  // ancestors, oldest first
  bool is_auto = false;
};

// Thread-safe: the API reads it on the event loop while sprites are made and removed
// on a blocking pool.
class Registry {
 public:
  std::vector<SpriteRecord> list() const;
  std::optional<SpriteRecord> get(const std::string& name) const;
  // False when the name is taken.
  bool add(SpriteRecord rec);
  bool remove(const std::string& name);
  void set_status(const std::string& name, const std::string& status);
  // Replaces the record of an existing sprite; false when there is none.
  bool replace(const SpriteRecord& rec);
  std::size_t size() const;
  // Grows with every change (add, remove, status, replace): a watcher compares it to
  // learn that something changed without copying the list.
  std::uint64_t generation() const;

 private:
  mutable std::mutex mu_;
  std::uint64_t generation_ = 0;
  std::map<std::string, SpriteRecord> sprites_;
};

// Creating and destroying sprites: blocking work, run off the event loop.
class SpriteControl {
 public:
  virtual ~SpriteControl() = default;
  // Errors: EEXIST (name taken), EINVAL (bad name), EAGAIN (limit reached),
  // EUNATCH (no base image configured), anything else: the machine failed.
  virtual Result<SpriteRecord> create(const std::string& name) = 0;
  // ENOENT when there is no such sprite.
  virtual Status destroy(const std::string& name) = 0;
  // Sets labels and/or url_settings.auth, persisted; returns the updated record.
  virtual Result<SpriteRecord> update(const std::string& name, const std::optional<std::vector<std::string>>& labels,
                                      const std::optional<std::string>& url_auth) = 0;
  // Bounces the sprite's container (its processes all end; the machine stays up).
  virtual Status restart(const std::string& name) = 0;
  // A real probe: runs `true` inside. Ok with the time it took, or why it failed.
  virtual Result<std::int64_t> check(const std::string& name) = 0;
  // One machine, one sprite (VM mode): create and destroy belong to the control plane.
  virtual bool single_sprite() const = 0;
  // Bytes written to the sprite's disk (trims subtracted), or nullopt when not known.
  virtual std::optional<std::uint64_t> disk_used(const std::string& name) = 0;
  // Why the sprite's disk takes no writes ("" when it does), or nullopt when not known.
  virtual std::optional<std::string> disk_health(const std::string&) { return std::nullopt; }

  // Checkpoints (API.md 2.10). Errors: ENOENT (no such sprite or checkpoint), EBUSY
  // (deleting the current state), ENOTSUP (this runtime keeps none). progress gets a
  // line at each step.
  using Progress = std::function<void(const std::string&)>;
  virtual Result<CheckpointRecord> checkpoint(const std::string& name, const std::string& comment, const Progress& progress);
  // Restores; returns the checkpoint that keeps the state it left.
  virtual Result<CheckpointRecord> restore(const std::string& name, const std::string& id, const Progress& progress);
  // "Current" first, then the checkpoints, oldest first.
  virtual Result<std::vector<CheckpointRecord>> checkpoints(const std::string& name);
  virtual Status delete_checkpoint(const std::string& name, const std::string& id);
};

}  // namespace bp::agent
