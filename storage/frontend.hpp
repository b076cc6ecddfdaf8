// storage/frontend.hpp — how a volume becomes a block device the kernel can mount:
// today the FUSE disk file under a loop device (fuse_disk.cpp, loop.cpp); a ublk
// frontend can implement the same interface where the kernel has ublk.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/fd.hpp"
#include "common/result.hpp"
#include "storage/block_device.hpp"

namespace bp::storage {

// A BlockDevice attached to the kernel as a block device node.
class AttachedDisk {
 public:
  // Detaches if detach() was not called or failed; if the device is still in use (its
  // filesystem mounted), the device frees itself when that ends, and I/O to it fails
  // with EIO from then on, since dev may be gone.
  virtual ~AttachedDisk() = default;
  virtual const std::string& device() const = 0;  // "/dev/loop3"
  // Detaches the block device, then stops serving. Call after unmounting; idempotent.
  // EBUSY, with everything left working, while the device is in use (still mounted).
  virtual Status detach() = 0;
  // Call once a filesystem on the device is mounted: the frontend then stops holding the
  // device open itself, so the mount alone keeps it, and the kernel clears it when the
  // mount goes, even if this process was killed. (A process that serves the device must
  // not close it while dying: its last close waits for the device's open_mutex, which a
  // sync(2) elsewhere holds while it waits for writeback that only this process could
  // serve, and the FUSE connection is aborted only after that close.)
  virtual void release_hold() = 0;
};

// Serves dev (which must outlive the result) as a block device. workdir is a private
// directory the frontend may use (the FUSE mount point lives there); it is created if
// missing. fuse_threads serve the kernel's requests (dev's calls may block).
//
// The serving process must outlive every mount of the device. If it exits with the
// filesystem still mounted (say, in a mount namespace that dies with it), the last
// unmount flushes through the loop device to FUSE workers that are gone, and hangs in
// the kernel until the connection is aborted (/sys/fs/fuse/connections/N/abort).
Result<std::unique_ptr<AttachedDisk>> attach_fuse_loop(BlockDevice& dev, const std::string& workdir,
                                                      int fuse_threads = 4);

// ext4 on a block device: created on first use (lazy init, so mkfs costs O(metadata)),
// mounted with discard so trims reach the volume.
Status ensure_ext4(const std::string& device);
Status mount_ext4(const std::string& device, const std::string& target);
// Read-only, nosuid, nodev (a checkpoint): fails if the filesystem needs its journal
// replayed, since the device takes no writes.
Status mount_ext4_read_only(const std::string& device, const std::string& target);

// The two pieces attach_fuse_loop() joins, for tools and tests.

// dev served as the one regular file <mountpoint>/disk by a FUSE file system with
// direct I/O (no page cache above dev) and its own worker threads (fuse_disk.cpp).
class FuseDisk {
 public:
  // Stops; if stop() fails, aborts the FUSE connection first (users of the file get
  // EIO), so the workers, which call into dev, are always gone afterwards.
  virtual ~FuseDisk() = default;
  virtual const std::string& file() const = 0;
  // Unmounts and joins the workers; idempotent. EBUSY, still serving, while the file
  // is open (a loop device still attached to it).
  virtual Status stop() = 0;
};
Result<std::unique_ptr<FuseDisk>> serve_fuse_disk(BlockDevice& dev, const std::string& mountpoint,
                                                 int threads = 4);

// A loop device over a file, with direct I/O and 4 KiB blocks (loop.cpp). Move-only;
// the destructor detaches (lazily, if the device is still in use).
class LoopDevice {
 public:
  static Result<LoopDevice> attach(const std::string& file);

  LoopDevice() = default;
  LoopDevice(LoopDevice&& o) noexcept { *this = std::move(o); }
  LoopDevice& operator=(LoopDevice&& o) noexcept;
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  ~LoopDevice();

  const std::string& device() const { return device_; }  // "" once detached
  void release_hold() { fd_.reset(); }  // see AttachedDisk::release_hold
  // The backing file as the kernel names it (/sys/block/loopN/loop/backing_file).
  const std::string& backing_file() const { return backing_; }
  // Clears the device and waits until the kernel has let go of the file. EBUSY while
  // something holds the device exclusively (a mounted filesystem); idempotent.
  Status detach();

 private:
  void drop() noexcept;  // detach(), or else have the kernel clear the device at its last close

  UniqueFd fd_;  // held until release_hold(): with autoclear, the device lives while it or a user is open
  std::string device_;
  std::string backing_;
  std::uint64_t file_dev_ = 0, file_ino_ = 0;  // the backing file, to recognise it
};

}  // namespace bp::storage
