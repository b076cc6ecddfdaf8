// storage/extent_map.hpp — which runs of disk blocks live where: non-overlapping runs
// [lba, lba+len) each with a location, kept in a std::map by first block. Assigning a
// range splits what it overlaps. Locations are position-independent (a journal run says
// where block 0 would be, an object run names its whole frame), so a split never has to
// rewrite the halves.
#pragma once

#include <cstdint>
#include <map>

namespace bp::storage {

constexpr std::uint64_t kBlock = 4096;

struct Loc {
  enum Kind : std::uint8_t { zero, journal, object };
  Kind kind = zero;
  std::uint32_t src = 0;       // object: whose data/ holds it (0 = this volume, else a parent's)
  std::uint64_t id = 0;        // journal: file id (also for a trim still in the journal); object: segment seq
  std::int64_t delta = 0;      // journal: block b's bytes start at delta + b * kBlock in the file
  std::uint64_t frame_off = 0;  // object: the compressed frame holding the run
  std::uint32_t frame_len = 0;
  std::uint64_t frame_lba = 0;  // object: the frame decompresses to blocks [frame_lba, frame_lba + frame_blocks)
  std::uint32_t frame_blocks = 0;
  bool operator==(const Loc&) const = default;
};

class ExtentMap {
 public:
  struct Run {
    std::uint64_t len;
    Loc loc;
  };
  using Runs = std::map<std::uint64_t, Run>;

  // Blocks [lba, lba + n) are now at loc.
  void assign(std::uint64_t lba, std::uint64_t n, const Loc& loc) {
    cut(lba, n);
    auto it = runs_.emplace(lba, Run{n, loc}).first;
    // Merge with equal neighbours, so sequential writes stay one run.
    if (it != runs_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second.len == lba && prev->second.loc == loc) {
        prev->second.len += n;
        runs_.erase(it);
        it = prev;
      }
    }
    auto next = std::next(it);
    if (next != runs_.end() && it->first + it->second.len == next->first && next->second.loc == loc) {
      it->second.len += next->second.len;
      runs_.erase(next);
    }
  }

  // Blocks [lba, lba + n) are mapped nowhere.
  void erase(std::uint64_t lba, std::uint64_t n) { cut(lba, n); }

  // Calls f(first, count, loc-or-nullptr) for consecutive pieces covering [lba, lba + n);
  // nullptr for blocks this map does not have.
  template <class F>
  void visit(std::uint64_t lba, std::uint64_t n, F&& f) const {
    std::uint64_t end = lba + n, at = lba;
    auto it = runs_.upper_bound(lba);
    if (it != runs_.begin()) --it;
    for (; at < end; ++it) {
      if (it == runs_.end() || it->first >= end) {
        f(at, end - at, static_cast<const Loc*>(nullptr));
        break;
      }
      std::uint64_t rs = it->first, re = rs + it->second.len;
      if (re <= at) continue;
      if (rs > at) {
        f(at, rs - at, static_cast<const Loc*>(nullptr));
        at = rs;
      }
      std::uint64_t stop = re < end ? re : end;
      f(at, stop - at, &it->second.loc);
      at = stop;
    }
  }

  const Runs& runs() const { return runs_; }
  Runs& runs() { return runs_; }
  bool empty() const { return runs_.empty(); }
  void clear() { runs_.clear(); }

 private:
  // Removes [lba, lba + n) from every run, keeping the parts outside it.
  void cut(std::uint64_t lba, std::uint64_t n) {
    std::uint64_t end = lba + n;
    auto it = runs_.upper_bound(lba);
    if (it != runs_.begin()) {
      auto prev = std::prev(it);
      std::uint64_t pe = prev->first + prev->second.len;
      if (pe > lba) {
        prev->second.len = lba - prev->first;
        if (pe > end) runs_.emplace(end, Run{pe - end, prev->second.loc});
        if (prev->second.len == 0) runs_.erase(prev);
      }
    }
    it = runs_.lower_bound(lba);
    while (it != runs_.end() && it->first < end) {
      std::uint64_t re = it->first + it->second.len;
      if (re > end) runs_.emplace(end, Run{re - end, it->second.loc});
      it = runs_.erase(it);
    }
  }

  Runs runs_;
};

}  // namespace bp::storage
