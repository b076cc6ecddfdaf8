// storage/file_store.cpp — file://DIR: one file per object. Writes go to a temporary
// file, are fsync'd, then appear atomically: rename (always), link (absent: fails if the
// key exists), or rename under an exclusive lock after checking the ETag (matches). The
// ETag is a random token stored with the file (xattr user.bp.etag), so every write has
// its own; where the filesystem keeps no user xattrs, it is a hash of the content, as
// S3's own ETags are. (Inode, mtime and size are not enough: a freed inode comes back
// within the same clock tick with a same-sized file, and a lost update follows.)
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>

#include "common/fd.hpp"
#include "common/sys.hpp"
#include "storage/object_store.hpp"
#include "storage/sigv4.hpp"

namespace bp::storage {

namespace fs = std::filesystem;

bool valid_object_key(const std::string& key) {
  if (key.empty() || key.size() > 1024 || key.front() == '/' || key.find('\0') != std::string::npos) return false;
  std::size_t i = 0;
  while (i <= key.size()) {
    std::size_t slash = key.find('/', i);
    if (slash == std::string::npos) slash = key.size();
    std::string_view seg(key.data() + i, slash - i);
    if (seg.empty() || seg == "." || seg == "..") return false;
    i = slash + 1;
  }
  return true;
}

namespace {

constexpr const char* kTmp = ".tmp";    // in DIR: temporary files (not objects)
constexpr const char* kLock = ".lock";  // in DIR: serialises the visible steps of writes

constexpr const char* kEtagXattr = "user.bp.etag";

// The ETag of an open object file: its token, or the hash of its content.
Result<std::string> etag_of(int fd) {
  char buf[64];
  ssize_t n = ::fgetxattr(fd, kEtagXattr, buf, sizeof buf);
  if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
  if (errno != ENODATA && errno != ENOTSUP) return sys_error("object store: read ETag");
  std::string data;
  char chunk[65536];
  for (off_t off = 0;;) {
    ssize_t r = ::pread(fd, chunk, sizeof chunk, off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error("object store: read for ETag");
    if (r == 0) break;
    data.append(chunk, static_cast<std::size_t>(r));
    off += r;
  }
  return sha256_hex(data).substr(0, 32);
}

Result<std::string> etag_of(const std::string& path) {
  UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f) return sys_error("open " + path);
  return etag_of(f.get());
}

Status fsync_dir(const std::string& dir) {
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d || ::fsync(d.get()) != 0) return sys_error("fsync " + dir);
  return {};
}

class FileStore final : public ObjectStore {
 public:
  FileStore(std::string dir, std::string url) : dir_(std::move(dir)), url_(std::move(url)) {}

