// agent/sprites.hpp — host mode's sprites: each an overlay of the base image and its own container.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

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
};

// Each sprite: STATE/sprites/NAME/sprite.json (its record), upper/ and work/ (its
// changes), root/ (an overlay of the base image and upper/, the container's root).
// Creating one copies nothing. All methods block (mounts, container start and stop)
// and are safe to call from several threads.
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
  // At shutdown: stops every container and unmounts every root.
  void stop_all();

  // The running container of a sprite, or null. Shared: an exec in flight keeps the
  // object alive while destroy stops the container under it.
  std::shared_ptr<container::Container> container(const std::string& name);

 private:
  std::string dir_of(const std::string& name) const;
  Status mount_root(const std::string& name, const std::string& base_image);
  void unmount_root(const std::string& name);
  Status start_container(const std::string& name);
  Status save_record(const SpriteRecord& rec);

  SpritesConfig cfg_;
  Registry& registry_;
  std::mutex mu_;
  std::set<std::string> busy_;  // names being created or destroyed
  std::mutex update_mu_;         // serialises read-modify-write of records
  std::map<std::string, std::shared_ptr<container::Container>> containers_;
};

}  // namespace bp::agent
