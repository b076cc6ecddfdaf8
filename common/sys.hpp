// common/sys.hpp — small syscall helpers: EINTR retry, whole-file reads and writes.
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>

#include "common/result.hpp"

namespace bp {

// Retries a raw syscall interrupted by a signal. Never use it for close().
template <class F>
auto retry_eintr(F fn) {
  for (;;) {
    auto r = fn();
    if (r != -1 || errno != EINTR) return r;
  }
}

Result<std::string> read_file(const std::string& path);
// Writes the whole of data to an existing or new file (O_TRUNC), with the given mode.
Status write_file(const std::string& path, std::string_view data, int mode = 0644);
// Writes to path.tmp, fsyncs, renames over path: readers see the old or the new file.
Status write_file_atomic(const std::string& path, std::string_view data, int mode = 0644);
// mkdir -p with mode for the directories it makes.
Status make_dirs(const std::string& path, int mode = 0700);
// Reads exactly n bytes at offset at (EIO at an early end of file), retrying short
// reads and EINTR.
Status pread_full(int fd, char* buf, std::size_t n, std::uint64_t at);
// Writes all n bytes at offset at, retrying short writes and EINTR.
Status pwrite_full(int fd, const char* buf, std::size_t n, std::uint64_t at);
// Writes all bytes to fd, retrying short writes and EINTR.
Status write_all(int fd, std::string_view data);

}  // namespace bp