  Status init() {
    std::error_code ec;
    fs::create_directories(dir_ + "/" + kTmp, ec);
    if (ec) return make_error("object store " + url_ + ": cannot create " + dir_ + ": " + ec.message(), ec.value());
    lock_.reset(::open((dir_ + "/" + kLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock_) return sys_error("object store " + url_ + ": open " + dir_ + "/" + kLock);
    return {};
  }

  Result<std::string> put(const std::string& key, const std::string& data, const PutIf& cond) override {
    if (!valid_object_key(key)) return make_error("invalid object key '" + key + "'", EINVAL);
    std::string path = dir_ + "/" + key;
    std::string tmp = dir_ + "/" + kTmp + "/" + random_token();
    std::string etag;
    {
      UniqueFd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (!f) return sys_error("object store: create " + tmp);
      for (std::size_t off = 0; off < data.size();) {
        ssize_t n = ::write(f.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          auto err = sys_error("object store: write " + tmp);
          ::unlink(tmp.c_str());
          return err;
        }
        off += static_cast<std::size_t>(n);
      }
      // This write's ETag, with the file before anyone can see it.
      etag = random_token();
      if (::fsetxattr(f.get(), kEtagXattr, etag.data(), etag.size(), 0) != 0) {
        if (errno != ENOTSUP) {
          auto err = sys_error("object store: set ETag on " + tmp);
          ::unlink(tmp.c_str());
          return err;
        }
        etag = sha256_hex(data).substr(0, 32);
      }
      if (::fsync(f.get()) != 0) {
        auto err = sys_error("object store: fsync " + tmp);
        ::unlink(tmp.c_str());
        return err;
      }
    }
    std::string parent = fs::path(path).parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) {
      ::unlink(tmp.c_str());
      return make_error("object store: mkdir " + parent + ": " + ec.message(), ec.value());
    }
    Status visible = publish(tmp, path, key, cond);
    if (!visible) {
      ::unlink(tmp.c_str());
      return std::move(visible.error());
    }
    if (auto s = fsync_dir(parent); !s) return std::move(s.error());
    return etag;
  }

  Result<std::string> get(const std::string& key, std::uint64_t offset, std::optional<std::uint64_t> length) override {
    if (!valid_object_key(key)) return make_error("invalid object key '" + key + "'", EINVAL);
    UniqueFd f(::open((dir_ + "/" + key).c_str(), O_RDONLY | O_CLOEXEC));
    if (!f) return errno == ENOENT || errno == ENOTDIR ? make_error("no object '" + key + "'", ENOENT)
                                                       : sys_error("object store: open " + key);
    struct stat st {};
    if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return make_error("no object '" + key + "'", ENOENT);
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (offset > size || (offset == size && size > 0 && length != 0))
      return make_error("range starts past the end of '" + key + "'", ERANGE);
    std::uint64_t n = std::min(size - offset, length.value_or(size - offset));
    std::string out(n, '\0');
    if (auto s = pread_full(f.get(), out.data(), n, offset); !s) return std::move(s).error().wrap("object store: read " + key);
    return out;
  }

  Result<ObjectInfo> head(const std::string& key) override {
    if (!valid_object_key(key)) return make_error("invalid object key '" + key + "'", EINVAL);
    UniqueFd f(::open((dir_ + "/" + key).c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!f || ::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return make_error("no object '" + key + "'", ENOENT);
    auto etag = etag_of(f.get());
    if (!etag) return std::move(etag.error());
    return ObjectInfo{key, static_cast<std::uint64_t>(st.st_size), std::move(*etag)};
  }

  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override {
    std::vector<ObjectInfo> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      // Paths under dir_ by construction: the relative key is the rest of the path.
      std::string rel = it->path().string().substr(dir_.size() + 1);
      std::error_code tec;
      if (it.depth() == 0 && (rel == kTmp || rel == kLock)) {
        if (it->is_directory(tec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(tec) || !rel.starts_with(prefix)) continue;
      auto info = head(rel);
      if (!info) continue;  // deleted meanwhile
      out.push_back(std::move(*info));
    }
    if (ec) return make_error("object store: list " + dir_ + ": " + ec.message(), ec.value());
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
    return out;
  }

  Status remove(const std::vector<std::string>& keys) override {
    for (const auto& key : keys) {
      if (!valid_object_key(key)) return make_error("invalid object key '" + key + "'", EINVAL);
      if (::unlink((dir_ + "/" + key).c_str()) != 0 && errno != ENOENT) return sys_error("object store: delete " + key);
    }
    return {};
  }

  std::string url() const override { return url_; }

 private:
  // Makes tmp visible as path, as cond allows, under the store's lock (so a matches
  // write's check and its rename are one step for every writer of this directory).
  Status publish(const std::string& tmp, const std::string& path, const std::string& key, const PutIf& cond) {
    // flock excludes other processes only: it locks the open file description, which
    // this process's threads share. The mutex excludes those threads.
    std::lock_guard threads(mu_);
    while (::flock(lock_.get(), LOCK_EX) != 0)
      if (errno != EINTR) return sys_error("object store: lock");
    struct Unlock {
      int fd;
      ~Unlock() { ::flock(fd, LOCK_UN); }
    } unlock{lock_.get()};
    if (cond.kind == PutIf::absent) {
      if (::link(tmp.c_str(), path.c_str()) != 0)
        return errno == EEXIST ? make_error("precondition failed: '" + key + "' exists", EEXIST)
                               : sys_error("object store: link " + key);
      ::unlink(tmp.c_str());
      return {};
    }
    if (cond.kind == PutIf::matches) {
      auto cur = etag_of(path);
      if (!cur) return make_error("precondition failed: no object '" + key + "'", ESTALE);
      if (*cur != cond.etag)
        return make_error("precondition failed: '" + key + "' has changed (ETag " + *cur + ")", ESTALE);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error("object store: rename to " + key);
    return {};
  }

  // 128 random bits in hex: temporary file names and ETags.
  static std::string random_token() {
    std::random_device rd;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
    return buf;
  }

  std::string dir_, url_;
  UniqueFd lock_;
  std::mutex mu_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> open_file_store(const std::string& url) {
  if (!url.starts_with("file://")) return make_error("not a file:// URL: " + url, EINVAL);
  std::string dir = url.substr(7);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty() || dir.front() != '/') return make_error("file:// URLs name an absolute directory: " + url, EINVAL);
  auto store = std::make_unique<FileStore>(dir, url);
  if (auto s = store->init(); !s) return std::move(s.error());
  return std::unique_ptr<ObjectStore>(std::move(store));
}

}  // namespace bp::storage
