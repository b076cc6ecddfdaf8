// agent/registry.cpp — the registry of hosted sprites.
#include "agent/registry.hpp"

namespace bp::agent {

std::vector<SpriteRecord> Registry::list() const {
  std::lock_guard lk(mu_);
  std::vector<SpriteRecord> out;
  out.reserve(sprites_.size());
  for (const auto& [_, rec] : sprites_) out.push_back(rec);
  return out;
}

std::optional<SpriteRecord> Registry::get(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = sprites_.find(name);
  if (it == sprites_.end()) return std::nullopt;
  return it->second;
}

bool Registry::add(SpriteRecord rec) {
  std::lock_guard lk(mu_);
  std::string name = rec.name;
  bool added = sprites_.emplace(std::move(name), std::move(rec)).second;
  generation_ += added;
  return added;
}

bool Registry::remove(const std::string& name) {
  std::lock_guard lk(mu_);
  bool removed = sprites_.erase(name) > 0;
  generation_ += removed;
  return removed;
}

void Registry::set_status(const std::string& name, const std::string& status) {
  std::lock_guard lk(mu_);
  if (auto it = sprites_.find(name); it != sprites_.end() && it->second.status != status) {
    it->second.status = status;
    ++generation_;
  }
}

bool Registry::replace(const SpriteRecord& rec) {
  std::lock_guard lk(mu_);
  auto it = sprites_.find(rec.name);
  if (it == sprites_.end()) return false;
  it->second = rec;
  ++generation_;
  return true;
}

std::size_t Registry::size() const {
  std::lock_guard lk(mu_);
  return sprites_.size();
}

std::uint64_t Registry::generation() const {
  std::lock_guard lk(mu_);
  return generation_;
}

namespace {
Error no_checkpoints() { return make_error("this runtime keeps no checkpoints", ENOTSUP); }
}  // namespace

Result<CheckpointRecord> SpriteControl::checkpoint(const std::string&, const std::string&, const Progress&) {
  return no_checkpoints();
}
Result<CheckpointRecord> SpriteControl::restore(const std::string&, const std::string&, const Progress&) {
  return no_checkpoints();
}
Result<std::vector<CheckpointRecord>> SpriteControl::checkpoints(const std::string&) { return no_checkpoints(); }
Status SpriteControl::delete_checkpoint(const std::string&, const std::string&) { return no_checkpoints(); }

}  // namespace bp::agent
