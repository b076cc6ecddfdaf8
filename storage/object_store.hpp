// storage/object_store.hpp — the object store the volumes live in: one interface, one
// semantics for every backend (file:// here; s3:// with the S3 client). Blocking calls:
// the storage engine runs them on its own threads, never on the event loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace bp::storage {

struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;  // opaque, unquoted; changes with every write of the key
};

// Conditional writes: what makes leases and the map's replica safe between writers.
struct PutIf {
  enum Kind { always, absent, matches } kind = always;
  std::string etag;  // for matches
  static PutIf none_match() { return {absent, {}}; }          // If-None-Match: *
  static PutIf match(std::string e) { return {matches, std::move(e)}; }  // If-Match: e
};

// Error codes every backend uses: EEXIST (an absent write found the key), ESTALE (a
// matches write found another ETag or no object), ENOENT (get/head of a missing key),
// ERANGE (a range starting past the end), EINVAL (a key that cannot be an object key),
// EIO and others (the store itself failed; the message says how).
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Stores data under key (all or nothing); the new ETag.
  virtual Result<std::string> put(const std::string& key, const std::string& data, const PutIf& cond = {}) = 0;
  // The object, or length bytes of it from offset (fewer at its end).
  virtual Result<std::string> get(const std::string& key, std::uint64_t offset = 0,
                                  std::optional<std::uint64_t> length = std::nullopt) = 0;
  virtual Result<ObjectInfo> head(const std::string& key) = 0;
  // Every key under prefix, in key order.
  virtual Result<std::vector<ObjectInfo>> list(const std::string& prefix) = 0;
  // Deletes each key; a missing key is not an error.
  virtual Status remove(const std::vector<std::string>& keys) = 0;
  virtual std::string url() const = 0;
};

// An object key: 1-1024 bytes, no NUL, no leading '/', no empty, "." or ".." segment.
bool valid_object_key(const std::string& key);

// file://DIR (DIR absolute; created if missing).
Result<std::unique_ptr<ObjectStore>> open_file_store(const std::string& url);

// How to reach and sign for an S3-compatible store (never logged, never given to a
// container).
struct S3Credentials {
  std::string access_key;
  std::string secret_key;
  std::string region = "us-east-1";
};

// s3://HOST[:PORT]/BUCKET[/PREFIX] (HTTPS) or s3+http://... (plain HTTP, for a local
// RGW or MinIO); s3_store.cpp documents the query options. Checks nothing over the
// network: the first call does.
Result<std::unique_ptr<ObjectStore>> open_s3_store(const std::string& url, const S3Credentials& creds);

}  // namespace bp::storage
