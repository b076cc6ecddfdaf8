// storage/segment.cpp — encoding and decoding of segment objects (see segment.hpp).
#include "storage/segment.hpp"

#include <zstd.h>

#include <cstring>

#include "storage/extent_map.hpp"

namespace bp::storage {

namespace {

constexpr char kMagic[8] = {'B', 'P', 'S', 'E', 'G', '0', '0', '1'};
constexpr std::size_t kEntrySize = 32;
constexpr std::uint32_t kTrimFlag = 1;
constexpr std::uint64_t kMaxIndexRaw = 64u << 20;  // far above any segment we write

template <class T>
void put_le(std::string& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
template <class T>
T get_le(const char* p) {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

Error corrupt(std::string what) { return make_error("segment: " + std::move(what), EBADMSG); }

// zstd at level 1 with its content checksum: fast enough to keep up with the journal,
// and every frame verifies itself on the way back.
std::string compress(ZSTD_CCtx* cctx, std::span<const char> in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  std::size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  // Only a too-small buffer fails, and compressBound rules that out.
  if (ZSTD_isError(n)) std::abort();
  out.resize(n);
  return out;
}

}  // namespace

SegmentBuilder::SegmentBuilder() : cctx_(ZSTD_createCCtx()) {
  auto* c = static_cast<ZSTD_CCtx*>(cctx_);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
}

SegmentBuilder::~SegmentBuilder() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_)); }

void SegmentBuilder::add_data(std::uint64_t lba, std::span<const char> data) {
  auto* c = static_cast<ZSTD_CCtx*>(cctx_);
  std::uint64_t blocks = data.size() / kBlock;
  for (std::uint64_t b = 0; b < blocks; b += kFrameBlocks) {
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kFrameBlocks, blocks - b));
    std::string z = compress(c, data.subspan(b * kBlock, n * kBlock));
    entries_.push_back({lba + b, n, false, frames_.size(), static_cast<std::uint32_t>(z.size())});
    frames_ += z;
  }
  raw_ += data.size();
}

void SegmentBuilder::add_trim(std::uint64_t lba, std::uint64_t blocks) {
  // Entries carry 32-bit block counts; a longer trim becomes several.
  while (blocks > 0) {
    auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(blocks, 1u << 30));
    entries_.push_back({lba, n, true, 0, 0});
    lba += n;
    blocks -= n;
  }
}

std::string SegmentBuilder::finish(std::uint64_t seq, std::uint32_t part, std::uint32_t parts,
                                   std::uint64_t journal) {
  std::string raw;
  raw.reserve(entries_.size() * kEntrySize);
  for (const auto& e : entries_) {
    put_le<std::uint64_t>(raw, e.lba);
    put_le<std::uint32_t>(raw, e.blocks);
    put_le<std::uint32_t>(raw, e.trim ? kTrimFlag : 0);
    put_le<std::uint64_t>(raw, e.frame_off);  // relative: the index length is not known yet
    put_le<std::uint32_t>(raw, e.frame_len);
    put_le<std::uint32_t>(raw, 0);
  }
  std::string index = compress(static_cast<ZSTD_CCtx*>(cctx_), raw);
  std::string out(kMagic, sizeof kMagic);
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(index.size()));
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(raw.size()));
  put_le<std::uint64_t>(out, seq);
  put_le<std::uint32_t>(out, part);
  put_le<std::uint32_t>(out, parts);
  put_le<std::uint64_t>(out, journal);
  out += index;
  std::uint64_t base = out.size();
  out += frames_;
  for (auto& e : entries_)
    if (!e.trim) e.frame_off += base;
  return out;
}

Result<std::uint32_t> segment_index_length(std::span<const char> header) {
  if (header.size() < kSegmentHeader || std::memcmp(header.data(), kMagic, sizeof kMagic) != 0)
    return corrupt("bad header");
  return get_le<std::uint32_t>(header.data() + 8);
}

Result<SegmentIndex> decode_segment_index(std::span<const char> head) {
  auto len = segment_index_length(head);
  if (!len) return std::move(len).error();
  if (head.size() < kSegmentHeader + *len) return corrupt("truncated index");
  auto raw_len = get_le<std::uint32_t>(head.data() + 12);
  if (raw_len % kEntrySize != 0 || raw_len > kMaxIndexRaw) return corrupt("bad index length");
  SegmentIndex idx;
  idx.seq = get_le<std::uint64_t>(head.data() + 16);
  idx.part = get_le<std::uint32_t>(head.data() + 24);
  idx.parts = get_le<std::uint32_t>(head.data() + 28);
  idx.journal = get_le<std::uint64_t>(head.data() + 32);
  if (idx.parts == 0 || idx.part >= idx.parts) return corrupt("bad part number");
  std::string raw(raw_len, '\0');
  std::size_t n = ZSTD_decompress(raw.data(), raw.size(), head.data() + kSegmentHeader, *len);
  if (ZSTD_isError(n) || n != raw_len) return corrupt("index does not decode (corrupt bytes)");
  std::uint64_t base = kSegmentHeader + *len;
  for (std::size_t off = 0; off < raw.size(); off += kEntrySize) {
    const char* p = raw.data() + off;
    SegmentEntry e;
    e.lba = get_le<std::uint64_t>(p);
    e.blocks = get_le<std::uint32_t>(p + 8);
    e.trim = get_le<std::uint32_t>(p + 12) & kTrimFlag;
    if (!e.trim) {
      e.frame_off = base + get_le<std::uint64_t>(p + 16);
      e.frame_len = get_le<std::uint32_t>(p + 24);
      if (e.blocks == 0 || e.blocks > kFrameBlocks || e.frame_len == 0) return corrupt("bad frame entry");
    }
    idx.entries.push_back(e);
  }
  return idx;
}

Result<std::string> decode_frame(std::span<const char> frame, std::uint32_t blocks) {
  std::uint64_t want = std::uint64_t{blocks} * kBlock;
  if (ZSTD_getFrameContentSize(frame.data(), frame.size()) != want) return corrupt("frame has the wrong size");
  std::string out(want, '\0');
  std::size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != want) return corrupt(std::string("frame does not decode: ") + ZSTD_getErrorName(n));
  return out;
}

}  // namespace bp::storage
