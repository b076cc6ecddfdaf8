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
  return sprites_.emplace(std::move(name), std::move(rec)).second;
}

bool Registry::remove(const std::string& name) {
  std::lock_guard lk(mu_);
  return sprites_.erase(name) > 0;
}

void Registry::set_status(const std::string& name, const std::string& status) {
  std::lock_guard lk(mu_);
  if (auto it = sprites_.find(name); it != sprites_.end()) it->second.status = status;
}

bool Registry::replace(const SpriteRecord& rec) {
  std::lock_guard lk(mu_);
  auto it = sprites_.find(rec.name);
  if (it == sprites_.end()) return false;
  it->second = rec;
  return true;
}

std::size_t Registry::size() const {
  std::lock_guard lk(mu_);
  return sprites_.size();
}

}  // namespace bp::agent
