// agent/registry.cpp — the registry of hosted sprites.
#include "agent/registry.hpp"

namespace bp::agent {

std::vector<SpriteRecord> Registry::list() const {
  std::vector<SpriteRecord> out;
  out.reserve(sprites_.size());
  for (const auto& [_, rec] : sprites_) out.push_back(rec);
  return out;
}

std::optional<SpriteRecord> Registry::get(const std::string& name) const {
  auto it = sprites_.find(name);
  if (it == sprites_.end()) return std::nullopt;
  return it->second;
}

bool Registry::add(SpriteRecord rec) {
  std::string name = rec.name;
  return sprites_.emplace(std::move(name), std::move(rec)).second;
}

bool Registry::remove(const std::string& name) { return sprites_.erase(name) > 0; }

}  // namespace bp::agent
