// agent/sprites.hpp — the sprites of this machine: each its own disk and its own container.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "agent/disks.hpp"
#include "agent/registry.hpp"
#include "init/container/container.hpp"

namespace bp::agent {

struct SpritesConfig {
  std::string state_dir;      // sprites live in STATE/sprites/NAME/
  std::string base_image;     // a root directory every new sprite starts from; "" = none
  std::string cgroup_parent;  // where the sprites' cgroups go
  container::Limits limits;
  bool no_new_privs = false;
  std::size_t max_sprites = 16;
  int stop_grace_ms = 5000;
  bool single = false;  // VM mode: the one sprite of this machine
  Disks* disks = nullptr;  // where sprites' disks come from (outlives the manager)
};

// Each sprite: STATE/sprites/NAME/sprite.json (its record, naming its volume) and root/
// (its disk's ext4, the container's root). A new sprite's disk is a clone of the base
// image's volume. All methods block (mounts, container start and stop) and are safe to
// call from several threads.
class SpriteManager final : public SpriteControl {
 public:
  SpriteManager(SpritesConfig cfg, Registry& registry);
  ~SpriteManager() override;

  // At boot: brings back every sprite the state directory holds. One that fails to
  // start is listed as cold, with the reason logged.
  Status load();
  Result<SpriteRecord> create(const std::string& name) override;
  Status destroy(const std::string& name) override;
  Result<SpriteRecord> update(const std::string& name, const std::optional<std::vector<std::string>>& labels,
                              const std::optional<std::string>& url_auth) override;
  Status restart(const std::string& name) override;
  Result<std::int64_t> check(const std::string& name) override;
  bool single_sprite() const override { return cfg_.single; }
  std::optional<std::uint64_t> disk_used(const std::string& name) override;
  std::optional<std::string> disk_health(const std::string& name) override;
  Result<CheckpointRecord> checkpoint(const std::string& name, const std::string& comment,
                                      const Progress& progress) override;
  Result<CheckpointRecord> restore(const std::string& name, const std::string& id, const Progress& progress) override;
  Result<std::vector<CheckpointRecord>> checkpoints(const std::string& name) override;
  Status delete_checkpoint(const std::string& name, const std::string& id) override;
  // At shutdown: stops every container and unmounts every root.
  void stop_all();

  // The running container of a sprite, or null. Shared: an exec in flight keeps the
  // object alive while destroy stops the container under it.
  std::shared_ptr<container::Container> container(const std::string& name);

 private:
  std::string dir_of(const std::string& name) const;
  Status mount_root(const std::string& name, const std::string& volume, bool create);
  Status unmount_root(const std::string& name);
  Status start_container(const std::string& name);
  // volume "": the one the record names already.
  Status save_record(const SpriteRecord& rec, std::string volume = "");
  Result<std::string> volume_of(const std::string& name);
  void fetch_records();
  // One per sprite: checkpoint, restore and delete of a checkpoint, one at a time.
  std::shared_ptr<std::mutex> ops_lock(const std::string& name);

  SpritesConfig cfg_;
  Registry& registry_;
  std::mutex mu_;
  std::set<std::string> busy_;  // names being created or destroyed
  std::mutex update_mu_;         // serialises read-modify-write of records
  std::map<std::string, std::shared_ptr<container::Container>> containers_;
  std::map<std::string, std::string> volumes_;  // sprite -> its volume, while mounted
  std::map<std::string, std::shared_ptr<std::mutex>> ops_;
};

}  // namespace bp::agent
