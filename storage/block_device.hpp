// storage/block_device.hpp — what a frontend serves: a fixed-size disk addressed in
// bytes. The volume engine implements it; frontends (FUSE + loop today, ublk later)
// only see this. Every call may block and may come from several threads at once.
#pragma once

#include <cstdint>
#include <span>

#include "common/result.hpp"

namespace bp::storage {

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual std::uint64_t size() const = 0;  // bytes, a multiple of 4096
  // Reads buf.size() bytes at offset (never-written ranges read as zeros). Offsets and
  // lengths need no alignment; a range past size() is EINVAL.
  virtual Status read(std::uint64_t offset, std::span<char> buf) = 0;
  virtual Status write(std::uint64_t offset, std::span<const char> data) = 0;
  // Discard: the range reads as zeros afterwards and stops counting as used.
  virtual Status trim(std::uint64_t offset, std::uint64_t length) = 0;
  // Returns when every write acknowledged before the call is durable as the volume's
  // durability mode defines it (journal fsync'd, or in the object store). EIO when it
  // cannot be made so in bounded time.
  virtual Status flush() = 0;
};

}  // namespace bp::storage
