// storage/frontend.hpp — how a volume becomes a block device the kernel can mount:
// today the FUSE disk file under a loop device (fuse_disk.cpp, loop.cpp); a ublk
// frontend can implement the same interface where the kernel has ublk.
#pragma once

#include <memory>
#include <string>

#include "common/result.hpp"
#include "storage/block_device.hpp"

namespace bp::storage {

// A BlockDevice attached to the kernel as a block device node.
class AttachedDisk {
 public:
  virtual ~AttachedDisk() = default;  // detaches if detach() was not called
  virtual const std::string& device() const = 0;  // "/dev/loop3"
  // Detaches the block device, then stops serving. Call after unmounting; idempotent.
  virtual Status detach() = 0;
};

// Serves dev (which must outlive the result) as a block device. workdir is a private
// directory the frontend may use (the FUSE mount point lives there).
Result<std::unique_ptr<AttachedDisk>> attach_fuse_loop(BlockDevice& dev, const std::string& workdir);

// ext4 on a block device: created on first use (lazy init, so mkfs costs O(metadata)),
// mounted with discard so trims reach the volume.
Status ensure_ext4(const std::string& device);
Status mount_ext4(const std::string& device, const std::string& target);

}  // namespace bp::storage
