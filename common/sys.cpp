// common/sys.cpp — whole-file I/O with errors that name the call and the path.
#include "common/sys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "common/fd.hpp"

namespace bp {

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (!fd) return sys_error("open(" + path + ")");
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
    if (n < 0) return sys_error("read(" + path + ")");
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = retry_eintr([&] { return ::write(fd, data.data(), data.size()); });
    if (n < 0) return sys_error("write");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Status write_file(const std::string& path, std::string_view data, int mode) {
  UniqueFd fd(retry_eintr(
      [&] { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode); }));
  if (!fd) return sys_error("open(" + path + ")");
  if (auto s = write_all(fd.get(), data); !s) return std::move(s.error()).wrap(path);
  return {};
}

Status pread_full(int fd, char* buf, std::size_t n, std::uint64_t at) {
  while (n > 0) {
    ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(at));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error("pread");
    if (r == 0) return make_error("pread: unexpected end of file", EIO);
    buf += r;
    n -= static_cast<std::size_t>(r);
    at += static_cast<std::uint64_t>(r);
  }
  return {};
}

Status pwrite_full(int fd, const char* buf, std::size_t n, std::uint64_t at) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, buf, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return sys_error("pwrite");
    if (w == 0) return make_error("pwrite: wrote nothing", EIO);
    buf += w;
    n -= static_cast<std::size_t>(w);
    at += static_cast<std::uint64_t>(w);
  }
  return {};
}

Status make_dirs(const std::string& path, int mode) {
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    std::string part = path.substr(0, i);
    if (::mkdir(part.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) return sys_error("mkdir(" + part + ")");
  }
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view data, int mode) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(retry_eintr(
      [&] { return ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode); }));
  if (!fd) return sys_error("open(" + tmp + ")");
  if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) return sys_error("fchmod(" + tmp + ")");
  if (auto s = write_all(fd.get(), data); !s) return std::move(s.error()).wrap(tmp);
  if (::fsync(fd.get()) != 0) return sys_error("fsync(" + tmp + ")");
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error("rename(" + tmp + ", " + path + ")");
  return {};
}

}  // namespace bp
