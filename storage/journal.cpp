// storage/journal.cpp — journal records (see journal.hpp).
#include "storage/journal.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/sys.hpp"
#include "storage/crc32c.hpp"
#include "storage/extent_map.hpp"

namespace bp::storage {

namespace {

constexpr char kMagic[4] = {'B', 'P', 'J', '1'};

void put32(char* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
void put64(char* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
std::uint32_t get32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
std::uint64_t get64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Layout: magic[0,4) kind[4,6) pad[6,8) lba[8,16) blocks[16,24) crc[24,28) pad[28,32).
void make_header(char* h, JournalRecord::Kind kind, std::uint64_t lba, std::uint64_t blocks) {
  std::memset(h, 0, kJournalHeader);
  std::memcpy(h, kMagic, 4);
  std::uint16_t k = kind;
  std::memcpy(h + 4, &k, 2);
  put64(h + 8, lba);
  put64(h + 16, blocks);
}

Status write_all(int fd, std::uint64_t at, iovec* iov, int n) {
  while (n > 0) {
    ssize_t w = ::pwritev(fd, iov, n, static_cast<off_t>(at));
    if (w < 0) {
      if (errno == EINTR) continue;
      return sys_error("journal: write");
    }
    at += static_cast<std::uint64_t>(w);
    auto left = static_cast<std::size_t>(w);
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --n;
    }
    if (n > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return {};
}

}  // namespace

Result<std::uint64_t> journal_append_write(int fd, std::uint64_t at, std::uint64_t lba, std::span<const char> data) {
  char h[kJournalHeader];
  make_header(h, JournalRecord::write, lba, data.size() / kBlock);
  std::uint32_t crc = crc32c(crc32c(0, h, kJournalHeader), data.data(), data.size());
  put32(h + 24, crc);
  iovec iov[2] = {{h, kJournalHeader}, {const_cast<char*>(data.data()), data.size()}};
  if (auto s = write_all(fd, at, iov, 2); !s) return std::move(s).error();
  return at + kJournalHeader + data.size();
}

Result<std::uint64_t> journal_append_trim(int fd, std::uint64_t at, std::uint64_t lba, std::uint64_t blocks) {
  char h[kJournalHeader];
  make_header(h, JournalRecord::trim, lba, blocks);
  put32(h + 24, crc32c(0, h, kJournalHeader));
  iovec iov[1] = {{h, kJournalHeader}};
  if (auto s = write_all(fd, at, iov, 1); !s) return std::move(s).error();
  return at + kJournalHeader;
}

Result<JournalScan> journal_scan(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return sys_error("journal: fstat");
  auto size = static_cast<std::uint64_t>(st.st_size);
  JournalScan out;
  std::string data;
  std::uint64_t at = 0;
  while (at + kJournalHeader <= size) {
    char h[kJournalHeader];
    if (!pread_full(fd, h, kJournalHeader, at) || std::memcmp(h, kMagic, 4) != 0) break;
    std::uint16_t kind;
    std::memcpy(&kind, h + 4, 2);
    std::uint64_t lba = get64(h + 8), blocks = get64(h + 16);
    std::uint32_t want = get32(h + 24);
    put32(h + 24, 0);
    if (kind != JournalRecord::write && kind != JournalRecord::trim) break;
    std::uint64_t len = kind == JournalRecord::write ? blocks * kBlock : 0;
    if (blocks == 0 || (kind == JournalRecord::write && (blocks > (1u << 20) || at + kJournalHeader + len > size))) break;
    std::uint32_t crc = crc32c(0, h, kJournalHeader);
    if (len > 0) {
      data.resize(len);
      if (!pread_full(fd, data.data(), len, at + kJournalHeader)) break;
      crc = crc32c(crc, data.data(), len);
    }
    if (crc != want) break;
    out.records.push_back({static_cast<JournalRecord::Kind>(kind), lba, blocks, at + kJournalHeader});
    at += kJournalHeader + len;
  }
  out.end = at;
  out.torn = at < size;
  return out;
}

}  // namespace bp::storage
