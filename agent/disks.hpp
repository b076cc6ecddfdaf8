// agent/disks.hpp — sprites' disks: a storage::Volume per sprite, served to the kernel by
// a frontend (FUSE + loop today), carrying ext4, mounted where the container's root goes.
// The base image is imported once into a sealed base volume; a new sprite's volume starts
// as a clone of it (its map, not its data).
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "storage/object_store.hpp"
#include "storage/volume.hpp"

namespace bp::storage {
class AttachedDisk;
}

namespace bp::agent {

struct MountedView;  // a checkpoint mounted under /.sprite/checkpoints (disks.cpp)

struct DisksConfig {
  std::string state_dir;             // local state of each volume: STATE/volumes/NAME/
  storage::VolumeOptions defaults;   // size, durability, limits; name and dir are per volume
  // The newest this many checkpoints are mounted read-only under the disk's
  // /.sprite/checkpoints/ID (a tmpfs shared into the container). 0: none.
  std::size_t checkpoint_mounts = 3;
};

class Disks {
 public:
  Disks(DisksConfig cfg, std::unique_ptr<storage::ObjectStore> store);
  ~Disks();  // unmounts whatever is still mounted

  // Mounts volume's ext4 at target. create: the store may lack the volume, which then
  // starts as a clone of the base image's volume (imported on first use). Without
  // create, a volume the store lacks is an error, never a new empty disk.
  Status mount(const std::string& volume, const std::string& target, bool create, const std::string& base_image);
  // Unmounts, detaches the block device, stops the frontend and uploads what is left.
  Status unmount(const std::string& volume);
  // After unmount: deletes the volume's objects and its local state.
  Status remove(const std::string& volume);
  void unmount_all();

  // Bytes the sprite has written (trims subtracted), or nullopt when not mounted.
  std::optional<std::uint64_t> used_bytes(const std::string& volume);
  // Whether the volume's filesystem is mounted at its target right now.
  bool mounted(const std::string& volume);
  // "" when the disk takes writes, else why not (its lease); nullopt when not mounted.
  std::optional<std::string> health(const std::string& volume);

  // Checkpoints of a mounted volume (ENOENT: not mounted, or no such checkpoint).
  // checkpoint freezes the filesystem (FIFREEZE: a clean journal, so the checkpoint
  // mounts by itself) while the volume takes it; the caller freezes the processes.
  Result<storage::Checkpoint> checkpoint(const std::string& volume, const std::string& comment);
  // The caller has stopped everything using the disk: it is unmounted, pointed at the
  // checkpoint and mounted again. Returns the checkpoint keeping the state it left.
  Result<storage::Checkpoint> restore(const std::string& volume, const std::string& id);
  // The live state first (id "Current"), then the checkpoints, oldest first.
  Result<std::vector<storage::Checkpoint>> checkpoints(const std::string& volume);
  Status delete_checkpoint(const std::string& volume, const std::string& id);
  storage::ObjectStore& store() { return *store_; }

 private:
  struct Mounted;
  struct Base {
    std::string image, volume;
    std::uint64_t seq = 0;
  };
  Result<Base> base(const std::string& image);
  Result<Base> import_base(const std::string& image);
  storage::VolumeOptions options(const std::string& volume) const;
  // The mounted volume; its ops mutex serialises checkpoint, restore, delete, unmount.
  Result<std::shared_ptr<Mounted>> find(const std::string& volume);
  Status attach_and_mount(Mounted& m, bool format);
  // /.sprite/checkpoints: brings the mounted views in line with the newest checkpoints
  // (errors are logged: a view is a convenience, never a reason to fail), or removes them.
  void mount_views(const std::shared_ptr<Mounted>& m);
  void sync_views(Mounted& m);
  void run_views();
  void unmount_views(Mounted& m);
  Status mount_views_dir(Mounted& m);
  bool drop_view(MountedView& v);

  DisksConfig cfg_;
  std::unique_ptr<storage::ObjectStore> store_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Mounted>> mounted_;
  std::mutex base_mu_;  // one import at a time
  // The views thread: mounts and unmounts checkpoints under /.sprite/checkpoints.
  std::mutex views_mu_;
  std::condition_variable views_cv_;
  std::deque<std::weak_ptr<Mounted>> views_queue_;
  bool views_stop_ = false;
  std::thread views_thread_;
  std::optional<Base> base_;
};

// Opens the object store a URL names (file://, s3://, s3+http://).
Result<std::unique_ptr<storage::ObjectStore>> open_object_store(const std::string& url,
                                                                const storage::S3Credentials& creds);

}  // namespace bp::agent
