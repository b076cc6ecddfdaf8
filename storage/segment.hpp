// storage/segment.hpp — the immutable objects a volume's data lives in. A segment is
//   header (40 bytes): "BPSEG001", index length, raw index length, seq, part, parts,
//                      the journal file it came from
//   index: one zstd frame of entries {lba, blocks, flags, frame offset, frame length}
//   frames: each up to 16 blocks of data, one zstd frame with its content checksum
// Every frame decodes on its own (a ranged GET of one frame is enough to read a block),
// and both the index and every frame carry zstd's checksum, so a corrupt byte anywhere
// is an error, never wrong data. A trim is an index entry without a frame.
// A journal file may become several segments: part/parts say which, so a reader of the
// object store applies a journal file's segments only when it has all of them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace bp::storage {

constexpr std::uint32_t kFrameBlocks = 16;  // 64 KiB: small enough to fetch one, large enough to compress
constexpr std::size_t kSegmentHeader = 40;

struct SegmentEntry {
  std::uint64_t lba = 0;
  std::uint32_t blocks = 0;
  bool trim = false;
  std::uint64_t frame_off = 0;  // from the start of the object
  std::uint32_t frame_len = 0;
};

struct SegmentIndex {
  std::uint64_t seq = 0;
  std::uint32_t part = 0, parts = 1;
  std::uint64_t journal = 0;  // the journal file whose writes these are
  std::vector<SegmentEntry> entries;
};

class SegmentBuilder {
 public:
  SegmentBuilder();
  ~SegmentBuilder();
  SegmentBuilder(const SegmentBuilder&) = delete;
  SegmentBuilder& operator=(const SegmentBuilder&) = delete;

  // Whole blocks starting at lba (data.size() a multiple of kBlock), cut into frames.
  void add_data(std::uint64_t lba, std::span<const char> data);
  void add_trim(std::uint64_t lba, std::uint64_t blocks);
  std::size_t raw_bytes() const { return raw_; }  // data added, uncompressed
  bool empty() const { return entries_.empty(); }
  // The object; entries() then have their final offsets.
  std::string finish(std::uint64_t seq, std::uint32_t part, std::uint32_t parts, std::uint64_t journal);
  const std::vector<SegmentEntry>& entries() const { return entries_; }

 private:
  void* cctx_;
  std::vector<SegmentEntry> entries_;  // frame_off relative to the frames until finish()
  std::string frames_;
  std::size_t raw_ = 0;
};

// The index length a segment's header announces (EBADMSG if it is no segment header).
Result<std::uint32_t> segment_index_length(std::span<const char> header);
// Decodes header + index (the object's first kSegmentHeader + index length bytes).
Result<SegmentIndex> decode_segment_index(std::span<const char> head);
// One frame back to its blocks: exactly blocks * kBlock bytes, or EBADMSG.
Result<std::string> decode_frame(std::span<const char> frame, std::uint32_t blocks);

}  // namespace bp::storage
