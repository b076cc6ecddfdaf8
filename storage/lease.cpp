// storage/lease.cpp — the single-writer lease (see lease.hpp).
#include "storage/lease.hpp"

#include <nlohmann/json.hpp>

namespace bp::storage {

using nlohmann::json;

namespace {

// A lease object's fields, whatever the object holds (a wrong type is never a throw).
struct Fields {
  bool ok = false;
  std::uint64_t epoch = 0;
  std::string holder;
  std::int64_t expires_ms = 0;
  bool released = false;
};

Fields fields_of(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  Fields f;
  if (!j.is_object() || !j.contains("epoch") || !j["epoch"].is_number_unsigned()) return f;
  f.ok = true;
  f.epoch = j["epoch"].get<std::uint64_t>();
  if (j.contains("holder") && j["holder"].is_string()) f.holder = j["holder"].get<std::string>();
  if (j.contains("expires_ms") && j["expires_ms"].is_number_integer()) f.expires_ms = j["expires_ms"].get<std::int64_t>();
  if (j.contains("released") && j["released"].is_boolean()) f.released = j["released"].get<bool>();
  return f;
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Lease::Lease(Lease&& o) noexcept
    : store_(o.store_), key_(std::move(o.key_)), holder_(std::move(o.holder_)), ttl_(o.ttl_), epoch_(o.epoch_),
      etag_(std::move(o.etag_)), valid_until_(o.valid_until_), lost_(o.lost_) {}

Result<Lease> Lease::acquire(ObjectStore& store, std::string key, std::string holder, std::chrono::milliseconds ttl,
                             std::uint64_t min_epoch) {
  Lease l(store, std::move(key), std::move(holder), ttl);
  // A race with another taker shows as EEXIST/ESTALE: read again and decide again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto info = store.head(l.key_);
    if (!info && info.error().code != ENOENT) return std::move(info).error().wrap("lease " + l.key_);
    std::uint64_t epoch = min_epoch;
    PutIf cond = PutIf::none_match();
    if (info) {
      auto body = store.get(l.key_);
      if (!body && body.error().code == ENOENT) continue;
      if (!body) return std::move(body).error().wrap("lease " + l.key_);
      Fields f = fields_of(*body);
      if (!f.ok) return make_error("lease " + l.key_ + " is not valid: " + body->substr(0, 200), EBADMSG);
      std::uint64_t held = f.epoch;
      const std::string& who = f.holder;
      std::int64_t expires = f.expires_ms;
      bool free = f.released || who == l.holder_ || wall_ms() > expires;
      if (!free)
        return make_error("in use by " + who + " (lease epoch " + std::to_string(held) + ", expires in " +
                              std::to_string((expires - wall_ms() + 999) / 1000) + " s unless renewed)",
                          EBUSY);
      epoch = std::max(epoch, held);
      cond = PutIf::match(info->etag);
    }
    l.epoch_ = epoch + 1;
    auto sent = Clock::now();
    json j{{"epoch", l.epoch_}, {"holder", l.holder_}, {"expires_ms", wall_ms() + ttl.count()}, {"released", false}};
    auto put = store.put(l.key_, j.dump() + "\n", cond);
    if (!put && (put.error().code == EEXIST || put.error().code == ESTALE)) continue;
    if (!put) return std::move(put).error().wrap("take lease " + l.key_);
    l.etag_ = std::move(*put);
    l.valid_until_ = sent + ttl * 2 / 3;
    return l;
  }
  return make_error("lease " + l.key_ + ": others keep changing it", EBUSY);
}

Status Lease::write(bool released) {
  std::string etag;
  {
    std::lock_guard lk(mu_);
    if (lost_) return make_error("lease " + key_ + " was taken by another holder", ESTALE);
    etag = etag_;
  }
  auto sent = Clock::now();
  json j{{"epoch", epoch_}, {"holder", holder_}, {"expires_ms", released ? 0 : wall_ms() + ttl_.count()},
         {"released", released}};
  auto put = store_.put(key_, j.dump() + "\n", PutIf::match(etag));
  if (!put && put.error().code == ESTALE) {
    // An earlier write of ours may have landed with its answer lost: the object is then
    // still ours (same epoch and holder), under an ETag we never saw. Anything else is
    // another holder.
    auto info = store_.head(key_);
    auto body = info ? store_.get(key_) : Result<std::string>(info.error());
    if (!info || !body) return std::move(put).error().wrap("renew lease " + key_);
    Fields now = fields_of(*body);
    if (now.ok && now.epoch == epoch_ && now.holder == holder_ && !now.released)
      put = store_.put(key_, j.dump() + "\n", PutIf::match(info->etag));
  }
  std::lock_guard lk(mu_);
  if (!put) {
    if (put.error().code == ESTALE) lost_ = true;
    return std::move(put).error().wrap("renew lease " + key_);
  }
  etag_ = std::move(*put);
  valid_until_ = released ? Clock::time_point{} : sent + ttl_ * 2 / 3;
  return {};
}

Status Lease::renew() { return write(false); }
Status Lease::release() { return write(true); }

Lease::Clock::time_point Lease::valid_until() const {
  std::lock_guard lk(mu_);
  return valid_until_;
}

bool Lease::lost() const {
  std::lock_guard lk(mu_);
  return lost_;
}

}  // namespace bp::storage
