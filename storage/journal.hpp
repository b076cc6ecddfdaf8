// storage/journal.hpp — the local write-ahead journal of a volume: files of records
//   header (32 bytes): magic "BPJ1", kind (write or trim), lba, blocks, CRC-32C
//   data: blocks * 4096 bytes (writes only)
// appended in order. The CRC covers the header and the data, so a record torn by a crash
// or a power loss is found on replay, and replay stops there: what comes back is always a
// prefix of what was written, and every record an fdatasync covered is in it. Files are
// never reused (a new one gets a new id), so stale bytes of an old record cannot pass.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.hpp"

namespace bp::storage {

constexpr std::size_t kJournalHeader = 32;

struct JournalRecord {
  enum Kind : std::uint16_t { write = 1, trim = 2 };
  Kind kind = write;
  std::uint64_t lba = 0;
  std::uint64_t blocks = 0;
  std::uint64_t data_offset = 0;  // where the record's data starts in the file (writes)
};

// Appends a write record at offset `at`; returns the offset after it.
Result<std::uint64_t> journal_append_write(int fd, std::uint64_t at, std::uint64_t lba, std::span<const char> data);
Result<std::uint64_t> journal_append_trim(int fd, std::uint64_t at, std::uint64_t lba, std::uint64_t blocks);

struct JournalScan {
  std::vector<JournalRecord> records;
  std::uint64_t end = 0;  // the end of the last good record
  bool torn = false;      // bytes after `end` that are no record (a torn tail)
};
// Reads every good record from the start, stopping at the first bad one.
Result<JournalScan> journal_scan(int fd);

}  // namespace bp::storage
