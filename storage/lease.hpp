// storage/lease.hpp — one writer per volume: a lease object in the store, taken and
// renewed with conditional PUTs (ARCHITECTURE.md section 6, "Lease and fencing").
//
//   volumes/NAME/lease = {"epoch":N, "holder":"...", "expires_ms":<unix ms>, "released":false}
//
// Taking it: absent -> create-if-absent at epoch 1 (or past min_epoch); released, expired
// or held by the same holder (this machine, restarted) -> If-Match on the ETag read, at
// epoch + 1; else EBUSY naming the holder. Each holder's epoch is new, and the volume
// puts it into every object key and map write, so what a former holder still writes
// can never be taken for the new holder's.
//
// The holder stops writing when it has not renewed for 2/3 of the TTL (valid_until),
// a third of the TTL before another machine may take the lease: the margin covers clock
// skew between machines and a request in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "common/result.hpp"
#include "storage/object_store.hpp"

namespace bp::storage {

class Lease {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes the lease at key (EBUSY when another holder has it).
  static Result<Lease> acquire(ObjectStore& store, std::string key, std::string holder, std::chrono::milliseconds ttl,
                               std::uint64_t min_epoch = 0);
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) = delete;

  std::uint64_t epoch() const { return epoch_; }
  std::chrono::milliseconds ttl() const { return ttl_; }
  // Extends it. ESTALE: another holder took it (for good: writing must stop).
  Status renew();
  // Lets the next holder take it at once (an If-Match write of "released").
  Status release();

  // Until when this holder may write (steady clock), and whether the lease was lost.
  Clock::time_point valid_until() const;
  bool lost() const;

 private:
  Lease(ObjectStore& store, std::string key, std::string holder, std::chrono::milliseconds ttl)
      : store_(store), key_(std::move(key)), holder_(std::move(holder)), ttl_(ttl) {}
  Status write(bool released);

  ObjectStore& store_;
  std::string key_, holder_;
  std::chrono::milliseconds ttl_;
  std::uint64_t epoch_ = 0;
  mutable std::mutex mu_;
  std::string etag_;
  Clock::time_point valid_until_{};
  bool lost_ = false;
};

}  // namespace bp::storage
